//! The upgrade lab: the orders pipeline in three versions over one store (version 1 is
//! the gallery's `orders`, shown under this lab's name). Deploying
//! another version stops the running one and restores the latest checkpoint into the
//! new one, as a new binary would: version 2 migrates version 1's state (one more
//! column), version 3 is refused (a window resized).

use serde_json::{json, Value};
use simplestream::upgrade::StageAction;
use simplestream::{envelope, Codec, Pipeline};

use super::desk::About;
use super::{sink_line, Lab, LabApi, Origin, PlayStore, Sink};
use crate::gallery::{upgrade_v2 as v2, upgrade_v3 as v3, Demo, Orders};

/// The upgrade lab's instance name (its localStorage prefix).
pub const INSTANCE: &str = "upgrade";
/// Side record: the version deployed (`1`, `2`, `3`).
pub const VERSION_KEY: &str = "version";
/// Side record: the offset of the version 1 checkpoint the running version was migrated
/// from (empty: it was not), where its reference run starts.
pub const UPGRADED_AT_KEY: &str = "upgraded_at";

const V1_TITLE: &str = "Upgrade: version 1 (as deployed)";
const V1_BLURB: &str =
    "Version 1 is the article's orders pipeline. Read some events and take a checkpoint, \
    then deploy version 2: it restores this checkpoint into a customer_stats with one more column.";

/// A version of the pipeline, as deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The article's orders pipeline.
    V1,
    /// One more aggregate column, with its migration.
    V2,
    /// A window resized: refused.
    V3,
}

impl Version {
    /// The version numbered `n`.
    pub fn from_number(n: u8) -> Option<Version> {
        match n {
            1 => Some(Version::V1),
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }

    /// Its number.
    pub fn number(self) -> u8 {
        self as u8 + 1
    }
}

enum Versions<S: PlayStore> {
    V1(Lab<Orders, S>),
    V2(Lab<v2::Orders, S>),
    V3(Lab<v3::Orders, S>),
}

/// Runs `$e` on whichever version's lab `$lab` holds, as `$l`.
macro_rules! on {
    ($lab:expr, $l:ident => $e:expr) => {
        match $lab {
            Versions::V1($l) => $e,
            Versions::V2($l) => $e,
            Versions::V3($l) => $e,
        }
    };
}

impl<S: PlayStore> Versions<S> {
    fn new(v: Version, store: S) -> Self {
        match v {
            Version::V1 => {
                let mut lab = Lab::<Orders, S>::new(store);
                lab.desk.about = About {
                    instance: INSTANCE,
                    title: V1_TITLE,
                    blurb: V1_BLURB,
                    ..About::of::<Orders>()
                };
                Versions::V1(lab)
            }
            Version::V2 => Versions::V2(Lab::new(store)),
            Version::V3 => Versions::V3(Lab::new(store)),
        }
    }
}

/// The upgrade lab: one version of the orders pipeline running at a time.
///
/// ```
/// use simplestream_playground::lab::{LabApi, MemoryPlayStore, UpgradeLab};
/// let mut lab = UpgradeLab::new(MemoryPlayStore::default());
/// lab.start(0);
/// lab.generate(40, 1);
/// lab.checkpoint(2);
/// lab.deploy(2, 3);
/// assert_eq!(lab.offset(), Some(40), "version 2 goes on from version 1's checkpoint");
/// assert!(lab.state_json().contains("max_amount"));
/// ```
pub struct UpgradeLab<S: PlayStore> {
    lab: Versions<S>,
    version: Version,
    /// The offset of the version 1 checkpoint the running version was migrated from.
    upgraded_at: Option<u64>,
}

impl<S: PlayStore> UpgradeLab<S> {
    /// The version saved in `store` (version 1 if none), crashed until
    /// [`start`](LabApi::start).
    pub fn new(store: S) -> Self {
        let saved = |key| store.get_extra(key).unwrap_or_default();
        let version = saved(VERSION_KEY)
            .parse()
            .ok()
            .and_then(Version::from_number)
            .unwrap_or(Version::V1);
        let upgraded_at = saved(UPGRADED_AT_KEY).parse().ok();
        UpgradeLab {
            lab: Versions::new(version, store),
            version,
            upgraded_at,
        }
    }

    /// The version running.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The store.
    pub fn store(&self) -> &S {
        on!(&self.lab, l => l.store())
    }

    /// The last status message and its level.
    pub fn status(&self) -> (&str, &str) {
        on!(&self.lab, l => l.status())
    }

    /// Stops the running version and deploys `v`: it restores the latest checkpoint (a
    /// migration, or a refusal saying why). The source, sink, log and settings stay.
    fn switch(&mut self, v: Version, now: i64) {
        if v == self.version {
            let msg = format!("Version {} is already running.", v.number());
            return on!(&mut self.lab, l => l.desk.say(now, "info", msg));
        }
        on!(&mut self.lab, l => l.desk.save_sink(now));
        let mut store = on!(&self.lab, l => l.store().clone());
        if let Err(e) = store.put_extra(VERSION_KEY, &v.number().to_string()) {
            let msg = format!(
                "Version {} not deployed: it could not be saved ({e}).",
                v.number()
            );
            return on!(&mut self.lab, l => l.desk.say(now, "error", msg));
        }
        let mut next = Versions::new(v, store);
        {
            let old = on!(&mut self.lab, l => &mut l.desk);
            let taken = (
                std::mem::take(&mut old.log),
                std::mem::take(&mut old.dead_letters),
            );
            let settings = (old.auto_every, old.codec, old.read_upto);
            on!(&mut next, l => {
                let d = &mut l.desk;
                (d.log, d.dead_letters) = taken;
                (d.auto_every, d.codec, d.read_upto) = settings;
                d.new_coordinator();
            });
        }
        self.lab = next;
        self.version = v;
        on!(&mut self.lab, l => l.recover(now, false));
        self.after_restore(now);
        let refused = self.offset().is_none();
        on!(&mut self.lab, l => {
            let (level, msg) = (l.desk.status.level, l.desk.status.msg.clone());
            // The restore's own line is said again below, as the deploy's outcome.
            if l.desk.log.last().is_some_and(|line| line.msg == msg) {
                l.desk.log.pop();
            }
            let hint = if refused {
                " Deploy the version that wrote the checkpoint to go on from it."
            } else {
                ""
            };
            l.desk.say(now, level, format!("Deployed version {}. {msg}{hint}", v.number()));
        });
    }

    /// After a restore: a migration from version 1 moves where the reference run
    /// starts; an empty start means there is none.
    fn after_restore(&mut self, now: i64) {
        let last = on!(&self.lab, l => l.last_restore.as_ref().map(|(o, a)| (*o, migrated(a))));
        let upgraded_at = match last {
            Some((offset, true)) => Some(offset),
            Some((_, false)) => self.upgraded_at,
            None if self.offset().is_some() => None,
            None => self.upgraded_at,
        };
        if upgraded_at != self.upgraded_at {
            let text = upgraded_at.map(|o| o.to_string()).unwrap_or_default();
            let saved = on!(&mut self.lab, l => l.store_mut().put_extra(UPGRADED_AT_KEY, &text));
            if let Err(e) = saved {
                let msg = format!("the upgrade offset could not be saved ({e}): a reload compares with a run from offset 0");
                on!(&mut self.lab, l => l.desk.note(now, "warn", msg));
            }
        }
        self.upgraded_at = upgraded_at;
        let origin = upgraded_at.map(|o| on!(&self.lab, l => v1_run(&l.desk.topic, o)));
        on!(&mut self.lab, l => l.set_origin(origin));
    }
}

/// Whether a restore converted state (a migration, a rename, a stage started empty or
/// dropped), rather than restoring every stage as it was.
fn migrated(actions: &[StageAction]) -> bool {
    actions
        .iter()
        .any(|a| !matches!(a, StageAction::Restore { .. }))
}

/// A never-crashed run of version 1 up to `offset`, checkpointed in memory.
fn v1_run(topic: &crate::source::Topic, offset: u64) -> Origin {
    let mut p = Orders::new();
    let mut sink = Sink::default();
    for i in 0..offset {
        let mut outs = Vec::new();
        p.process(topic.event::<Orders>(i), &mut outs);
        for o in &outs {
            sink.push(sink_line(o).0);
        }
    }
    let checkpoint = envelope::encode(&p, Codec::Json, 0, 0, Default::default())
        .expect("a version 1 pipeline encodes");
    Origin {
        checkpoint,
        offset,
        sink,
    }
}

impl<S: PlayStore> LabApi for UpgradeLab<S> {
    fn instance(&self) -> &'static str {
        INSTANCE
    }
    fn title(&self) -> &'static str {
        "Upgrade: a new version restores the old one's checkpoint (migration, refusal)"
    }
    fn start(&mut self, now: i64) {
        on!(&mut self.lab, l => l.start(now));
        self.after_restore(now);
    }
    fn generate(&mut self, n: u64, now: i64) {
        on!(&mut self.lab, l => l.generate(n, now))
    }
    fn checkpoint(&mut self, now: i64) {
        on!(&mut self.lab, l => l.checkpoint(now))
    }
    fn crash(&mut self, now: i64) {
        on!(&mut self.lab, l => l.crash(now))
    }
    fn restore(&mut self, now: i64) {
        on!(&mut self.lab, l => l.restore(now));
        self.after_restore(now);
    }
    fn corrupt_latest(&mut self, now: i64) {
        on!(&mut self.lab, l => l.corrupt_latest(now))
    }
    fn clear_storage(&mut self, now: i64) {
        on!(&mut self.lab, l => l.clear_storage(now))
    }
    fn send_manual(&mut self, customer: &str, amount: &str, ts: &str, now: i64) {
        on!(&mut self.lab, l => l.send_manual(customer, amount, ts, now))
    }
    fn send_late(&mut self, now: i64) {
        on!(&mut self.lab, l => l.send_late(now))
    }
    fn send_malformed(&mut self, now: i64) {
        on!(&mut self.lab, l => l.send_malformed(now))
    }
    fn set_auto(&mut self, every: Option<u64>, now: i64) {
        on!(&mut self.lab, l => l.set_auto(every, now))
    }
    fn set_codec(&mut self, codec: Codec, now: i64) {
        on!(&mut self.lab, l => l.set_codec(codec, now))
    }
    /// The lab's view, and the versions: which runs, where it was upgraded.
    fn view(&mut self, now: i64) -> Value {
        let mut v = on!(&mut self.lab, l => l.view(now));
        let versions: Vec<Value> = [
            (1, V1_TITLE),
            (2, <v2::Orders as Demo>::TITLE),
            (3, <v3::Orders as Demo>::TITLE),
        ]
        .iter()
        .map(|(n, title)| json!({"version": n, "title": title}))
        .collect();
        v["upgrade"] = json!({
            "version": self.version.number(),
            "versions": versions,
            "upgraded_at": self.upgraded_at,
        });
        v
    }
    fn checkpoint_view(&self, name: &str) -> Value {
        on!(&self.lab, l => l.checkpoint_view(name))
    }
    fn offset(&self) -> Option<u64> {
        on!(&self.lab, l => l.offset())
    }
    fn state_json(&self) -> String {
        on!(&self.lab, l => l.state_json())
    }
    fn reference_match(&mut self) -> Option<bool> {
        on!(&mut self.lab, l => l.reference_match())
    }
    fn deploy(&mut self, version: u8, now: i64) -> bool {
        match Version::from_number(version) {
            Some(v) => self.switch(v, now),
            None => {
                let msg = format!("There is no version {version}: deploy 1, 2 or 3.");
                on!(&mut self.lab, l => l.desk.say(now, "error", msg));
            }
        }
        true
    }
}
