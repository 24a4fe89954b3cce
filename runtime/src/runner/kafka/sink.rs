//! [`KafkaSink`]: an output topic with exactly-once effect across crashes, by
//! idempotent replay.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use rskafka::chrono::TimeZone;
use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;

use super::conn::{Conn, Once};
use super::TopicUrl;

/// Header naming the instance that wrote a record.
pub const INSTANCE_HEADER: &str = "simplestream-instance";
/// Header with the record's sequence number in its instance's output (decimal).
pub const SEQ_HEADER: &str = "simplestream-seq";
/// Records are produced once this many bytes are pending (and at every checkpoint).
const BATCH_BYTES: usize = 512 * 1024;

/// Who writes which partition of an output topic.
///
/// ```
/// use simplestream_runtime::runner::kafka::sink::SinkTarget;
/// // A whole-topic run: its rows go to partition 0, in the pipeline's order.
/// let t = SinkTarget::single("app-instance-1");
/// assert_eq!((t.partition, t.create_partitions), (0, 1));
/// ```
#[derive(Debug, Clone)]
pub struct SinkTarget {
    /// The writer's name in the [`INSTANCE_HEADER`] of its rows: an instance, or a
    /// partition's task (the same for every owner the partition has had).
    pub writer: String,
    /// The partition written.
    pub partition: i32,
    /// Partitions to create the topic with if it is missing.
    pub create_partitions: i32,
    /// Checked before every produce: a fenced writer produces nothing more.
    pub fence: Option<crate::runner::fence::Fence>,
}

impl SinkTarget {
    /// Partition 0, written by `instance`, no fence.
    pub fn single(instance: &str) -> SinkTarget {
        SinkTarget {
            writer: instance.to_string(),
            partition: 0,
            create_partitions: 1,
            fence: None,
        }
    }
}

/// Appends output rows to one partition of a topic (see [`SinkTarget`]). Every record carries the instance
/// and its sequence number (headers [`INSTANCE_HEADER`], [`SEQ_HEADER`]); a checkpoint
/// saves, after producing every pending record, the sequence number reached
/// (`{key}.len`) and the partition's offset after the last record acknowledged
/// (`{key}.kafka_end`). On restart the sink reads the partition from that offset and
/// keeps the records of its instance numbered from the checkpoint's sequence on: they
/// were written after the checkpoint, before the crash. The restored run produces the
/// same rows again in the same order; the first ones are compared with those records
/// (a difference is an error) and not produced again. This is the append-only form of
/// cutting a file back to its committed length: each row is in the topic once.
///
/// Batches are produced by a thread of the sink's own while the pipeline goes on (two
/// at most in flight); a checkpoint waits for all of them.
pub struct KafkaSink {
    url: TopicUrl,
    instance: String,
    /// Sequence number of the next row.
    seq: u64,
    /// Offset after the last record of ours known to be in the partition.
    end: i64,
    pending: Vec<Record>,
    pending_bytes: usize,
    /// Rows already in the topic past the checkpoint, in order: the replay skips them.
    replay: VecDeque<Vec<u8>>,
    jobs: SyncSender<Job>,
    done: Receiver<Result<i64, String>>,
    in_flight: usize,
}

/// A batch for the producer thread, and the sequence number of its first row.
struct Job {
    records: Vec<Record>,
    first_seq: u64,
}

/// The output partition as read and written: the connection and whose rows to look for.
struct Partition {
    conn: Conn,
    client: PartitionClient,
    url: TopicUrl,
    instance: String,
    id: i32,
    fence: Option<crate::runner::fence::Fence>,
}

impl KafkaSink {
    /// Opens `url` for the output saved under `key` in `positions` (empty on a first
    /// start or with `--from-scratch`), creating the topic if missing.
    pub fn open(
        url: &TopicUrl,
        key: &str,
        positions: &BTreeMap<String, u64>,
        target: &SinkTarget,
    ) -> Result<KafkaSink, String> {
        let conn = Conn::connect(url)?;
        match conn.partitions(&url.topic)? {
            None => {
                conn.create_topic(&url.topic, target.create_partitions)?;
                tracing::info!(
                    "created topic {url} ({} partition(s)) for the output",
                    target.create_partitions
                );
            }
            Some(ids) if !ids.contains(&target.partition) => {
                return Err(format!(
                    "{url} has {} partition(s), no partition {} to write: give the output topic as many partitions as the input has",
                    ids.len(),
                    target.partition
                ));
            }
            Some(_) => {}
        }
        let client = conn.partition(&url.topic, target.partition)?;
        let saved_end = positions.get(&format!("{key}.kafka_end")).copied();
        let committed = positions.get(&format!("{key}.len")).copied().unwrap_or(0);
        if saved_end.is_none() && committed > 0 {
            return Err(format!(
                "the checkpoint recorded this output as a file of {committed} bytes, not {url}: use another --instance, or --from-scratch"
            ));
        }
        let from = match saved_end {
            Some(e) => e as i64,
            None => conn.end_of(&client, "reading the output's end")?,
        };
        let part = Partition {
            conn,
            client,
            url: url.clone(),
            instance: target.writer.clone(),
            id: target.partition,
            fence: target.fence.clone(),
        };
        part.check_holds(from)?;
        let ours = part.ours_from(from, committed)?;
        if !ours.is_empty() {
            tracing::info!(
                "{url}: {} row(s) written after the checkpoint are already there: not written again",
                ours.len()
            );
        }
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (done_tx, done) = channel();
        std::thread::Builder::new()
            .name("kafka-out".into())
            .spawn(move || part.produce_jobs(from, &job_rx, &done_tx))
            .map_err(|e| format!("starting the producer of {url}: {e}"))?;
        Ok(KafkaSink {
            url: url.clone(),
            instance: target.writer.clone(),
            seq: committed,
            end: from,
            pending: Vec::new(),
            pending_bytes: 0,
            replay: ours.into_iter().map(|(_, v)| v).collect(),
            jobs,
            done,
            in_flight: 0,
        })
    }

    /// Appends one row (produced at the latest at the next [`commit_into`](Self::commit_into)).
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), String> {
        if let Some(there) = self.replay.pop_front() {
            if there != line {
                return Err(format!(
                    "{}: row {} as computed again differs from the one written before the crash ({} vs {}): the pipeline's output is not deterministic",
                    self.url,
                    self.seq,
                    String::from_utf8_lossy(line),
                    String::from_utf8_lossy(&there)
                ));
            }
            self.seq += 1;
            return Ok(());
        }
        self.pending_bytes += line.len() + 64;
        self.pending.push(self.record(line.to_vec(), self.seq));
        self.seq += 1;
        if self.pending_bytes >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn record(&self, value: Vec<u8>, seq: u64) -> Record {
        Record {
            key: None,
            value: Some(value),
            headers: BTreeMap::from([
                (
                    INSTANCE_HEADER.to_string(),
                    self.instance.clone().into_bytes(),
                ),
                (SEQ_HEADER.to_string(), seq.to_string().into_bytes()),
            ]),
            timestamp: rskafka::chrono::Utc
                .timestamp_millis_opt(crate::time::now_ms())
                .single()
                .unwrap_or_default(),
        }
    }

    /// Hands the pending rows to the producer thread without waiting for Kafka's
    /// acknowledgement (see [`Sink::flush`](crate::runner::sink::Sink::flush)).
    pub fn flush(&mut self) -> Result<(), String> {
        self.send()
    }

    /// Hands the pending rows to the producer thread (waiting while two batches are in
    /// flight).
    fn send(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending);
        let first_seq = self.seq - records.len() as u64;
        self.pending_bytes = 0;
        while self.in_flight >= 2 {
            self.collect_one()?;
        }
        self.jobs
            .send(Job { records, first_seq })
            .map_err(|_| format!("{}: the producer stopped", self.url))?;
        self.in_flight += 1;
        Ok(())
    }

    fn collect_one(&mut self) -> Result<(), String> {
        let r = self
            .done
            .recv()
            .map_err(|_| format!("{}: the producer stopped", self.url))?;
        self.in_flight -= 1;
        self.end = self.end.max(r?);
        Ok(())
    }

    /// Produces every pending row, waits until Kafka acknowledged all of them, and saves
    /// the sequence number reached (`{key}.len`) and the offset to read from after a
    /// crash (`{key}.kafka_end`).
    pub fn commit_into(
        &mut self,
        key: &str,
        positions: &mut BTreeMap<String, u64>,
    ) -> Result<(), String> {
        self.send()?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        positions.insert(format!("{key}.len"), self.seq);
        positions.insert(format!("{key}.kafka_end"), self.end as u64);
        Ok(())
    }

    /// Rows written (sequence numbers handed out).
    pub fn len(&self) -> u64 {
        self.seq
    }

    /// True if no row was written.
    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// The topic's URL.
    pub fn url(&self) -> &TopicUrl {
        &self.url
    }
}

impl Partition {
    /// The partition still holds the record before `from` (the last one the checkpoint
    /// counted): it was not deleted and created again, or emptied.
    fn check_holds(&self, from: i64) -> Result<(), String> {
        if from == 0 {
            return Ok(());
        }
        let client = &self.client;
        let r = self.conn.wait("reading the output's tail", || {
            client.fetch_records(from - 1, 1..(16 << 20), 200)
        });
        let held = match r {
            Ok((records, _)) => records.iter().any(|r| r.offset == from - 1),
            Err(e) if e.contains("OffsetOutOfRange") => false,
            Err(e) => return Err(e),
        };
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

    /// The records of this instance from offset `from` to the end, numbered `seq` on:
    /// (offset, value). They must be numbered without a gap.
    fn ours_from(&self, from: i64, seq: u64) -> Result<Vec<(i64, Vec<u8>)>, String> {
        let mut found = Vec::new();
        let mut at = from;
        loop {
            let client = &self.client;
            let (records, _) = self.conn.wait("reading the output's tail", || {
                client.fetch_records(at, 1..(16 << 20), 200)
            })?;
            let Some(last) = records.iter().map(|r| r.offset).max().filter(|&l| l >= at) else {
                break;
            };
            for r in records.into_iter().filter(|r| r.offset >= at) {
                let h = &r.record.headers;
                if h.get(INSTANCE_HEADER).map(Vec::as_slice) != Some(self.instance.as_bytes()) {
                    continue;
                }
                let n: Option<u64> = h
                    .get(SEQ_HEADER)
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
                found.push((r.offset, r.record.value.unwrap_or_default()));
            }
            at = last + 1;
        }
        Ok(found)
    }

    /// The producer thread: produces each job in order and reports the partition's
    /// offset after it. A produce that failed may still have landed: before it is tried
    /// again the partition is read from the last known end, and what is there is dropped.
    fn produce_jobs(self, mut end: i64, jobs: &Receiver<Job>, done: &Sender<Result<i64, String>>) {
        for job in jobs {
            let r = self.produce(&mut end, job);
            let failed = r.is_err();
            if done.send(r.map(|()| end)).is_err() || failed {
                return;
            }
        }
    }

    fn produce(&self, end: &mut i64, job: Job) -> Result<(), String> {
        let Job {
            mut records,
            first_seq,
        } = job;
        let mut first_try = true;
        while !records.is_empty() {
            if !first_try {
                let landed = self.ours_from(*end, first_seq)?;
                if let Some((off, _)) = landed.last() {
                    *end = off + 1;
                }
                records.drain(..landed.len().min(records.len()));
                if records.is_empty() {
                    break;
                }
            }
            first_try = false;
            if let Some(f) = &self.fence {
                f.check()?;
            }
            let client = &self.client;
            let r = self.conn.wait_once("writing output", || {
                client.produce(records.clone(), Compression::NoCompression)
            });
            match r {
                Ok(offsets) => {
                    if let Some(o) = offsets.iter().max() {
                        *end = (*end).max(o + 1);
                    }
                    records.clear();
                }
                Err(Once::Fatal(e)) => return Err(e),
                Err(Once::Transient) => {}
            }
        }
        Ok(())
    }
}
