//! [`Fetcher`]: Fetch v4 requests to one partition's leader over a connection of our
//! own; the answer is read into a buffer the caller hands back for reuse, and its
//! records are decoded in place ([`read_from`]).

use std::ops::Range;

use super::conn::Conn as Client;
use super::decode::{decode, Rec};
use super::leader::{connect_leader, refused, Failed};
use crate::kafka_wire::{Buf, Conn, Cursor, Unread};
use crate::runner::sink::STOPPED;

const FETCH: i16 = 1;
const OFFSET_OUT_OF_RANGE: i16 = 1;
/// The largest answer read: brokers send whole batches, so an answer may pass the
/// bytes asked for by up to a batch (tansu sent 4.16 MiB to a 4 MiB fetch).
const MAX_ANSWER: usize = 2 * MAX_FETCH_BYTES;
/// Bytes asked for by one fetch (more when a single batch is bigger).
const FETCH_BYTES: usize = 4 << 20;
/// The most one fetch asks for, doubling from `FETCH_BYTES` while a batch does not fit.
const MAX_FETCH_BYTES: usize = 64 << 20;
/// How long a fetch at the end of a partition waits for records (tansu answers nothing
/// at all to a wait of 0).
const FETCH_WAIT_MS: i32 = 200;

/// What one fetch found.
pub(super) enum Fetched {
    /// The record set's place in the answer buffer, and the partition's high watermark.
    Records { records: Range<usize>, high: i64 },
    /// The offset asked for is not in the partition (deleted, or past its end).
    OutOfRange,
}

/// Reads one partition of a topic (read committed, as rskafka did).
pub(super) struct Fetcher {
    brokers: Vec<String>,
    topic: String,
    partition: i32,
    leader: Option<Conn>,
    request: Vec<u8>,
}

impl Fetcher {
    pub(super) fn new(brokers: &[String], topic: &str, partition: i32) -> Fetcher {
        Fetcher {
            brokers: brokers.to_vec(),
            topic: topic.to_string(),
            partition,
            leader: None,
            request: Vec::new(),
        }
    }

    /// Records from `offset` on, at most about `max_bytes` of them (the broker may send
    /// a partial batch at the end), waiting up to `wait_ms` for some to arrive. The
    /// answer goes into `answer`; a failed request drops the connection.
    pub(super) fn fetch(
        &mut self,
        offset: i64,
        max_bytes: usize,
        wait_ms: i32,
        answer: &mut Vec<u8>,
    ) -> Result<Fetched, Failed> {
        let mut leader = match self.leader.take() {
            Some(c) => c,
            None => connect_leader(&self.brokers, &self.topic, self.partition)?,
        };
        leader.start(&mut self.request, FETCH, 4);
        let max = i32::try_from(max_bytes).unwrap_or(i32::MAX);
        let mut b = Buf(std::mem::take(&mut self.request));
        b.i32(-1).i32(wait_ms).i32(1).i32(max).i8(1); // replica, wait, min and max bytes, read committed
        b.i32(1).str(&self.topic).i32(1).i32(self.partition);
        b.0.extend_from_slice(&offset.to_be_bytes());
        b.i32(max);
        self.request = b.0;
        match leader.finish_into(&mut self.request, answer, MAX_ANSWER) {
            Ok(()) => {}
            Err(Unread::Io(e)) => return Err(Failed::Transient(e)),
            Err(bad @ Unread::BadLength { .. }) => {
                return Err(Failed::Fatal(format!(
                    "the leader at {} answered a fetch of topic {} partition {} with a {bad}: a broken or foreign peer",
                    leader.peer(),
                    self.topic,
                    self.partition
                )))
            }
        }
        let found = parse_fetch(answer, &self.topic, self.partition)?;
        self.leader = Some(leader);
        Ok(found)
    }
}

/// The records at `at` and after, read into `answer` and listed in `recs` (cleared;
/// whole batches come back: records before `at` are left out), asking for more bytes
/// when a batch is bigger than the first request allows; false if the partition does
/// not hold offset `at`. While the broker does not answer, waits and retries, reported
/// through `client`.
pub(super) fn read_from(
    fetcher: &mut Fetcher,
    client: &Client,
    at: i64,
    answer: &mut Vec<u8>,
    recs: &mut Vec<Rec>,
    what: &str,
) -> Result<bool, String> {
    let mut max = FETCH_BYTES;
    loop {
        recs.clear();
        let (records, high) = match fetcher.fetch(at, max, FETCH_WAIT_MS, answer) {
            Ok(Fetched::Records { records, high }) => (records, high),
            Ok(Fetched::OutOfRange) => return Ok(false),
            Err(Failed::Transient(why)) => {
                client.not_answering(what, &why);
                continue;
            }
            Err(Failed::Gone) => return Err(client.deleted(what)),
            Err(Failed::Fatal(e)) => return Err(format!("{}: {what}: {e}", client.url())),
            Err(Failed::Fenced(code)) => return Err(format!("{}: {what}: {code}", client.url())),
        };
        client.answering(what);
        decode(answer, records, at, recs).map_err(|bad| {
            format!(
                "{}: topic {} partition {} offset {}: {}{STOPPED}",
                client.url(),
                fetcher.topic,
                fetcher.partition,
                bad.offset,
                bad.why
            )
        })?;
        if recs.is_empty() && at < high && max < MAX_FETCH_BYTES {
            max = (max * 2).min(MAX_FETCH_BYTES);
            continue;
        }
        return Ok(true);
    }
}

/// The partition's record set in a Fetch v4 answer, or its error.
fn parse_fetch(answer: &[u8], topic: &str, partition: i32) -> Result<Fetched, Failed> {
    let bad = |e: String| Failed::Fatal(format!("a fetch answer that cannot be read: {e}"));
    let mut c = Cursor(answer);
    c.i32().map_err(bad)?; // throttle time
    for _ in 0..c.count().map_err(bad)? {
        let name = c.str().map_err(bad)?;
        for _ in 0..c.count().map_err(bad)? {
            let p = c.i32().map_err(bad)?;
            let code = c.i16().map_err(bad)?;
            let high = c.i64().map_err(bad)?;
            c.i64().map_err(bad)?; // last stable offset
            for _ in 0..c.count().map_err(bad)? {
                c.i64().map_err(bad)?; // aborted transactions: producer id, first offset
                c.i64().map_err(bad)?;
            }
            let len = c.i32().map_err(bad)?.max(0) as usize;
            let start = answer.len() - c.0.len();
            if c.0.len() < len {
                return Err(bad("a response ended early".into()));
            }
            c.0 = &c.0[len..];
            if name != topic || p != partition {
                continue;
            }
            return match code {
                0 => Ok(Fetched::Records {
                    records: start..start + len,
                    high,
                }),
                OFFSET_OUT_OF_RANGE => Ok(Fetched::OutOfRange),
                _ => Err(refused(code, "fetching")),
            };
        }
    }
    Err(bad(format!("partition {partition} is not in it")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(parts: &[(i32, i16, &[u8])]) -> Vec<u8> {
        let mut a = Buf::default();
        a.i32(0).i32(1).str("in").i32(parts.len() as i32);
        for (p, code, records) in parts {
            a.i32(*p).i16(*code);
            a.0.extend_from_slice(&9i64.to_be_bytes()); // high watermark
            a.0.extend_from_slice(&9i64.to_be_bytes()); // last stable offset
            a.i32(-1).bytes(Some(records));
        }
        a.0
    }

    #[test]
    fn answers_give_the_partitions_records_or_why_not() {
        let a = answer(&[(0, 0, b"zero"), (1, 0, b"one!!"), (2, 1, b""), (3, 3, b"")]);
        let Ok(Fetched::Records { records, high }) = parse_fetch(&a, "in", 1) else {
            panic!("partition 1's records");
        };
        assert_eq!((&a[records], high), (&b"one!!"[..], 9));
        assert!(matches!(parse_fetch(&a, "in", 2), Ok(Fetched::OutOfRange)));
        assert!(matches!(parse_fetch(&a, "in", 3), Err(Failed::Gone)));
        assert!(matches!(parse_fetch(&a, "in", 4), Err(Failed::Fatal(_))));
        assert!(matches!(parse_fetch(&a, "other", 0), Err(Failed::Fatal(_))));
        assert!(matches!(
            parse_fetch(&a[..a.len() - 20], "in", 3),
            Err(Failed::Fatal(_))
        ));
    }

    /// A peer that leads partition 3 of `in` (the metadata answer) and answers the fetch
    /// with `length` as its length prefix; its address.
    fn broken_leader(length: i32) -> String {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let answers = [leads(addr.port()), Vec::new()];
            for (s, body) in l.incoming().zip(answers) {
                let mut s = s.unwrap();
                let mut len = [0; 4];
                s.read_exact(&mut len).unwrap();
                let mut req = vec![0; i32::from_be_bytes(len) as usize];
                s.read_exact(&mut req).unwrap();
                let frame = match body.is_empty() {
                    true => length,
                    false => body.len() as i32 + 4,
                };
                s.write_all(&frame.to_be_bytes()).unwrap();
                s.write_all(&req[4..8]).unwrap(); // correlation id
                s.write_all(&body).unwrap();
            }
        });
        addr.to_string()
    }

    /// Metadata v4: broker 1 at 127.0.0.1:`port` leads partition 3 of `in`.
    fn leads(port: u16) -> Vec<u8> {
        let mut m = Buf::default();
        m.i32(0)
            .i32(1)
            .i32(1)
            .str("127.0.0.1")
            .i32(port.into())
            .i16(-1);
        m.i16(-1).i32(1); // cluster id, controller
        m.i32(1).i16(0).str("in").i8(0).i32(1);
        m.i16(0).i32(3).i32(1).i32(0).i32(0);
        m.0
    }

    #[test]
    fn an_answer_whose_length_is_out_of_bounds_is_fatal_and_names_where() {
        for len in [i32::MAX, -5, 3] {
            let addr = broken_leader(len);
            let mut f = Fetcher::new(std::slice::from_ref(&addr), "in", 3);
            match f.fetch(0, FETCH_BYTES, 0, &mut Vec::new()) {
                Err(Failed::Fatal(e)) => {
                    assert!(e.contains(&format!("the leader at {addr}")), "{e}");
                    assert!(e.contains("topic in partition 3"), "{e}");
                    assert!(e.contains(&format!("length {len} ")), "{e}");
                }
                Err(e) => panic!("length {len}: {e:?}"),
                Ok(_) => panic!("length {len}: an answer"),
            }
        }
    }
}
