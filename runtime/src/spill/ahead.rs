//! A batch lookup of the disk tier that runs while the caller goes on
//! ([`Tier::look_up_ahead`](super::tier::Tier::look_up_ahead)): its keys, in key order,
//! are cut into chunks that a thread of its own looks up one after the other over the
//! runs as they were when it started; whoever waits for it takes the chunks not started
//! yet, so the wait is shared by two threads, as a batch lookup's is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::bloom;
use super::run::Run;
use super::tier::{look_up, Found, TierError};

/// Keys per chunk, about: enough that a chunk's reads outweigh taking it.
const CHUNK: usize = 256;

/// A lookup started by [`Tier::look_up_ahead`](super::tier::Tier::look_up_ahead).
pub(crate) struct Ahead {
    job: Arc<Job>,
    thread: Option<JoinHandle<()>>,
}

struct Job {
    /// Runs numbered from this were written after it started.
    since: u64,
    runs: Vec<Arc<Run>>,
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// Indexes into `spans`, in key order.
    order: Vec<usize>,
    chunks: usize,
    /// The next chunk to take; from `chunks` on: none left (or given up).
    next: AtomicUsize,
    done: Mutex<Done>,
}

#[derive(Default)]
struct Done {
    found: Found,
    open: Vec<usize>,
    error: Option<TierError>,
}

impl Ahead {
    pub(super) fn start(
        since: u64,
        runs: Vec<Arc<Run>>,
        bytes: Vec<u8>,
        spans: Vec<(usize, usize)>,
        order: Vec<usize>,
    ) -> Ahead {
        let chunks = order.len().div_ceil(CHUNK);
        let job = Arc::new(Job {
            since,
            runs,
            bytes,
            spans,
            order,
            chunks,
            next: AtomicUsize::new(0),
            done: Mutex::new(Done::default()),
        });
        let mine = Arc::clone(&job);
        let thread = (chunks > 0)
            .then(|| {
                let thread = std::thread::Builder::new().name("state-read-ahead".into());
                // No thread to be had (the process is at its limit): `finish` does it all.
                thread.spawn(move || mine.work()).ok()
            })
            .flatten();
        Ahead { job, thread }
    }

    /// Takes the chunks left, waits for the thread's, and gives what was found.
    pub(super) fn finish(mut self) -> Result<Fetched, TierError> {
        self.job.work();
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| "state working directory: a lookup thread panicked")?;
        }
        let done = std::mem::take(&mut *self.job.done.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(e) = done.error {
            return Err(e);
        }
        Ok(Fetched {
            job: Arc::clone(&self.job),
            found: done.found,
            open: done.open,
        })
    }
}

/// A state dropped with a lookup under way stops it and waits: the runs it holds delete
/// their files when it lets them go.
impl Drop for Ahead {
    fn drop(&mut self) {
        self.job.next.store(self.job.chunks, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            _ = t.join();
        }
    }
}

impl Job {
    fn key(&self, i: usize) -> &[u8] {
        &self.bytes[self.spans[i].0..self.spans[i].1]
    }

    /// Looks chunks up until none is left.
    fn work(&self) {
        loop {
            let c = self.next.fetch_add(1, Ordering::Relaxed);
            if c >= self.chunks {
                return;
            }
            let got = self.chunk(c);
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            match got {
                Ok((found, open)) => {
                    done.found.append(found);
                    done.open.extend(open);
                }
                Err(e) => {
                    done.error.get_or_insert(e);
                }
            }
        }
    }

    /// Chunk `c`'s keys looked up: found (by key index) and found on no run.
    fn chunk(&self, c: usize) -> Result<(Found, Vec<usize>), TierError> {
        let n = self.order.len();
        let part = &self.order[c * n / self.chunks..(c + 1) * n / self.chunks];
        // `look_up` wants the keys themselves in key order.
        let keys: Vec<&[u8]> = part.iter().map(|&i| self.key(i)).collect();
        let hashes: Vec<u64> = keys.iter().map(|k| bloom::hash(k)).collect();
        let all: Vec<usize> = (0..keys.len()).collect();
        let (mut found, mut open) = look_up(&self.runs, &keys, &hashes, &all)?;
        for it in &mut found.items {
            it.0 = part[it.0];
        }
        for j in &mut open {
            *j = part[*j];
        }
        Ok((found, open))
    }
}

/// What a lookup ahead found.
pub(crate) struct Fetched {
    job: Arc<Job>,
    found: Found,
    open: Vec<usize>,
}

impl Fetched {
    /// Runs numbered from this were written after the lookup started.
    pub(crate) fn since(&self) -> u64 {
        self.job.since
    }

    /// The key of index `i` (in the order the caller gave them).
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        self.job.key(i)
    }

    /// The key index of each copy found, by item number.
    pub(crate) fn found(&self) -> impl Iterator<Item = usize> + '_ {
        self.found.items.iter().map(|it| it.0)
    }

    /// Copy `item`: its key index, stamp and value bytes.
    pub(crate) fn item(&self, item: usize) -> (usize, u64, &[u8]) {
        let (i, stamp, a, b) = self.found.items[item];
        (i, stamp, &self.found.bytes[a..b])
    }

    /// The key indexes found on no run.
    pub(crate) fn open(&self) -> impl Iterator<Item = usize> + '_ {
        self.open.iter().copied()
    }
}
