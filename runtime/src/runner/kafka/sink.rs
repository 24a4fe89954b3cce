//! [`KafkaSink`]: an output topic with exactly-once effect across crashes, by
//! idempotent replay.

use std::collections::{BTreeMap, VecDeque};

use rskafka::chrono::TimeZone;
use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;

use super::conn::Conn;
use super::TopicUrl;

/// Header naming the instance that wrote a record.
pub const INSTANCE_HEADER: &str = "simplestream-instance";
/// Header with the record's sequence number in its instance's output (decimal).
pub const SEQ_HEADER: &str = "simplestream-seq";
/// Records are produced once this many bytes are pending (and at every checkpoint).
const BATCH_BYTES: usize = 512 * 1024;
/// The partition written: one, so the topic holds the rows in the pipeline's order.
const PARTITION: i32 = 0;

/// Appends output rows to partition 0 of a topic. Every record carries the instance
/// and its sequence number (headers [`INSTANCE_HEADER`], [`SEQ_HEADER`]); a checkpoint
/// saves, after producing every pending record, the sequence number reached
/// (`{key}.len`) and the partition's offset after the last record acknowledged
/// (`{key}.kafka_end`). On restart the sink reads the partition from that offset and
/// keeps the records of its instance numbered from the checkpoint's sequence on: they
/// were written after the checkpoint, before the crash. The restored run produces the
/// same rows again in the same order; the first ones are compared with those records
/// (a difference is an error) and not produced again. This is the append-only form of
/// cutting a file back to its committed length: each row is in the topic once.
pub struct KafkaSink {
    conn: Conn,
    client: PartitionClient,
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
}

impl KafkaSink {
    /// Opens `url` for the output saved under `key` in `positions` (empty on a first
    /// start or with `--from-scratch`), creating the topic (one partition) if missing.
    pub fn open(
        url: &TopicUrl,
        key: &str,
        positions: &BTreeMap<String, u64>,
        instance: &str,
    ) -> Result<KafkaSink, String> {
        let conn = Conn::connect(url)?;
        if conn.partitions(&url.topic)?.is_none() {
            conn.create_topic(&url.topic)?;
            tracing::info!("created topic {url} (one partition) for the output");
        }
        let client = conn.partition(&url.topic, PARTITION)?;
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
        let mut sink = KafkaSink {
            conn,
            client,
            url: url.clone(),
            instance: instance.to_string(),
            seq: committed,
            end: from,
            pending: Vec::new(),
            pending_bytes: 0,
            replay: VecDeque::new(),
        };
        sink.check_holds(from)?;
        let ours = sink.ours_from(from, committed)?;
        if !ours.is_empty() {
            tracing::info!(
                "{url}: {} row(s) written after the checkpoint are already there: not written again",
                ours.len()
            );
        }
        sink.replay = ours.into_iter().map(|(_, v)| v).collect();
        Ok(sink)
    }

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
            "{}: partition {PARTITION} has no record at offset {}, the last one the checkpoint committed: the topic was deleted or emptied outside SimpleStream; start over with --from-scratch",
            self.url,
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

    /// Appends one row (produced at the latest at the next [`commit`](Self::commit)).
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
            self.produce()?;
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

    /// Produces the pending rows. A produce that failed may still have landed: before
    /// it is tried again the partition's tail is read and what is there is dropped.
    fn produce(&mut self) -> Result<(), String> {
        let mut first_try = true;
        while !self.pending.is_empty() {
            if !first_try {
                let first = self.seq - self.pending.len() as u64;
                let landed = self.ours_from(self.end, first)?;
                if let Some((off, _)) = landed.last() {
                    self.end = off + 1;
                }
                self.pending.drain(..landed.len().min(self.pending.len()));
                if self.pending.is_empty() {
                    break;
                }
            }
            first_try = false;
            let batch = self.pending.clone();
            let client = &self.client;
            let r = self.conn.wait_once("writing output", || {
                client.produce(batch.clone(), Compression::NoCompression)
            });
            match r {
                Ok(offsets) => {
                    if let Some(o) = offsets.iter().max() {
                        self.end = self.end.max(o + 1);
                    }
                    self.pending.clear();
                }
                Err(super::conn::Once::Fatal(e)) => return Err(e),
                Err(super::conn::Once::Transient) => {}
            }
        }
        self.pending_bytes = 0;
        Ok(())
    }

    /// Produces every pending row and saves the sequence number reached (`{key}.len`)
    /// and the offset to read from after a crash (`{key}.kafka_end`).
    pub fn commit_into(
        &mut self,
        key: &str,
        positions: &mut BTreeMap<String, u64>,
    ) -> Result<(), String> {
        self.produce()?;
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
