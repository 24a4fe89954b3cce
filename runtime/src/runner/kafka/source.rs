//! [`KafkaSource`]: every partition of a topic, merged in event-time order.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};

use rskafka::client::partition::{OffsetAt, PartitionClient};
use serde::de::DeserializeOwned;

use super::conn::Conn;
use super::TopicUrl;
use crate::runner::input::parse_event;
use crate::runner::sink::STOPPED;
use crate::runner::StartAt;

/// Bytes asked for by one fetch (more when a single batch is bigger).
const FETCH_BYTES: usize = 4 << 20;
const MAX_FETCH_BYTES: usize = 64 << 20;
/// How long a fetch at the end of a partition waits for records (tansu answers nothing
/// at all to a wait of 0).
const FETCH_WAIT_MS: i32 = 200;
/// Follow mode: how long a partition's reader waits after a fetch found nothing.
const RECHECK: Duration = Duration::from_millis(500);

/// One record taken from the topic.
pub struct Polled<E> {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The event, or why the value is not one.
    pub event: Result<E, String>,
    /// The value as read.
    pub raw: Vec<u8>,
}

struct Part<E> {
    id: i32,
    /// Batches fetched ahead by this partition's reader thread.
    rx: Receiver<Fetched>,
    /// Offset of the next record to hand out.
    next: i64,
    /// Fetched, parsed, not handed out yet, with each one's event time.
    buf: VecDeque<(i64, Polled<E>)>,
    /// Bounded run: a fetch at `next` found nothing, so this partition is read.
    done: bool,
    /// When a fetch last found nothing after records came (follow mode).
    empty_since: Option<Instant>,
}

/// Reads every partition of a topic. Records are handed out in event-time order across
/// partitions (the smallest event time among the partitions' next records, ties to the
/// lower partition; a record that is not an event first), so each partition's watermark
/// holds the pipeline's back: the pipeline's watermark (the largest event time seen,
/// less `max_delay`) never passes the next record of any partition by more than that
/// partition's own disorder. Without `follow`, a partition is read once a fetch at its
/// next offset finds nothing, and the run ends when all are. With `follow`, a partition
/// that has had nothing for `idle` is idle: the others go on without it (and records
/// it gets later may be late), so one quiet partition does not stop the watermark for
/// good. The order depends only on the records and the offsets started from, so a
/// restart from a checkpoint hands out what the uninterrupted run did.
pub struct KafkaSource<E> {
    url: TopicUrl,
    parts: Vec<Part<E>>,
    time: fn(&E) -> Option<i64>,
    follow: bool,
    idle: Duration,
    /// Records handed out, across restarts.
    pub consumed: u64,
}

/// What [`KafkaSource::poll`] found.
pub enum Poll<E> {
    /// The next record.
    Record(Polled<E>),
    /// Follow mode: nothing to read now.
    Idle,
    /// Every partition is read (not in follow mode).
    End,
}

impl<E: DeserializeOwned> KafkaSource<E> {
    /// Opens `url` at the offsets saved in `positions` (`source.kafka.p{N}`); partitions
    /// the checkpoint does not name start at `from` on a first start, at their earliest
    /// offset otherwise (they were added since). With `only`, just that partition is
    /// read (a partition's task).
    pub fn open(
        url: &TopicUrl,
        positions: &BTreeMap<String, u64>,
        from: StartAt,
        follow: bool,
        idle: Duration,
        time: fn(&E) -> Option<i64>,
        only: Option<i32>,
    ) -> Result<Self, String> {
        let conn = Conn::connect(url)?;
        let Some(mut ids) = conn.partitions(&url.topic)? else {
            return Err(format!(
                "{url}: there is no topic `{}` on the brokers (create it, or fix the URL)",
                url.topic
            ));
        };
        if let Some(p) = only {
            if !ids.contains(&p) {
                return Err(format!(
                    "{url}: there is no partition {p} (the topic has {})",
                    ids.len()
                ));
            }
            ids = vec![p];
        }
        let restored = positions.contains_key("source.kafka.partitions");
        if !positions.is_empty() && !restored {
            return Err(format!(
                "the checkpoint was taken reading a file, not {url}: use another --instance, or --from-scratch"
            ));
        }
        let mut parts = Vec::with_capacity(ids.len());
        for id in ids {
            let client = conn.partition(&url.topic, id)?;
            let saved = positions.get(&format!("source.kafka.p{id}")).copied();
            let earliest = conn.offset(&client, OffsetAt::Earliest)?;
            let next = match saved {
                Some(o) => o as i64,
                None if restored || from == StartAt::Earliest => earliest,
                None => conn.end_of(&client, "reading the end of the topic")?,
            };
            if next < earliest {
                return Err(format!(
                    "{url}: partition {id} no longer holds offset {next} (its oldest record is {earliest}: deleted by retention); the records in between are lost to this run; use --from-scratch to start over"
                ));
            }
            if saved.is_some() && next > conn.offset(&client, OffsetAt::Latest)? {
                let end = conn.end_of(&client, "reading the end of the topic")?;
                if next > end {
                    return Err(format!(
                        "{url}: partition {id} ends at offset {end}, before offset {next} the checkpoint read up to: the topic was deleted and created again (or emptied); what it holds now is not what the checkpoint read; use --from-scratch to start over"
                    ));
                }
            }
            parts.push(Part {
                id,
                rx: spawn_reader(url, id, next, follow)?,
                next,
                buf: VecDeque::new(),
                done: false,
                empty_since: None,
            });
        }
        let saved_parts = positions.get("source.kafka.partitions").copied();
        if saved_parts.is_some_and(|n| n as usize > parts.len()) {
            return Err(format!(
                "{url}: the checkpoint read {} partitions, the topic has {} now (was it deleted and created again?)",
                saved_parts.unwrap_or(0),
                parts.len()
            ));
        }
        Ok(KafkaSource {
            url: url.clone(),
            parts,
            time,
            follow,
            idle,
            consumed: positions.get("source.offset").copied().unwrap_or(0),
        })
    }

    /// The next record in event-time order (see [`KafkaSource`]).
    pub fn poll(&mut self) -> Result<Poll<E>, String> {
        for i in 0..self.parts.len() {
            let p = &self.parts[i];
            if p.buf.is_empty() && !p.done {
                self.fill(i)?;
            }
        }
        let now = Instant::now();
        let waiting = self.parts.iter().any(|p| {
            p.buf.is_empty()
                && !p.done
                && p.empty_since
                    .is_none_or(|t| now.duration_since(t) < self.idle)
        });
        if waiting && self.follow {
            // A partition with nothing yet holds the others back until it is idle.
            return Ok(Poll::Idle);
        }
        let best = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.buf.front().map(|(t, _)| (*t, i)))
            .min();
        let Some((_, i)) = best else {
            return Ok(if self.follow { Poll::Idle } else { Poll::End });
        };
        let part = &mut self.parts[i];
        let (_, rec) = part.buf.pop_front().expect("a head");
        part.next = rec.offset + 1;
        self.consumed += 1;
        Ok(Poll::Record(rec))
    }

    /// Puts back the record [`poll`](Self::poll) just gave (a bad record in `fail` mode:
    /// the checkpoint is taken before it).
    pub fn unpoll(&mut self, rec: Polled<E>) {
        let time = rec
            .event
            .as_ref()
            .ok()
            .and_then(self.time)
            .unwrap_or(i64::MIN);
        if let Some(p) = self.parts.iter_mut().find(|p| p.id == rec.partition) {
            p.next = rec.offset;
            p.buf.push_front((time, rec));
            self.consumed -= 1;
        }
    }

    /// Saves every partition's next offset under `source.kafka.p{N}`, the number of
    /// partitions, and the records read as `source.offset`.
    pub fn save_positions(&self, positions: &mut BTreeMap<String, u64>) {
        for p in &self.parts {
            positions.insert(format!("source.kafka.p{}", p.id), p.next as u64);
        }
        positions.insert("source.kafka.partitions".into(), self.parts.len() as u64);
        positions.insert("source.offset".into(), self.consumed);
    }

    /// The topic's URL.
    pub fn url(&self) -> &TopicUrl {
        &self.url
    }

    /// Takes the next batch of partition `i` from its reader thread. Following, it
    /// does not wait for one: a quiet partition's fetch must not hold up the others
    /// (it holds back only the watermark, until it is idle).
    fn fill(&mut self, i: usize) -> Result<(), String> {
        let (id, next) = (self.parts[i].id, self.parts[i].next);
        let got = if self.follow {
            match self.parts[i].rx.try_recv() {
                Ok(f) => Some(f),
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => None,
            }
        } else {
            self.parts[i].rx.recv().ok()
        };
        let records = match got {
            Some(Fetched::Records(r)) => r,
            Some(Fetched::Error(e)) => return Err(e),
            Some(Fetched::Nothing) | None => Vec::new(),
        };
        let part = &mut self.parts[i];
        let mut got = false;
        // Whole batches come back: skip what is before `next`.
        for (offset, raw) in records.into_iter().filter(|(o, _)| *o >= next) {
            got = true;
            let event = if raw.is_empty() {
                Err("the record has no value (expected a JSON object)".to_string())
            } else {
                parse_event::<E>(&raw)
            };
            let time = event.as_ref().ok().and_then(self.time).unwrap_or(i64::MIN);
            part.buf.push_back((
                time,
                Polled {
                    partition: id,
                    offset,
                    event,
                    raw,
                },
            ));
        }
        if got {
            part.empty_since = None;
        } else if self.follow {
            part.empty_since.get_or_insert_with(Instant::now);
        } else {
            part.done = true;
        }
        Ok(())
    }
}

/// What a partition's reader thread hands over.
enum Fetched {
    /// Records from the offset it had reached: (offset, value).
    Records(Vec<(i64, Vec<u8>)>),
    /// A fetch found nothing (bounded: the partition is read; follow: nothing yet).
    Nothing,
    /// It stopped on this error.
    Error(String),
}

/// Fetches partition `id` from `next` on, in a thread of its own with its own
/// connection, two batches ahead of the pipeline: fetching and decoding overlap with
/// processing.
fn spawn_reader(
    url: &TopicUrl,
    id: i32,
    next: i64,
    follow: bool,
) -> Result<Receiver<Fetched>, String> {
    let conn = Conn::connect(url)?;
    let client = conn.partition(&url.topic, id)?;
    let (tx, rx) = sync_channel(2);
    std::thread::Builder::new()
        .name(format!("kafka-p{id}"))
        .spawn(move || read_ahead(&conn, &client, id, next, follow, &tx))
        .map_err(|e| format!("starting a reader of partition {id}: {e}"))?;
    Ok(rx)
}

fn read_ahead(
    conn: &Conn,
    client: &PartitionClient,
    id: i32,
    mut next: i64,
    follow: bool,
    tx: &SyncSender<Fetched>,
) {
    loop {
        let fetched = match fetch(conn, client, id, next) {
            Ok(r) if r.is_empty() => match conn.check_exists(&format!("reading partition {id}")) {
                Ok(()) => Fetched::Nothing,
                Err(e) => Fetched::Error(e),
            },
            Ok(r) => {
                next = r.last().map_or(next, |(o, _)| o + 1);
                Fetched::Records(r)
            }
            Err(e) => Fetched::Error(e),
        };
        let last = matches!(fetched, Fetched::Error(_))
            || (!follow && matches!(fetched, Fetched::Nothing));
        let nothing = matches!(fetched, Fetched::Nothing);
        if tx.send(fetched).is_err() || last {
            return;
        }
        if nothing {
            std::thread::sleep(RECHECK);
        }
    }
}

/// The records at `next` and after (whole batches come back: those before are left
/// out), asking for more bytes when a batch is bigger than the first request allows.
fn fetch(
    conn: &Conn,
    client: &PartitionClient,
    id: i32,
    next: i64,
) -> Result<Vec<(i64, Vec<u8>)>, String> {
    let mut max = FETCH_BYTES;
    loop {
        let bytes = 1..i32::try_from(max).unwrap_or(i32::MAX);
        let r = conn.wait(&format!("reading partition {id}"), || {
            client.fetch_records(next, bytes.clone(), FETCH_WAIT_MS)
        });
        let (records, high) = match r {
            Err(e) if e.contains("OffsetOutOfRange") => {
                return Err(format!(
                    "{}: partition {id} no longer holds offset {next}, the next one to read: the topic was deleted and created again, or retention deleted records not read yet{STOPPED}",
                    conn.url()
                ))
            }
            r => r?,
        };
        if records.is_empty() && next < high && max < MAX_FETCH_BYTES {
            max = (max * 2).min(MAX_FETCH_BYTES);
            continue;
        }
        let mut out: Vec<(i64, Vec<u8>)> = records
            .into_iter()
            .filter(|r| r.offset >= next)
            .map(|r| (r.offset, r.record.value.unwrap_or_default()))
            .collect();
        out.sort_by_key(|(o, _)| *o);
        return Ok(out);
    }
}
