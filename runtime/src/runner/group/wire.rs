//! The few Kafka group-membership requests a member sends, encoded by hand at old,
//! widely served versions (FindCoordinator v0, JoinGroup v1, SyncGroup v0, Heartbeat
//! v0, LeaveGroup v0), over one blocking TCP connection to the group's coordinator.
//! The client library used for records (rskafka) has no group API.
//!
//! ```
//! use simplestream_runtime::runner::group::wire::{decode_assignment, encode_assignment};
//! let bytes = encode_assignment("orders", &[0, 3], "a,b");
//! assert_eq!(decode_assignment(&bytes, "orders").unwrap(), (vec![0, 3], "a,b".to_string()));
//! ```

use std::time::Duration;

use crate::kafka_wire::{Buf, Conn, Cursor};

const FIND_COORDINATOR: i16 = 10;
const JOIN_GROUP: i16 = 11;
const HEARTBEAT: i16 = 12;
const LEAVE_GROUP: i16 = 13;
const SYNC_GROUP: i16 = 14;

/// Error codes a member acts on.
pub const NONE: i16 = 0;
/// The coordinator is still loading its groups: retry.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// The coordinator is still loading or moving: retry.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// This broker is not (or no longer) the group's coordinator: find it again.
pub const NOT_COORDINATOR: i16 = 16;
/// This member's generation is over: rejoin.
pub const ILLEGAL_GENERATION: i16 = 22;
/// The coordinator forgot this member (its session expired): rejoin with a new id.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// A rebalance started: give the partitions up and rejoin.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// The first join only asks for a member id: join again with it.
pub const MEMBER_ID_REQUIRED: i16 = 79;

/// One member's subscription (consumer protocol v0): the topic, and the instance's
/// name as user data, so the leader can log who owns what.
pub fn encode_subscription(topic: &str, instance: &str) -> Vec<u8> {
    let mut b = Buf::default();
    b.i16(0).i32(1).str(topic).bytes(Some(instance.as_bytes()));
    b.0
}

/// The instance name in a member's subscription.
pub fn decode_subscription(bytes: &[u8]) -> Result<String, String> {
    let mut c = Cursor(bytes);
    c.i16()?;
    for _ in 0..c.count()? {
        c.str()?;
    }
    String::from_utf8(c.bytes()?).map_err(|_| "an instance name is not UTF-8".into())
}

/// One member's assignment (consumer protocol v0): partitions of one topic, and the
/// leader's note (the members' instance names) as user data.
pub fn encode_assignment(topic: &str, parts: &[i32], note: &str) -> Vec<u8> {
    let mut b = Buf::default();
    b.i16(0).i32(1).str(topic).i32(parts.len() as i32);
    for &p in parts {
        b.i32(p);
    }
    b.bytes(Some(note.as_bytes()));
    b.0
}

/// The partitions of `topic` in an assignment (none in an empty one), and its note.
pub fn decode_assignment(bytes: &[u8], topic: &str) -> Result<(Vec<i32>, String), String> {
    if bytes.is_empty() {
        return Ok((Vec::new(), String::new()));
    }
    let mut c = Cursor(bytes);
    c.i16()?;
    let mut out = Vec::new();
    for _ in 0..c.count()? {
        let t = c.str()?;
        for _ in 0..c.count()? {
            let p = c.i32()?;
            if t == topic {
                out.push(p);
            }
        }
    }
    out.sort_unstable();
    let note = c.bytes()?;
    Ok((out, String::from_utf8_lossy(&note).into_owned()))
}

/// A JoinGroup answer.
pub struct Joined {
    /// The error code (0: joined).
    pub error: i16,
    /// The generation joined.
    pub generation: i32,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// Every member's id and subscription (the leader's answer only).
    pub members: Vec<(String, Vec<u8>)>,
}

/// A blocking connection to one broker.
pub struct Wire(Conn);

impl Wire {
    /// Connects to `addr` (`host:port`); `wait` bounds every answer.
    pub fn connect(addr: &str, wait: Duration) -> Result<Wire, String> {
        Conn::connect(addr, wait).map(Wire)
    }

    /// Cuts the connection (a test hook's broken network).
    pub fn cut(&self) {
        self.0.cut();
    }

    fn call(&mut self, key: i16, version: i16, body: &Buf) -> Result<Vec<u8>, String> {
        self.0.call(key, version, &body.0)
    }

    /// The coordinator of `group`: `host:port`.
    pub fn find_coordinator(&mut self, group: &str) -> Result<Result<String, i16>, String> {
        let mut b = Buf::default();
        b.str(group);
        let r = self.call(FIND_COORDINATOR, 0, &b)?;
        let mut c = Cursor(&r);
        let error = c.i16()?;
        let _node = c.i32()?;
        let host = c.str()?;
        let port = c.i32()?;
        Ok(if error == NONE {
            Ok(format!("{host}:{port}"))
        } else {
            Err(error)
        })
    }

    /// Joins (or rejoins) `group`; blocks until the coordinator completes the round.
    pub fn join(
        &mut self,
        group: &str,
        member_id: &str,
        timeout: Duration,
        subscription: &[u8],
    ) -> Result<Joined, String> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut b = Buf::default();
        b.str(group).i32(ms).i32(ms).str(member_id).str("consumer");
        b.i32(1).str("range").bytes(Some(subscription));
        let r = self.call(JOIN_GROUP, 1, &b)?;
        let mut c = Cursor(&r);
        let error = c.i16()?;
        let generation = c.i32()?;
        let _protocol = c.str()?;
        let leader = c.str()?;
        let member_id = c.str()?;
        let mut members = Vec::new();
        for _ in 0..c.count()? {
            members.push((c.str()?, c.bytes()?));
        }
        Ok(Joined {
            error,
            generation,
            leader,
            member_id,
            members,
        })
    }

    /// Hands the leader's assignments in (others send none) and gets this member's.
    pub fn sync(
        &mut self,
        group: &str,
        generation: i32,
        member_id: &str,
        assignments: &[(String, Vec<u8>)],
    ) -> Result<Result<Vec<u8>, i16>, String> {
        let mut b = Buf::default();
        b.str(group).i32(generation).str(member_id);
        b.i32(assignments.len() as i32);
        for (m, a) in assignments {
            b.str(m).bytes(Some(a));
        }
        let r = self.call(SYNC_GROUP, 0, &b)?;
        let mut c = Cursor(&r);
        let error = c.i16()?;
        let bytes = c.bytes()?;
        Ok(if error == NONE { Ok(bytes) } else { Err(error) })
    }

    /// One heartbeat: the error code (0 while the generation holds).
    pub fn heartbeat(
        &mut self,
        group: &str,
        generation: i32,
        member_id: &str,
    ) -> Result<i16, String> {
        let mut b = Buf::default();
        b.str(group).i32(generation).str(member_id);
        let r = self.call(HEARTBEAT, 0, &b)?;
        Cursor(&r).i16()
    }

    /// Leaves `group` at once (no session timeout for the others to wait out).
    pub fn leave(&mut self, group: &str, member_id: &str) -> Result<i16, String> {
        let mut b = Buf::default();
        b.str(group).str(member_id);
        let r = self.call(LEAVE_GROUP, 0, &b)?;
        Cursor(&r).i16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_and_assignments_round_trip_and_truncation_is_an_error() {
        let s = encode_subscription("orders", "instance-a");
        assert_eq!(decode_subscription(&s).unwrap(), "instance-a");
        let a = encode_assignment("orders", &[4, 1], "x");
        assert_eq!(
            decode_assignment(&a, "orders").unwrap(),
            (vec![1, 4], "x".into())
        );
        assert_eq!(decode_assignment(&a, "other").unwrap().0, Vec::<i32>::new());
        assert!(decode_assignment(&a[..a.len() - 6], "orders").is_err());
        assert!(decode_subscription(&s[..3]).is_err());
    }
}
