//! [`Producer`]: produce requests to one partition's leader over a connection of our
//! own, the records encoded straight from a [`Batch`] into one reused buffer.

use super::batch::Batch;
use super::leader::{connect_leader, refused, Failed};
use super::record_batch::{self, Stamp};
use crate::kafka_wire::{Buf, Conn, Cursor};

const PRODUCE: i16 = 0;
/// How long the leader may wait for its replicas' acknowledgements (acks=all).
const ACK_TIMEOUT_MS: i32 = 4_000;

/// A producer of one partition, acks=all. Its batches carry the writer's producer id and
/// epoch, which fence it on the broker's side; the writer's sequence headers and tail
/// read make retries exact.
pub(super) struct Producer {
    brokers: Vec<String>,
    topic: String,
    partition: i32,
    leader: Option<Conn>,
    request: Vec<u8>,
}

impl Producer {
    pub(super) fn new(brokers: &[String], topic: &str, partition: i32) -> Producer {
        Producer {
            brokers: brokers.to_vec(),
            topic: topic.to_string(),
            partition,
            leader: None,
            request: Vec::new(),
        }
    }

    /// Appends the rows of `rows` from the `skip`-th on; returns the offset of the first.
    pub(super) fn produce(
        &mut self,
        rows: &Batch,
        skip: usize,
        stamp: &Stamp,
    ) -> Result<i64, Failed> {
        let mut leader = match self.leader.take() {
            Some(c) => c,
            None => connect_leader(&self.brokers, &self.topic, self.partition)?,
        };
        leader.start(&mut self.request, PRODUCE, 3);
        let out = &mut self.request;
        produce_head(out, &self.topic, self.partition);
        let size_at = out.len();
        out.extend_from_slice(&0i32.to_be_bytes());
        record_batch::encode(out, rows, skip, stamp);
        let size = (out.len() - size_at - 4) as i32;
        out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
        let answer = leader.finish(out).map_err(Failed::Transient)?;
        let base = parse_produce(&answer, self.partition)?;
        self.leader = Some(leader);
        Ok(base)
    }
}

/// Produce v3 up to the partition's records: no transaction, acks=all, one topic with
/// one partition.
fn produce_head(out: &mut Vec<u8>, topic: &str, partition: i32) {
    let mut b = Buf(std::mem::take(out));
    b.i16(-1).i16(-1).i32(ACK_TIMEOUT_MS);
    b.i32(1).str(topic).i32(1).i32(partition);
    *out = b.0;
}

/// The partition's base offset in a produce v3 answer.
fn parse_produce(answer: &[u8], partition: i32) -> Result<i64, Failed> {
    let bad = |e: String| Failed::Fatal(format!("a produce answer that cannot be read: {e}"));
    let mut c = Cursor(answer);
    for _ in 0..c.count().map_err(bad)? {
        c.str().map_err(bad)?;
        for _ in 0..c.count().map_err(bad)? {
            let p = c.i32().map_err(bad)?;
            let code = c.i16().map_err(bad)?;
            let base = c.i64().map_err(bad)?;
            c.i64().map_err(bad)?; // log append time
            if p == partition {
                return match code {
                    0 => Ok(base),
                    _ => Err(refused(code, "producing")),
                };
            }
        }
    }
    Err(bad(format!("partition {partition} is not in it")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_give_the_offset_the_leader_or_why_not() {
        let mut a = Buf::default();
        a.i32(1).str("out").i32(3);
        a.i32(0).i16(0).i32(0).i32(7).i32(0).i32(0); // partition 0: offset 7
        a.i32(1).i16(6).i32(0).i32(0).i32(0).i32(0); // partition 1: not the leader
        a.i32(3).i16(90).i32(0).i32(0).i32(0).i32(0); // partition 3: an older epoch
        a.i32(0); // throttle time
        assert_eq!(parse_produce(&a.0, 0), Ok(7));
        assert!(matches!(parse_produce(&a.0, 1), Err(Failed::Transient(_))));
        assert!(matches!(parse_produce(&a.0, 2), Err(Failed::Fatal(_))));
        assert!(matches!(parse_produce(&a.0, 3), Err(Failed::Fenced(_))));
        assert!(matches!(parse_produce(&a.0[..9], 0), Err(Failed::Fatal(_))));
    }
}
