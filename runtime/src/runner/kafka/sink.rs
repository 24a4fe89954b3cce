//! [`KafkaSink`]: an output topic with exactly-once effect across crashes, by
//! idempotent replay, each row in the partition of its key.

use std::collections::BTreeMap;

use super::conn::Conn;
use super::partitioner::partition_for;
use super::writer::PartWriter;
use super::TopicUrl;

/// Header naming the instance that wrote a record.
pub const INSTANCE_HEADER: &str = "simplestream-instance";
/// Header with the record's sequence number in its instance's output (decimal).
pub const SEQ_HEADER: &str = "simplestream-seq";

/// Who writes which partition of an output topic.
///
/// ```
/// use simplestream_runtime::runner::kafka::sink::SinkTarget;
/// // A whole-topic run: it creates a missing topic with one partition.
/// let t = SinkTarget::single("app-instance-1");
/// assert_eq!((t.partition, t.create_partitions), (0, 1));
/// ```
#[derive(Debug, Clone)]
pub struct SinkTarget {
    /// The writer's name in the [`INSTANCE_HEADER`] of its rows: an instance, or a
    /// partition's task (the same for every owner the partition has had).
    pub writer: String,
    /// The partition written when rows are not placed by key.
    pub partition: i32,
    /// Partitions to create the topic with if it is missing.
    pub create_partitions: i32,
    /// Checked before every produce: a fenced writer produces nothing more.
    pub fence: Option<crate::runner::fence::Fence>,
}

impl SinkTarget {
    /// Partition 0 (or every partition, by key), written by `instance`, no fence.
    pub fn single(instance: &str) -> SinkTarget {
        SinkTarget {
            writer: instance.to_string(),
            partition: 0,
            create_partitions: 1,
            fence: None,
        }
    }
}

/// Appends output rows to a topic with exactly-once effect (see `PartWriter`: every
/// partition is numbered and replayed on its own).
///
/// Placed **by key** (one instance writing the whole topic), a row with a key goes to
/// the partition Kafka's default partitioner picks for it (murmur2 of the key bytes, as
/// the Java producer does) and carries it as its Kafka key; a row without one goes to
/// partition 0. The number of partitions is fixed by the first start (saved as
/// `{key}.kafka_partitions`), so a key never moves while the checkpoints go on.
/// Otherwise (a partition's task) every row goes to [`SinkTarget::partition`].
///
/// A checkpoint saves, for each partition `p`, the rows numbered and the offset after
/// the last one acknowledged: `{key}.len` and `{key}.kafka_end` for partition 0 (and a
/// task's partition), `{key}.p{p}.len` and `{key}.p{p}.kafka_end` for the others.
pub struct KafkaSink {
    url: TopicUrl,
    by_key: bool,
    /// By key: partition `p` at index `p`. Otherwise the one partition written.
    parts: Vec<PartWriter>,
}

impl KafkaSink {
    /// Opens `url` for the output saved under `key` in `positions` (empty on a first
    /// start or with `--from-scratch`), creating the topic if missing; `by_key` places
    /// rows by key over its partitions.
    pub fn open(
        url: &TopicUrl,
        key: &str,
        positions: &BTreeMap<String, u64>,
        target: &SinkTarget,
        by_key: bool,
    ) -> Result<KafkaSink, String> {
        let now = topic_partitions(url, target)?;
        let committed = positions.get(&format!("{key}.len")).copied().unwrap_or(0);
        if !positions.contains_key(&format!("{key}.kafka_end")) && committed > 0 {
            return Err(format!(
                "the checkpoint recorded this output as a file of {committed} bytes, not {url}: use another --instance, or --from-scratch"
            ));
        }
        let ids: Vec<i32> = if by_key {
            (0..partitions_kept(url, key, positions, now)?).collect()
        } else if target.partition < now {
            vec![target.partition]
        } else {
            return Err(format!(
                "{url} has {now} partition(s), no partition {} to write: give the output topic as many partitions as the input has",
                target.partition
            ));
        };
        // Each partition's tail is read on a thread of its own: a read that reaches the
        // end waits for the broker's fetch timeout, once per partition, not in series.
        let open = |id: i32| {
            let slot = if by_key {
                slot(key, id)
            } else {
                key.to_string()
            };
            let end = positions
                .get(&format!("{slot}.kafka_end"))
                .map(|&e| e as i64);
            let rows = positions.get(&format!("{slot}.len")).copied().unwrap_or(0);
            let fence = target.fence.clone();
            PartWriter::open(url, id, &target.writer, fence, end, rows)
        };
        let parts = std::thread::scope(|s| {
            let opening: Vec<_> = ids.iter().map(|&id| s.spawn(move || open(id))).collect();
            opening
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("opening a partition panicked".into()))
                })
                .collect::<Result<Vec<_>, String>>()
        })?;
        Ok(KafkaSink {
            url: url.clone(),
            by_key,
            parts,
        })
    }

    /// True if rows are placed by key (see [`KafkaSink`]).
    pub fn keyed(&self) -> bool {
        self.by_key
    }

    /// Appends one row (produced at the latest at the next [`commit_into`](Self::commit_into)).
    pub fn write_row(&mut self, key: Option<&[u8]>, line: &[u8]) -> Result<(), String> {
        let p = match key {
            Some(k) if self.by_key => partition_for(k, self.parts.len() as i32) as usize,
            _ => 0,
        };
        self.parts[p].write(key, line)
    }

    /// Hands the pending rows to the producer threads without waiting for Kafka's
    /// acknowledgement (see [`Sink::flush`](crate::runner::sink::Sink::flush)).
    pub fn flush(&mut self) -> Result<(), String> {
        self.parts.iter_mut().try_for_each(PartWriter::send)
    }

    /// Produces every pending row, waits until Kafka acknowledged all of them, and saves
    /// each partition's sequence number reached and the offset to read from after a
    /// crash (see [`KafkaSink`]).
    pub fn commit_into(
        &mut self,
        key: &str,
        positions: &mut BTreeMap<String, u64>,
    ) -> Result<(), String> {
        // Every partition's batch is on its way before any is waited for.
        self.flush()?;
        for part in &mut self.parts {
            let (rows, end) = part.commit()?;
            let slot = if self.by_key {
                slot(key, part.id())
            } else {
                key.to_string()
            };
            positions.insert(format!("{slot}.len"), rows);
            positions.insert(format!("{slot}.kafka_end"), end as u64);
        }
        if self.by_key {
            positions.insert(format!("{key}.kafka_partitions"), self.parts.len() as u64);
        }
        Ok(())
    }

    /// Rows written (sequence numbers handed out), over all partitions.
    pub fn len(&self) -> u64 {
        self.parts.iter().map(PartWriter::len).sum()
    }

    /// True if no row was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The topic's URL.
    pub fn url(&self) -> &TopicUrl {
        &self.url
    }
}

/// Where partition `p`'s positions are saved: partition 0 under the output's own key.
fn slot(key: &str, p: i32) -> String {
    if p == 0 {
        key.to_string()
    } else {
        format!("{key}.p{p}")
    }
}

/// How many partitions the topic has, creating it if missing.
fn topic_partitions(url: &TopicUrl, target: &SinkTarget) -> Result<i32, String> {
    let conn = Conn::connect(url)?;
    if let Some(ids) = conn.partitions(&url.topic)? {
        return Ok(ids.len() as i32);
    }
    conn.create_topic(&url.topic, target.create_partitions)?;
    tracing::info!(
        "created topic {url} ({} partition(s)) for the output",
        target.create_partitions
    );
    Ok(target.create_partitions)
}

/// The partitions rows are placed over: as many as the checkpoint's run used (one for a
/// checkpoint from before rows were placed by key), else as many as the topic has.
fn partitions_kept(
    url: &TopicUrl,
    key: &str,
    positions: &BTreeMap<String, u64>,
    now: i32,
) -> Result<i32, String> {
    let saved = positions
        .get(&format!("{key}.kafka_partitions"))
        .map(|&n| n as i32)
        .or_else(|| {
            positions
                .contains_key(&format!("{key}.kafka_end"))
                .then_some(1)
        });
    match saved {
        None => Ok(now),
        Some(n) if n > now => Err(format!(
            "{url}: the checkpoint wrote {n} partition(s) of it, the topic has {now} now (was it deleted and created again?); start over with --from-scratch"
        )),
        Some(n) => {
            if n < now {
                tracing::warn!(
                    "{url} has {now} partitions, the checkpoint's run wrote {n}: rows keep going to those {n} (each key stays in its partition, in order); --from-scratch spreads them over all {now}"
                );
            }
            Ok(n)
        }
    }
}
