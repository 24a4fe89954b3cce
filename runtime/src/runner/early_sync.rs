//! Write-back started early: a sink's commit fsyncs everything written since the last
//! one, and on a large output that wait (0.4 s for 200 MB on a 2-core VM) is most of a
//! commit. A thread of the sink's own fsyncs the file every few MiB while the pipeline
//! runs, so a commit waits only for the bytes since.

use std::fs::File;
use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Bytes handed to the OS between two early syncs.
pub const EARLY_SYNC_BYTES: u64 = 8 << 20;

/// The sync thread of one file. Dropping it stops the thread.
pub struct EarlySync {
    wake: Option<SyncSender<()>>,
    /// The first error an early sync met. Linux reports a write-back error to the
    /// descriptor that fsyncs first only, so it is kept here for the next commit.
    failed: Arc<Mutex<Option<io::Error>>>,
    thread: Option<JoinHandle<()>>,
    unsynced: u64,
}

impl EarlySync {
    /// Starts the thread for `file` (a clone of the sink's handle). `None` if the handle
    /// cannot be cloned or the thread not started: commits then sync everything, as
    /// they would anyway.
    pub fn start(file: &File) -> Option<EarlySync> {
        let file = file.try_clone().ok()?;
        let (wake, asked) = mpsc::sync_channel(1);
        let failed = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&failed);
        let thread = std::thread::Builder::new()
            .name("simplestream-sync".into())
            .spawn(move || sync_loop(&file, &asked, &slot))
            .ok()?;
        Some(EarlySync {
            wake: Some(wake),
            failed,
            thread: Some(thread),
            unsynced: 0,
        })
    }

    /// `n` more bytes were handed to the OS; wakes the thread after every
    /// [`EARLY_SYNC_BYTES`]. A thread still busy with the last sync is not queued again:
    /// its next sync covers these bytes too.
    pub fn wrote(&mut self, n: u64) {
        self.unsynced += n;
        if self.unsynced < EARLY_SYNC_BYTES {
            return;
        }
        self.unsynced = 0;
        if let Some(wake) = &self.wake {
            match wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => self.wake = None,
            }
        }
    }

    /// After a commit's own fsync, which covered every byte so far (the count of bytes
    /// to the next early sync starts again): the error an early sync met since the last
    /// commit, if any, which that fsync may not have seen. An early sync in flight holds
    /// the lock, so this waits for its verdict.
    pub fn committed(&mut self) -> Option<io::Error> {
        self.unsynced = 0;
        self.failed.lock().ok()?.take()
    }
}

fn sync_loop(file: &File, asked: &Receiver<()>, failed: &Mutex<Option<io::Error>>) {
    while asked.recv().is_ok() {
        let Ok(mut slot) = failed.lock() else { return };
        if let Err(e) = file.sync_data() {
            slot.get_or_insert(e);
        }
    }
}

impl Drop for EarlySync {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn syncs_in_the_background_and_stops_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("o")).unwrap();
        let mut early = EarlySync::start(&f).expect("thread started");
        for _ in 0..3 {
            f.write_all(&vec![b'x'; 1 << 20]).unwrap();
            early.wrote(EARLY_SYNC_BYTES);
        }
        assert!(early.committed().is_none());
        drop(early);
        assert_eq!(f.metadata().unwrap().len(), 3 << 20);
    }
}
