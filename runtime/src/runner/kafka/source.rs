//! [`KafkaSource`]: every partition of a topic, merged in event-time order.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender, TryRecvError};

use rskafka::client::partition::OffsetAt;
use serde::de::DeserializeOwned;

use super::conn::Conn;
use super::decode::Rec;
use super::fetch::{read_from, Fetcher};
use super::TopicUrl;
use crate::runner::input::parse_event;
use crate::runner::sink::STOPPED;
use crate::runner::StartAt;

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
    /// The value as read when it is not an event (empty otherwise).
    pub raw: Vec<u8>,
}

struct Part<E> {
    id: i32,
    /// Fetches made ahead by this partition's reader thread.
    rx: Receiver<Ahead>,
    /// Buffers handed back to the reader.
    spare: Sender<Chunk>,
    /// Offset of the next record to hand out.
    next: i64,
    /// The fetch being handed out; its records from `at` on are not parsed yet. Each
    /// is parsed when it becomes the partition's head, just before the pipeline takes
    /// it, while its bytes are still in cache.
    chunk: Chunk,
    at: usize,
    /// The next record, parsed, with its event time (and one put back by `unpoll`).
    head: VecDeque<(i64, Polled<E>)>,
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
            let (rx, spare) = spawn_reader(url, id, next, follow)?;
            parts.push(Part {
                id,
                rx,
                spare,
                next,
                chunk: Chunk::default(),
                at: 0,
                head: VecDeque::new(),
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
            if p.head.is_empty() && !p.done {
                self.fill(i)?;
            }
        }
        if self.follow && self.waiting() {
            // A partition with nothing yet holds the others back until it is idle.
            return Ok(Poll::Idle);
        }
        let best = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.head.front().map(|(t, _)| (*t, i)))
            .min();
        let Some((_, i)) = best else {
            return Ok(if self.follow { Poll::Idle } else { Poll::End });
        };
        let part = &mut self.parts[i];
        let (_, rec) = part.head.pop_front().expect("a head");
        part.next = rec.offset + 1;
        self.consumed += 1;
        Ok(Poll::Record(rec))
    }

    /// Following: a partition has nothing fetched yet and is not idle.
    fn waiting(&self) -> bool {
        let now = Instant::now();
        self.parts.iter().any(|p| {
            p.head.is_empty()
                && !p.done
                && p.empty_since
                    .is_none_or(|t| now.duration_since(t) < self.idle)
        })
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
            p.head.push_front((time, rec));
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

    /// Parses partition `i`'s next record into its head, taking the next fetch from
    /// its reader thread when this one is used up. Following, it does not wait for
    /// one: a quiet partition's fetch must not hold up the others (it holds back only
    /// the watermark, until it is idle).
    fn fill(&mut self, i: usize) -> Result<(), String> {
        let time = self.time;
        let part = &mut self.parts[i];
        if part.at == part.chunk.recs.len() && !self.next_chunk(i)? {
            return Ok(());
        }
        let part = &mut self.parts[i];
        let rec = &part.chunk.recs[part.at];
        part.at += 1;
        let value = &part.chunk.answer[rec.value.clone()];
        let event = if value.is_empty() {
            Err("the record has no value (expected a JSON object)".to_string())
        } else {
            parse_event::<E>(value)
        };
        let raw = match event {
            Ok(_) => Vec::new(),
            Err(_) => value.to_vec(),
        };
        let t = event.as_ref().ok().and_then(time).unwrap_or(i64::MIN);
        let polled = Polled {
            partition: part.id,
            offset: rec.offset,
            event,
            raw,
        };
        part.head.push_back((t, polled));
        Ok(())
    }

    /// Hands partition `i`'s used-up fetch back to its reader and takes the next one;
    /// false if it has no record to hand out (not yet, or, bounded, none at all).
    fn next_chunk(&mut self, i: usize) -> Result<bool, String> {
        let follow = self.follow;
        let part = &mut self.parts[i];
        let got = if follow {
            match part.rx.try_recv() {
                Ok(f) => Some(f),
                Err(TryRecvError::Empty) => return Ok(false),
                Err(TryRecvError::Disconnected) => None,
            }
        } else {
            part.rx.recv().ok()
        };
        let chunk = match got {
            Some(Ahead::Records(c)) => c,
            Some(Ahead::Error(e)) => return Err(e),
            Some(Ahead::Nothing) | None => Chunk::default(),
        };
        // The reader fetches into the used-up buffers again.
        let used = std::mem::replace(&mut part.chunk, chunk);
        let _ = part.spare.send(used);
        // Whole batches come back: skip what is before `next`.
        let next = part.next;
        part.at = part.chunk.recs.partition_point(|r| r.offset < next);
        if part.at < part.chunk.recs.len() {
            part.empty_since = None;
            return Ok(true);
        }
        if follow {
            part.empty_since.get_or_insert_with(Instant::now);
        } else {
            part.done = true;
        }
        Ok(false)
    }
}

/// What a partition's reader thread hands over.
enum Ahead {
    /// Records from the offset it had reached.
    Records(Chunk),
    /// A fetch found nothing (bounded: the partition is read; follow: nothing yet).
    Nothing,
    /// It stopped on this error.
    Error(String),
}

/// A fetch's answer and its records (values as places in it), read in place.
#[derive(Default)]
struct Chunk {
    answer: Vec<u8>,
    recs: Vec<Rec>,
}

/// Fetches partition `id` from `next` on, in a thread of its own with its own
/// connection, two fetches ahead of the pipeline: fetching and decoding overlap with
/// processing. Buffers the pipeline is done with come back on the second channel, and
/// are fetched and decoded into again.
fn spawn_reader(
    url: &TopicUrl,
    id: i32,
    next: i64,
    follow: bool,
) -> Result<(Receiver<Ahead>, Sender<Chunk>), String> {
    let reader = Reader {
        conn: Conn::connect(url)?,
        fetcher: Fetcher::new(&url.brokers, &url.topic, id),
        id,
        what: format!("reading partition {id}"),
    };
    let (tx, rx) = sync_channel(2);
    let (spare_tx, spare) = channel();
    std::thread::Builder::new()
        .name(format!("kafka-p{id}"))
        .spawn(move || reader.read_ahead(next, follow, &tx, &spare))
        .map_err(|e| format!("starting a reader of partition {id}: {e}"))?;
    Ok((rx, spare_tx))
}

/// One partition's reader: our fetches, and the client that lists topics (a deleted
/// topic) and reports a broker that does not answer.
struct Reader {
    conn: Conn,
    fetcher: Fetcher,
    id: i32,
    what: String,
}

impl Reader {
    fn read_ahead(
        mut self,
        mut next: i64,
        follow: bool,
        tx: &SyncSender<Ahead>,
        spare: &Receiver<Chunk>,
    ) {
        loop {
            let Chunk {
                mut answer,
                mut recs,
            } = spare.try_recv().unwrap_or_default();
            let ahead = match self.fetch(next, &mut answer, &mut recs) {
                Ok(()) if recs.is_empty() => match self.conn.check_exists(&self.what) {
                    Ok(()) => Ahead::Nothing,
                    Err(e) => Ahead::Error(e),
                },
                Ok(()) => {
                    next = recs.last().map_or(next, |r| r.offset + 1);
                    Ahead::Records(Chunk { answer, recs })
                }
                Err(e) => Ahead::Error(e),
            };
            let last =
                matches!(ahead, Ahead::Error(_)) || (!follow && matches!(ahead, Ahead::Nothing));
            let nothing = matches!(ahead, Ahead::Nothing);
            if tx.send(ahead).is_err() || last {
                return;
            }
            if nothing {
                std::thread::sleep(RECHECK);
            }
        }
    }

    /// The records at `next` and after, into `recs`; waits while the broker does not
    /// answer.
    fn fetch(
        &mut self,
        next: i64,
        answer: &mut Vec<u8>,
        recs: &mut Vec<Rec>,
    ) -> Result<(), String> {
        match read_from(&mut self.fetcher, &self.conn, next, answer, recs, &self.what)? {
            true => Ok(()),
            false => Err(format!(
                "{}: partition {} no longer holds offset {next}, the next one to read: the topic was deleted and created again, or retention deleted records not read yet{STOPPED}",
                self.conn.url(),
                self.id
            )),
        }
    }
}
