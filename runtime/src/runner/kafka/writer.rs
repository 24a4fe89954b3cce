//! [`PartWriter`]: one partition of an output topic, written with exactly-once effect
//! across crashes by idempotent replay.

use std::collections::VecDeque;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use super::batch::Batch;
use super::conn::Conn;
use super::decode::header;
use super::epoch::{claim, transactional_id, Epoch};
use super::fetch::{read_from, Fetcher};
use super::leader::Failed;
use super::producer::Producer;
use super::record_batch::Stamp;
use super::sink::{INSTANCE_HEADER, SEQ_HEADER};
use super::TopicUrl;
use crate::runner::fence::Fence;
use crate::runner::sink::STOPPED;

/// Records are produced once this many bytes are pending (and at every checkpoint).
const BATCH_BYTES: usize = 512 * 1024;

/// Appends rows to one partition. Every record carries the writer and its sequence
/// number in this partition (headers [`INSTANCE_HEADER`], [`SEQ_HEADER`]). On open the
/// partition is read from the offset a checkpoint saved; the writer's records numbered
/// from the checkpoint's sequence on were written after it, before a crash. The restored
/// run computes the same rows again in the same order: the first ones are compared with
/// those records (a difference is an error) and not produced again.
///
/// Batches are produced by a thread of the writer's own while the pipeline goes on (two
/// at most in flight); a commit waits for all of them.
///
/// Before reading the partition, the writer claims the next producer epoch of its
/// transactional id (see `epoch`): a batch of an earlier owner that reaches the broker
/// later is refused, so none lands after the rows read here.
pub(super) struct PartWriter {
    url: TopicUrl,
    id: i32,
    /// Sequence number of the next row.
    seq: u64,
    /// Offset after the last record of ours known to be in the partition.
    end: i64,
    pending: Batch,
    /// Rows already in the partition past the checkpoint, in order: the replay skips them.
    replay: VecDeque<Vec<u8>>,
    jobs: SyncSender<Job>,
    done: Receiver<Result<i64, String>>,
    in_flight: usize,
}

/// A batch for the producer thread, and the sequence number of its first row.
struct Job {
    rows: Batch,
    first_seq: u64,
}

/// The output partition as read and written: our own connections to read the tail and
/// to produce (rskafka's lists topics and reports a broker that does not answer), and
/// whose rows to look for.
struct Partition {
    conn: Conn,
    fetcher: Fetcher,
    answer: Vec<u8>,
    producer: Producer,
    url: TopicUrl,
    instance: String,
    id: i32,
    fence: Option<Fence>,
    /// The producer id and epoch every batch carries.
    epoch: Epoch,
    /// The row number the epoch's batches are counted from (the broker's sequences).
    epoch_from: u64,
}

impl PartWriter {
    /// Opens partition `id` for `writer`, which committed `committed` rows ending at
    /// offset `saved_end` (`None`: nothing committed; rows start at the partition's end).
    pub(super) fn open(
        url: &TopicUrl,
        id: i32,
        writer: &str,
        fence: Option<Fence>,
        saved_end: Option<i64>,
        committed: u64,
    ) -> Result<PartWriter, String> {
        let conn = Conn::connect(url)?;
        let epoch = claim_epoch(&conn, url, writer, id)?;
        let client = conn.partition(&url.topic, id)?;
        let from = match saved_end {
            Some(e) => e,
            None => conn.end_of(&client, "reading the output's end")?,
        };
        let mut part = Partition {
            conn,
            fetcher: Fetcher::new(&url.brokers, &url.topic, id),
            answer: Vec::new(),
            producer: Producer::new(&url.brokers, &url.topic, id),
            url: url.clone(),
            instance: writer.to_string(),
            id,
            fence,
            epoch,
            epoch_from: 0,
        };
        part.check_holds(from)?;
        let ours = part.ours_from(from, committed)?;
        part.epoch_from = committed + ours.len() as u64;
        if !ours.is_empty() {
            tracing::info!(
                "{url}: partition {id}: {} row(s) written after the checkpoint are already there: not written again",
                ours.len()
            );
        }
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (done_tx, done) = channel();
        std::thread::Builder::new()
            .name(format!("kafka-out-p{id}"))
            .spawn(move || part.produce_jobs(from, &job_rx, &done_tx))
            .map_err(|e| format!("starting the producer of {url}: {e}"))?;
        Ok(PartWriter {
            url: url.clone(),
            id,
            seq: committed,
            end: from,
            pending: Batch::default(),
            replay: ours.into_iter().map(|(_, v)| v).collect(),
            jobs,
            done,
            in_flight: 0,
        })
    }

    /// Appends one row with its Kafka key (produced at the latest at the next
    /// [`commit`](Self::commit)).
    pub(super) fn write(&mut self, key: Option<&[u8]>, line: &[u8]) -> Result<(), String> {
        if let Some(there) = self.replay.pop_front() {
            if there != line {
                return Err(format!(
                    "{}: partition {}: row {} as computed again differs from the one written before the crash ({} vs {}): the pipeline's output is not deterministic",
                    self.url,
                    self.id,
                    self.seq,
                    String::from_utf8_lossy(line),
                    String::from_utf8_lossy(&there)
                ));
            }
            self.seq += 1;
            return Ok(());
        }
        self.pending.push(key, line);
        self.seq += 1;
        if self.pending.bytes() + 64 * self.pending.len() >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    /// Hands the pending rows to the producer thread (waiting while two batches are in
    /// flight), without waiting for Kafka's acknowledgement.
    pub(super) fn send(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // The next batch is as large as this one was: no regrowing row by row.
        let room = Batch::with_capacity(self.pending.bytes(), self.pending.len());
        let rows = std::mem::replace(&mut self.pending, room);
        let first_seq = self.seq - rows.len() as u64;
        while self.in_flight >= 2 {
            self.collect_one()?;
        }
        if self.jobs.send(Job { rows, first_seq }).is_err() {
            return Err(self.why_stopped());
        }
        self.in_flight += 1;
        Ok(())
    }

    /// The error the producer thread stopped on.
    fn why_stopped(&self) -> String {
        match self.done.try_iter().find_map(Result::err) {
            Some(e) => e,
            None => format!("{}: the producer stopped", self.url),
        }
    }

    fn collect_one(&mut self) -> Result<(), String> {
        let r = self.done.recv().map_err(|_| self.why_stopped())?;
        self.in_flight -= 1;
        self.end = self.end.max(r?);
        Ok(())
    }

    /// Waits until Kafka acknowledged every row handed over ([`send`](Self::send) first);
    /// returns the sequence number reached and the offset after the last row.
    pub(super) fn commit(&mut self) -> Result<(u64, i64), String> {
        self.send()?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        Ok((self.seq, self.end))
    }

    /// Rows written (sequence numbers handed out).
    pub(super) fn len(&self) -> u64 {
        self.seq
    }

    /// The partition.
    pub(super) fn id(&self) -> i32 {
        self.id
    }
}

/// Claims the next producer epoch of `writer`'s rows in partition `id`, waiting while
/// the coordinator does not answer.
fn claim_epoch(conn: &Conn, url: &TopicUrl, writer: &str, id: i32) -> Result<Epoch, String> {
    let txn = transactional_id(writer, &url.topic, id);
    let what = "claiming the output partition's producer epoch";
    loop {
        match claim(&url.brokers, &txn) {
            Ok(e) => {
                conn.answering(what);
                tracing::debug!(
                    "{url}: partition {id}: producer id {} epoch {}",
                    e.id,
                    e.epoch
                );
                return Ok(e);
            }
            Err(Failed::Transient(why)) => conn.not_answering(what, &why),
            Err(Failed::Gone) => return Err(conn.deleted(what)),
            Err(Failed::Fatal(e)) => return Err(format!("{url}: partition {id}: {what}: {e}")),
            Err(Failed::Fenced(code)) => {
                return Err(format!("{url}: partition {id}: {what}: {code}"))
            }
        }
    }
}

impl Partition {
    /// The partition still holds the record before `from` (the last one the checkpoint
    /// counted): it was not deleted and created again, or emptied.
    fn check_holds(&mut self, from: i64) -> Result<(), String> {
        if from == 0 {
            return Ok(());
        }
        let held = self
            .read(from - 1)?
            .is_some_and(|recs| recs.iter().any(|r| r.offset == from - 1));
        if held {
            return Ok(());
        }
        Err(format!(
            "{}: partition {} has no record at offset {}, the last one the checkpoint committed: the topic was deleted or emptied outside SimpleStream; start over with --from-scratch",
            self.url,
            self.id,
            from - 1
        ))
    }

    /// The records at `at` and after (`None`: the partition does not hold `at`).
    fn read(&mut self, at: i64) -> Result<Option<Vec<super::decode::Rec>>, String> {
        let what = "reading the output's tail";
        let mut recs = Vec::new();
        let held = read_from(
            &mut self.fetcher,
            &self.conn,
            at,
            &mut self.answer,
            &mut recs,
            what,
        )?;
        Ok(held.then_some(recs))
    }

    /// Kafka put a batch before rows of ours it had acknowledged: the topic was deleted
    /// and created again (a broker that creates topics on first use).
    fn recreated(&self, at: i64, end: i64) -> String {
        format!(
            "{}: topic `{}` was deleted and created again while this program ran (partition {} took rows at offset {at}, it had reached {end}){STOPPED}",
            self.url, self.url.topic, self.id
        )
    }

    /// The broker refused a batch of ours for its producer epoch (`code`).
    fn fenced(&self, code: &str) -> String {
        format!(
            "fenced: {}: partition {}: the broker refused our rows ({code}): a later owner claimed this output partition's producer epoch (ours is {} of producer {}): this instance writes nothing more for it",
            self.url, self.id, self.epoch.epoch, self.epoch.id
        )
    }

    /// The records of this instance from offset `from` to the end, numbered `seq` on:
    /// (offset, value). They must be numbered without a gap.
    fn ours_from(&mut self, from: i64, seq: u64) -> Result<Vec<(i64, Vec<u8>)>, String> {
        let mut found = Vec::new();
        let mut at = from;
        loop {
            let Some(records) = self.read(at)? else {
                return Err(format!(
                    "{}: partition {} does not hold offset {at}, where the output's tail was to be read{STOPPED}",
                    self.url, self.id
                ));
            };
            let Some(last) = records.last().map(|r| r.offset) else {
                break;
            };
            let answer = &self.answer;
            for r in records {
                let h = &answer[r.headers.clone()];
                if header(h, INSTANCE_HEADER.as_bytes()) != Some(self.instance.as_bytes()) {
                    continue;
                }
                let n: Option<u64> = header(h, SEQ_HEADER.as_bytes())
                    .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok());
                let Some(n) = n.filter(|&n| n >= seq) else {
                    continue;
                };
                let want = seq + found.len() as u64;
                if n != want {
                    return Err(format!(
                        "{}: record at offset {} is row {n} of instance {}, but row {want} was expected next: rows are missing from the topic; start over with --from-scratch",
                        self.url, r.offset, self.instance
                    ));
                }
                found.push((r.offset, answer[r.value].to_vec()));
            }
            at = last + 1;
        }
        Ok(found)
    }

    /// The producer thread: produces each job in order and reports the partition's
    /// offset after it. A produce that failed may still have landed: before it is tried
    /// again the partition is read from the last known end, and what is there is dropped.
    fn produce_jobs(
        mut self,
        mut end: i64,
        jobs: &Receiver<Job>,
        done: &Sender<Result<i64, String>>,
    ) {
        for job in jobs {
            let r = self.produce(&mut end, job);
            let failed = r.is_err();
            if done.send(r.map(|()| end)).is_err() || failed {
                return;
            }
        }
    }

    fn produce(&mut self, end: &mut i64, job: Job) -> Result<(), String> {
        let Job { rows, first_seq } = job;
        // The stamp holds it while the tail is read (`ours_from` borrows `self`).
        let instance = self.instance.clone();
        let stamp = Stamp {
            instance: instance.as_bytes(),
            first_seq,
            timestamp_ms: crate::time::now_ms(),
            producer: self.epoch,
            epoch_from: self.epoch_from,
        };
        // Rows already in the partition: a failed produce may have landed.
        let mut done = 0;
        let mut first_try = true;
        while done < rows.len() {
            if !first_try {
                let landed = self.ours_from(*end, first_seq)?;
                if let Some((off, _)) = landed.last() {
                    *end = off + 1;
                }
                done = landed.len().min(rows.len());
                if done == rows.len() {
                    break;
                }
            }
            first_try = false;
            if let Some(f) = &self.fence {
                f.check()?;
            }
            let held = format_args!("{} partition {}", self.url, self.id);
            crate::hold_point("between-fence-check-and-produce", &held);
            match self.producer.produce(&rows, done, &stamp) {
                Ok(first) => {
                    self.conn.answering("writing output");
                    if first < *end {
                        return Err(self.recreated(first, *end));
                    }
                    *end = first + (rows.len() - done) as i64;
                    done = rows.len();
                }
                Err(Failed::Gone) => return Err(self.conn.deleted("writing output")),
                Err(Failed::Fenced(code)) => return Err(self.fenced(code)),
                Err(Failed::Fatal(e)) => return Err(format!("{}: {e}", self.url)),
                Err(Failed::Transient(why)) => self.conn.not_answering("writing output", &why),
            }
        }
        Ok(())
    }
}
