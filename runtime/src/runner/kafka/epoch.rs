//! [`Epoch`]: the broker's own fence of an output partition. Each owner of a partition's
//! rows claims the next epoch of a producer id kept under a transactional id (writer,
//! topic, partition) with InitProducerId, as Kafka Streams does per task; every batch
//! it produces carries that id and epoch, and the broker refuses a batch of an older
//! epoch (PRODUCER_FENCED). A check in our own process leaves a window between the
//! check and the send where a freeze can land; the broker's check does not.

use super::leader::{refused, Failed, WAIT};
use crate::kafka_wire::{Buf, Conn, Cursor};

const FIND_COORDINATOR: i16 = 10;
const INIT_PRODUCER_ID: i16 = 22;
/// FindCoordinator's key type of a transactional id.
const TRANSACTION: i8 = 1;
/// Kept by the broker with the producer id; no transaction is ever begun.
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

/// A producer id and the epoch this owner holds it at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Epoch {
    pub id: i64,
    pub epoch: i16,
}

/// The transactional id of `writer`'s rows in partition `partition` of `topic`: the
/// same for every process that takes that writer over (a partition's task), another
/// for another writer of the topic (they must not fence each other).
pub(super) fn transactional_id(writer: &str, topic: &str, partition: i32) -> String {
    format!("simplestream/{writer}/{topic}/{partition}")
}

/// Claims the next epoch of `txn`'s producer id: from its answer on, the broker refuses
/// the batches of every earlier holder.
pub(super) fn claim(brokers: &[String], txn: &str) -> Result<Epoch, Failed> {
    let mut why = Vec::new();
    for b in brokers {
        let found = Conn::connect(b, WAIT)
            .and_then(|mut c| c.call(FIND_COORDINATOR, 1, &find_request(txn)))
            .map_err(Failed::Transient)
            .and_then(|a| coordinator_of(&a));
        match found {
            Ok(addr) => {
                let answer = Conn::connect(&addr, WAIT)
                    .and_then(|mut c| c.call_flexible(INIT_PRODUCER_ID, 3, &init_request(txn)))
                    .map_err(Failed::Transient)?;
                return parse_init(&answer);
            }
            Err(Failed::Transient(e)) => why.push(format!("{b}: {e}")),
            Err(e) => return Err(e),
        }
    }
    Err(Failed::Transient(why.join("; ")))
}

/// FindCoordinator v1 of a transactional id.
fn find_request(txn: &str) -> Vec<u8> {
    let mut b = Buf::default();
    b.str(txn).i8(TRANSACTION);
    b.0
}

/// `host:port` of the coordinator in a FindCoordinator v1 answer.
fn coordinator_of(answer: &[u8]) -> Result<String, Failed> {
    let bad =
        |e: String| Failed::Fatal(format!("a FindCoordinator answer that cannot be read: {e}"));
    let mut c = Cursor(answer);
    c.i32().map_err(bad)?; // throttle time
    let code = c.i16().map_err(bad)?;
    c.nullable_str().map_err(bad)?; // message
    c.i32().map_err(bad)?; // node
    let host = c.str().map_err(bad)?;
    let port = c.i32().map_err(bad)?;
    match code {
        0 => Ok(format!("{host}:{port}")),
        _ => Err(coordinator_refused(
            code,
            "finding the transaction coordinator",
        )),
    }
}

/// InitProducerId v3 (flexible): a new epoch of the transactional id's producer.
fn init_request(txn: &str) -> Vec<u8> {
    let mut b = Buf::default();
    b.compact_str(txn)
        .i32(TRANSACTION_TIMEOUT_MS)
        .i64(-1)
        .i16(-1) // no id or epoch of ours yet
        .uvarint(0); // tagged fields
    b.0
}

/// The producer id and epoch in an InitProducerId v3 answer (after its header).
fn parse_init(answer: &[u8]) -> Result<Epoch, Failed> {
    let bad =
        |e: String| Failed::Fatal(format!("an InitProducerId answer that cannot be read: {e}"));
    let mut c = Cursor(answer);
    c.i32().map_err(bad)?; // throttle time
    let code = c.i16().map_err(bad)?;
    let id = c.i64().map_err(bad)?;
    let epoch = c.i16().map_err(bad)?;
    match code {
        0 if id >= 0 && epoch >= 0 => Ok(Epoch { id, epoch }),
        0 => Err(bad(format!("producer id {id} epoch {epoch}"))),
        _ => Err(coordinator_refused(code, "claiming a producer epoch")),
    }
}

/// A coordinator's error code: the coordinator moving or busy is worth waiting for.
fn coordinator_refused(code: i16, what: &str) -> Failed {
    match code {
        14 => Failed::Transient("COORDINATOR_LOAD_IN_PROGRESS".into()),
        15 => Failed::Transient("COORDINATOR_NOT_AVAILABLE".into()),
        16 => Failed::Transient("NOT_COORDINATOR".into()),
        51 => Failed::Transient("CONCURRENT_TRANSACTIONS".into()),
        53 => Failed::Fatal(format!(
            "{what}: TRANSACTIONAL_ID_AUTHORIZATION_FAILED (error 53): the output's fencing needs the right to write transactional ids `simplestream/*`"
        )),
        _ => refused(code, what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_init_request_is_laid_out_as_kafkas_v3() {
        let r = init_request("t/0");
        let mut want = vec![4, b't', b'/', b'0'];
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.extend_from_slice(&[0xff; 10]); // producer id -1, epoch -1
        want.push(0);
        assert_eq!(r, want);
        assert_eq!(
            init_request(&"x".repeat(200))[..2],
            [0xc9, 0x01],
            "201 as a varint"
        );
    }

    #[test]
    fn answers_give_the_epoch_or_why_not() {
        let mut a = Buf::default();
        a.i32(0).i16(0).i64(7).i16(3);
        a.0.push(0);
        assert_eq!(parse_init(&a.0), Ok(Epoch { id: 7, epoch: 3 }));
        let mut busy = Buf::default();
        busy.i32(0).i16(51).i64(-1).i16(-1);
        assert!(matches!(parse_init(&busy.0), Err(Failed::Transient(_))));
        let mut denied = Buf::default();
        denied.i32(0).i16(53).i64(-1).i16(-1);
        assert!(matches!(parse_init(&denied.0), Err(Failed::Fatal(e)) if e.contains("error 53")));
        assert!(matches!(parse_init(&a.0[..9]), Err(Failed::Fatal(_))));
        let mut found = Buf::default();
        found.i32(0).i16(0).i16(-1).i32(1).str("h").i32(9092);
        assert_eq!(coordinator_of(&found.0), Ok("h:9092".to_string()));
        let mut moving = Buf::default();
        moving.i32(0).i16(15).i16(-1).i32(-1).str("").i32(-1);
        assert!(matches!(
            coordinator_of(&moving.0),
            Err(Failed::Transient(_))
        ));
    }
}
