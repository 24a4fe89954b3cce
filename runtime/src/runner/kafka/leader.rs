//! A partition's leader: found with a Metadata v4 request to the bootstrap brokers,
//! connected to with a connection of our own (produce and fetch requests).

use std::time::Duration;

use crate::kafka_wire::{Buf, Conn, Cursor};

const METADATA: i16 = 3;
/// Longest a connect or an answer may take before the broker counts as not answering.
pub(super) const WAIT: Duration = Duration::from_secs(5);

/// Why a request to a partition's leader failed.
#[derive(Debug, PartialEq)]
pub(super) enum Failed {
    /// The broker does not answer, or is not ready (no leader yet, leader moved): try
    /// again, after reading what landed.
    Transient(String),
    /// The topic or partition is not there.
    Gone,
    /// The broker refused a batch of an older producer epoch (`code`): another owner
    /// claimed the partition's rows since.
    Fenced(&'static str),
    /// Any other refusal, as a message.
    Fatal(String),
}

/// Asks each bootstrap broker in turn for the partition's leader, and connects to it.
pub(super) fn connect_leader(
    brokers: &[String],
    topic: &str,
    partition: i32,
) -> Result<Conn, Failed> {
    let mut why = Vec::new();
    for b in brokers {
        let answer =
            Conn::connect(b, WAIT).and_then(|mut c| c.call(METADATA, 4, &metadata_request(topic)));
        match answer
            .map_err(Failed::Transient)
            .and_then(|a| leader_of(&a, topic, partition))
        {
            Ok(addr) => return Conn::connect(&addr, WAIT).map_err(Failed::Transient),
            Err(Failed::Transient(e)) => why.push(format!("{b}: {e}")),
            Err(e) => return Err(e),
        }
    }
    Err(Failed::Transient(why.join("; ")))
}

/// Metadata v4 of one topic, without creating it.
fn metadata_request(topic: &str) -> Vec<u8> {
    let mut b = Buf::default();
    b.i32(1).str(topic).i8(0);
    b.0
}

/// `host:port` of the partition's leader in a metadata v4 answer.
fn leader_of(answer: &[u8], topic: &str, partition: i32) -> Result<String, Failed> {
    let bad = |e: String| Failed::Fatal(format!("a metadata answer that cannot be read: {e}"));
    let mut c = Cursor(answer);
    c.i32().map_err(bad)?; // throttle time
    let mut brokers = Vec::new();
    for _ in 0..c.count().map_err(bad)? {
        let id = c.i32().map_err(bad)?;
        let host = c.str().map_err(bad)?;
        let port = c.i32().map_err(bad)?;
        c.nullable_str().map_err(bad)?; // rack
        brokers.push((id, format!("{host}:{port}")));
    }
    c.nullable_str().map_err(bad)?; // cluster id
    c.i32().map_err(bad)?; // controller
    for _ in 0..c.count().map_err(bad)? {
        let code = c.i16().map_err(bad)?;
        let name = c.str().map_err(bad)?;
        c.i8().map_err(bad)?; // internal
        if name == topic && code != 0 {
            return Err(refused(code, "finding the partition's leader"));
        }
        for _ in 0..c.count().map_err(bad)? {
            let code = c.i16().map_err(bad)?;
            let p = c.i32().map_err(bad)?;
            let leader = c.i32().map_err(bad)?;
            for _ in 0..2 {
                for _ in 0..c.count().map_err(bad)? {
                    c.i32().map_err(bad)?; // replicas, in-sync replicas
                }
            }
            if name != topic || p != partition {
                continue;
            }
            if code != 0 {
                return Err(refused(code, "finding the partition's leader"));
            }
            return match brokers.iter().find(|(id, _)| *id == leader) {
                Some((_, addr)) => Ok(addr.clone()),
                None => Err(Failed::Transient(format!("partition {p} has no leader"))),
            };
        }
    }
    Err(Failed::Gone)
}

/// A broker's error code: the topic gone, worth waiting for, or a refusal.
pub(super) fn refused(code: i16, what: &str) -> Failed {
    match code {
        3 => Failed::Gone,
        5 => Failed::Transient("LEADER_NOT_AVAILABLE".into()),
        6 => Failed::Transient("NOT_LEADER_OR_FOLLOWER".into()),
        7 => Failed::Transient("REQUEST_TIMED_OUT".into()),
        8 => Failed::Transient("BROKER_NOT_AVAILABLE".into()),
        13 => Failed::Transient("NETWORK_EXCEPTION".into()),
        19 | 20 => Failed::Transient("NOT_ENOUGH_REPLICAS".into()),
        56 => Failed::Transient("KAFKA_STORAGE_ERROR".into()),
        47 => Failed::Fenced("INVALID_PRODUCER_EPOCH, error 47"),
        90 => Failed::Fenced("PRODUCER_FENCED, error 90"),
        10 => Failed::Fatal(format!("{what}: MESSAGE_TOO_LARGE (error 10)")),
        18 => Failed::Fatal(format!("{what}: RECORD_LIST_TOO_LARGE (error 18)")),
        29 => Failed::Fatal(format!("{what}: TOPIC_AUTHORIZATION_FAILED (error 29)")),
        _ => Failed::Fatal(format!("{what}: Kafka error code {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_answers_give_the_leader_or_why_not() {
        let mut m = Buf::default();
        m.i32(0).i32(2);
        m.i32(1).str("h1").i32(9092).i16(-1);
        m.i32(2).str("h2").i32(9093).i16(-1);
        m.i16(-1).i32(1); // cluster id, controller
        m.i32(1).i16(0).str("out").i8(0).i32(2);
        m.i16(0).i32(0).i32(2).i32(1).i32(2).i32(0); // partition 0 led by broker 2
        m.i16(5).i32(1).i32(-1).i32(0).i32(0); // partition 1: no leader yet
        assert_eq!(leader_of(&m.0, "out", 0), Ok("h2:9093".to_string()));
        assert!(matches!(
            leader_of(&m.0, "out", 1),
            Err(Failed::Transient(_))
        ));
        assert_eq!(leader_of(&m.0, "out", 2), Err(Failed::Gone));
        assert_eq!(leader_of(&m.0, "other", 0), Err(Failed::Gone));
    }
}
