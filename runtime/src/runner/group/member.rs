//! This process as a member of a Kafka consumer group: joins (the leader computes a
//! range assignment, as Kafka clients do), heartbeats on a thread of its own, and
//! tells the tasks when their generation is being revoked or is over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::wire::{self, Wire};

/// One generation's membership, shared by its tasks (through their fences) and the
/// heartbeat thread.
#[derive(Debug)]
pub struct Live {
    /// The generation this member's tasks run under.
    pub generation: i32,
    /// Set when a rebalance starts: tasks stop at the next record with a final
    /// checkpoint (still allowed), so the member can rejoin.
    pub revoke: Arc<AtomicBool>,
    /// Set when the coordinator no longer knows this generation: nothing more may be
    /// written under it.
    lost: AtomicBool,
    /// When this member learned of the rebalance.
    pub revoked_at: OnceLock<Instant>,
    /// The last heartbeat the coordinator accepted.
    last_ok: Mutex<Instant>,
    session: Duration,
}

impl Live {
    fn new(generation: i32, session: Duration) -> Live {
        Live {
            generation,
            revoke: Arc::new(AtomicBool::new(false)),
            revoked_at: OnceLock::new(),
            lost: AtomicBool::new(false),
            last_ok: Mutex::new(Instant::now()),
            session,
        }
    }

    /// `Err` once the generation is over, or no heartbeat was accepted for a whole
    /// session (a frozen process wakes up to this: its partitions may be someone
    /// else's by now, whatever its heartbeat thread has yet to learn).
    pub fn check(&self) -> Result<(), String> {
        let quiet = self.last_ok.lock().map(|t| t.elapsed()).unwrap_or_default();
        if self.lost.load(Ordering::SeqCst) {
            return Err(format!(
                "fenced: generation {} of the group is over (the coordinator dropped this member): this instance writes nothing more for it",
                self.generation
            ));
        }
        if quiet >= self.session {
            return Err(format!(
                "fenced: no heartbeat of generation {} was accepted for {:.1}s (session {:.1}s): this instance writes nothing more for it",
                self.generation,
                quiet.as_secs_f64(),
                self.session.as_secs_f64()
            ));
        }
        Ok(())
    }

    fn lose(&self) {
        let _ = self.revoked_at.set(Instant::now());
        self.lost.store(true, Ordering::SeqCst);
        self.revoke.store(true, Ordering::SeqCst);
    }
}

/// What a join round gave this member.
pub struct Assignment {
    /// The generation the assignment belongs to.
    pub generation: i32,
    /// This member's partitions, sorted.
    pub partitions: Vec<i32>,
    /// Every member's instance name, in member id order (the leader's note).
    pub members: Vec<String>,
    /// Whether this member computed the assignment.
    pub leader: bool,
}

/// The member: its coordinator connection and identity.
pub struct Member {
    wire: Wire,
    brokers: Vec<String>,
    group: String,
    topic: String,
    instance: String,
    member_id: String,
    session: Duration,
    partitions: i32,
}

impl Member {
    /// Finds `group`'s coordinator through the bootstrap `brokers`, each tried in turn,
    /// and connects to it.
    pub fn connect(
        brokers: &[String],
        group: &str,
        topic: &str,
        instance: &str,
        partitions: i32,
        session: Duration,
    ) -> Result<Member, String> {
        let wire = find(brokers, group, session, Duration::from_secs(30))?;
        Ok(Member {
            wire,
            brokers: brokers.to_vec(),
            group: group.to_string(),
            topic: topic.to_string(),
            instance: instance.to_string(),
            member_id: String::new(),
            session,
            partitions,
        })
    }

    /// The coordinator connection was lost (or the coordinator moved): finds it again
    /// through the bootstrap brokers, trying for at most one session.
    fn reconnect(&mut self, why: &str) -> Result<(), String> {
        warn!(
            "group {}: lost the coordinator ({why}); finding it again",
            self.group
        );
        self.wire = find(&self.brokers, &self.group, self.session, self.session)?;
        info!("group {}: reconnected to its coordinator", self.group);
        Ok(())
    }

    /// One join round: JoinGroup until it succeeds, the leader's assignment, SyncGroup.
    pub fn join(&mut self) -> Result<Assignment, String> {
        let sub = wire::encode_subscription(&self.topic, &self.instance);
        loop {
            let j = match self
                .wire
                .join(&self.group, &self.member_id, self.session, &sub)
            {
                Ok(j) => j,
                Err(e) => {
                    self.reconnect(&e)
                        .map_err(|e| format!("group {}: joining: {e}", self.group))?;
                    continue;
                }
            };
            if j.error != wire::NONE {
                debug!("group {}: join answered error {}", self.group, j.error);
            }
            match j.error {
                wire::NONE => {}
                wire::MEMBER_ID_REQUIRED => {
                    self.member_id = j.member_id;
                    continue;
                }
                wire::UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    continue;
                }
                wire::REBALANCE_IN_PROGRESS | wire::COORDINATOR_LOAD_IN_PROGRESS => {
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
                wire::NOT_COORDINATOR | wire::COORDINATOR_NOT_AVAILABLE => {
                    self.reconnect(&format!("join answered error {}", j.error))?;
                    continue;
                }
                e => return Err(format!("group {}: joining: error {e}", self.group)),
            }
            self.member_id = j.member_id.clone();
            let leader = j.leader == j.member_id;
            let plan = if leader {
                range(&j.members, &self.topic, self.partitions)
            } else {
                Vec::new()
            };
            let mine = match self
                .wire
                .sync(&self.group, j.generation, &self.member_id, &plan)
            {
                Ok(m) => m,
                Err(e) => {
                    self.reconnect(&e)
                        .map_err(|e| format!("group {}: syncing: {e}", self.group))?;
                    continue;
                }
            };
            if let Err(code) = &mine {
                debug!("group {}: sync answered error {code}", self.group);
            }
            let bytes = match mine {
                Ok(b) => b,
                // A member joined or left meanwhile: another round.
                Err(wire::REBALANCE_IN_PROGRESS | wire::ILLEGAL_GENERATION) => continue,
                Err(code @ (wire::NOT_COORDINATOR | wire::COORDINATOR_NOT_AVAILABLE)) => {
                    self.reconnect(&format!("sync answered error {code}"))?;
                    continue;
                }
                Err(wire::UNKNOWN_MEMBER_ID) => {
                    self.member_id.clear();
                    continue;
                }
                Err(e) => return Err(format!("group {}: syncing: error {e}", self.group)),
            };
            let (partitions, note) = wire::decode_assignment(&bytes, &self.topic)?;
            return Ok(Assignment {
                generation: j.generation,
                partitions,
                members: note
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
                leader,
            });
        }
    }

    /// Heartbeats for `generation` on a thread of its own until `done` is set; returns
    /// the shared membership state and the thread (which gives the member back).
    pub fn heartbeat(
        mut self,
        generation: i32,
        done: Arc<AtomicBool>,
    ) -> (Arc<Live>, thread::JoinHandle<Member>) {
        let live = Arc::new(Live::new(generation, self.session));
        let l = Arc::clone(&live);
        let every = self.session / 4;
        let h = thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let mut next = Instant::now() + every;
                while !done.load(Ordering::SeqCst) {
                    if Instant::now() < next {
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    next = Instant::now() + every;
                    if l.lost.load(Ordering::SeqCst) {
                        continue;
                    }
                    self.beat(&l);
                }
                self
            })
            .expect("spawning the heartbeat thread");
        (live, h)
    }

    fn beat(&mut self, live: &Live) {
        if cut_now() {
            self.wire.cut();
        }
        let mut code = self
            .wire
            .heartbeat(&self.group, live.generation, &self.member_id);
        if let Ok(c @ (wire::NOT_COORDINATOR | wire::COORDINATOR_NOT_AVAILABLE)) = code {
            code = Err(format!("heartbeat answered error {c}"));
        }
        let code = match code {
            Ok(c) => c,
            Err(e) => {
                // Gone for a whole session already (no broker answers): the generation
                // is over, and the member's loop tries to join again.
                if let Err(e) = self.reconnect(&e) {
                    warn!("group {}: {e}", self.group);
                    live.lose();
                    return;
                }
                match self
                    .wire
                    .heartbeat(&self.group, live.generation, &self.member_id)
                {
                    Ok(c) => c,
                    Err(e) => {
                        warn!("group {}: heartbeat failed: {e}", self.group);
                        return;
                    }
                }
            }
        };
        match code {
            wire::NONE => {
                if let Ok(mut t) = live.last_ok.lock() {
                    *t = Instant::now();
                }
            }
            wire::REBALANCE_IN_PROGRESS => {
                let _ = live.revoked_at.set(Instant::now());
                if !live.revoke.swap(true, Ordering::SeqCst) {
                    info!(
                        "group {}: rebalance: generation {} ends; giving its partitions up (final checkpoint each)",
                        self.group, live.generation
                    );
                }
                // Still a member until the rejoin: the revocation may write.
                if let Ok(mut t) = live.last_ok.lock() {
                    *t = Instant::now();
                }
            }
            code => {
                warn!(
                    "group {}: generation {} is over (heartbeat error {code}): its partitions are someone else's now",
                    self.group, live.generation
                );
                if code == wire::UNKNOWN_MEMBER_ID {
                    self.member_id.clear();
                }
                live.lose();
            }
        }
    }

    /// Leaves the group (the others rebalance at once).
    pub fn leave(mut self) {
        if self.member_id.is_empty() {
            return;
        }
        let mut r = self.wire.leave(&self.group, &self.member_id);
        if let Err(e) = &r {
            if self.reconnect(&e.clone()).is_ok() {
                r = self.wire.leave(&self.group, &self.member_id);
            }
        }
        match r {
            Ok(0) => info!("group {}: left", self.group),
            Ok(code) => warn!("group {}: leaving: error {code}", self.group),
            Err(e) => warn!("group {}: leaving: {e}", self.group),
        }
    }
}

/// Asks each bootstrap broker in turn for `group`'s coordinator and connects to it,
/// round after round until `within` has passed.
fn find(
    brokers: &[String],
    group: &str,
    session: Duration,
    within: Duration,
) -> Result<Wire, String> {
    // A join blocks for up to a rebalance (one session): answers may take that long.
    let wait = session + Duration::from_secs(10);
    let deadline = Instant::now() + within;
    let mut first = true;
    loop {
        let mut why = Vec::new();
        for b in brokers {
            match coordinator_via(b, group, wait) {
                Ok(w) => return Ok(w),
                Err(e) => {
                    if first && brokers.len() > 1 {
                        warn!("group {group}: bootstrap broker {b}: {e}; trying the next");
                    }
                    why.push(e);
                }
            }
        }
        first = false;
        if Instant::now() >= deadline {
            return Err(format!(
                "no coordinator for group {group} through any bootstrap broker within {:.1}s: {}",
                within.as_secs_f64(),
                why.join("; ")
            ));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// The coordinator of `group` as `broker` names it, connected.
fn coordinator_via(broker: &str, group: &str, wait: Duration) -> Result<Wire, String> {
    let mut w = Wire::connect(broker, wait)?;
    let addr = w
        .find_coordinator(group)
        .map_err(|e| format!("{broker}: {e}"))?
        .map_err(|code| format!("{broker}: no coordinator yet (error {code})"))?;
    Wire::connect(&addr, wait).map_err(|e| format!("coordinator {addr}: {e}"))
}

/// Test hook: with `SIMPLESTREAM_CUT_COORDINATOR=<k>` the coordinator connection is cut
/// before the k-th heartbeat of the process, as a network blip or a broker restart would.
fn cut_now() -> bool {
    use std::sync::atomic::AtomicU64;
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static BEATS: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| {
        std::env::var("SIMPLESTREAM_CUT_COORDINATOR")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    at.is_some_and(|k| BEATS.fetch_add(1, Ordering::Relaxed) + 1 == k)
}

/// Kafka's range assignment: members sorted by id, each a contiguous run of
/// partitions, the first `partitions % members` one more.
fn range(members: &[(String, Vec<u8>)], topic: &str, partitions: i32) -> Vec<(String, Vec<u8>)> {
    let mut ids: Vec<(&str, String)> = members
        .iter()
        .map(|(m, s)| (m.as_str(), wire::decode_subscription(s).unwrap_or_default()))
        .collect();
    ids.sort_unstable();
    let note: Vec<&str> = ids.iter().map(|(_, name)| name.as_str()).collect();
    let note = note.join(",");
    let n = ids.len().max(1) as i32;
    let (each, extra) = (partitions / n, partitions % n);
    let mut start = 0;
    ids.iter()
        .enumerate()
        .map(|(i, (id, _))| {
            let len = each + i32::from((i as i32) < extra);
            let parts: Vec<i32> = (start..start + len).collect();
            start += len;
            (
                id.to_string(),
                wire::encode_assignment(topic, &parts, &note),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_gives_every_partition_to_exactly_one_member() {
        let members: Vec<(String, Vec<u8>)> = ["m-c", "m-a", "m-b", "m-d"]
            .iter()
            .map(|m| (m.to_string(), wire::encode_subscription("t", &m[2..])))
            .collect();
        let plan = range(&members, "t", 6);
        let got: Vec<(String, Vec<i32>)> = plan
            .iter()
            .map(|(m, a)| (m.clone(), wire::decode_assignment(a, "t").unwrap().0))
            .collect();
        assert_eq!(
            got,
            vec![
                ("m-a".to_string(), vec![0, 1]),
                ("m-b".to_string(), vec![2, 3]),
                ("m-c".to_string(), vec![4]),
                ("m-d".to_string(), vec![5]),
            ]
        );
        let note = wire::decode_assignment(&plan[0].1, "t").unwrap().1;
        assert_eq!(note, "a,b,c,d");
    }

    #[test]
    fn a_generation_without_an_accepted_heartbeat_for_a_session_is_fenced() {
        assert!(Live::new(3, Duration::from_secs(60)).check().is_ok());
        // A zero session has always run out: no clock decides this verdict.
        let e = Live::new(3, Duration::ZERO).check().unwrap_err();
        assert!(e.contains("no heartbeat of generation 3"), "{e}");
        let live = Live::new(4, Duration::from_secs(60));
        live.lose();
        assert!(live
            .check()
            .unwrap_err()
            .contains("generation 4 of the group is over"));
        assert!(live.revoke.load(Ordering::SeqCst));
    }
}
