//! A stage's state in the interpreter: the runtime's own keyed state and windows,
//! instantiated for the key types SQL groups by (`String`, `i64`) or for no key.

use serde::{Deserialize, Serialize};

use super::acc::Accs;
#[cfg(feature = "sql-join")]
use super::joined::Joins;
use super::query::{Grouping, Query};
use super::value::{Ty, Val};
use super::window::Win;
use crate::state::{Key, KeyedState, Probe};
use crate::window::{Fired, GlobalWindows, LateReason, Session, Windows};

/// A key type of the interpreter: how a row's value is looked up as one, and written.
pub trait DynKey: Key {
    /// The borrowed form a lookup takes.
    type Q: ?Sized + Probe<Self>;
    /// The key of a row's key value (rows are typed by the schema: the variant matches).
    fn of(v: &Val) -> &Self::Q;
    /// The key as a value of the output row.
    fn val(self) -> Val;
}

impl DynKey for String {
    type Q = str;
    #[inline]
    fn of(v: &Val) -> &str {
        match v {
            Val::Str(s) => s,
            _ => "",
        }
    }
    fn val(self) -> Val {
        Val::Str(self)
    }
}

impl DynKey for i64 {
    type Q = i64;
    #[inline]
    fn of(v: &Val) -> &i64 {
        match v {
            Val::Int(i) => i,
            _ => &0,
        }
    }
    fn val(self) -> Val {
        Val::Int(self)
    }
}

/// Groups of one key type: a running aggregate, tumbling or sliding windows, or sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", bound = "K: Key")]
pub enum Groups<K: Key> {
    /// `GROUP BY key` without a window.
    Running(KeyedState<K, Accs>),
    /// `TUMBLE` or `HOP`.
    Windows(Windows<K, Accs>),
    /// `SESSION`.
    Session(Session<K, Accs>),
}

/// The state of the query's stage, as a checkpoint holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// `GROUP BY` a string column.
    ByString(Groups<String>),
    /// `GROUP BY` an integer column.
    ByInt(Groups<i64>),
    /// A window over all events (`GROUP BY TUMBLE(..)` alone).
    Global(GlobalWindows<Accs>),
    /// A join on a string key.
    #[cfg(feature = "sql-join")]
    JoinByString(Joins<String>),
    /// A join on an integer key.
    #[cfg(feature = "sql-join")]
    JoinByInt(Joins<i64>),
}

impl State {
    /// The empty state a grouping starts with.
    pub fn new(g: &Grouping) -> State {
        fn groups<K: Key>(w: Option<Win>) -> Groups<K> {
            match w {
                None => Groups::Running(KeyedState::default()),
                Some(Win::Session { .. }) => Groups::Session(Session::default()),
                Some(_) => Groups::Windows(Windows::default()),
            }
        }
        match g.key {
            None => State::Global(GlobalWindows::default()),
            Some((_, Ty::Int)) => State::ByInt(groups(g.window)),
            Some(_) => State::ByString(groups(g.window)),
        }
    }

    /// The empty state of query `q`'s stage, if it keeps one.
    pub fn of(q: &Query) -> Option<State> {
        #[cfg(feature = "sql-join")]
        if let Some(j) = &q.join {
            return Some(match j.key_ty {
                Ty::Int => State::JoinByInt(Joins::new(j.kind)),
                _ => State::JoinByString(Joins::new(j.kind)),
            });
        }
        q.grouping.as_ref().map(State::new)
    }

    /// True if `self` has the shape `q` gives a state (a decoded one must).
    pub fn fits(&self, q: &Query) -> bool {
        let Some(fresh) = State::of(q) else {
            return false;
        };
        std::mem::discriminant(self) == std::mem::discriminant(&fresh)
            && match (self, &fresh) {
                (State::ByString(a), State::ByString(b)) => same(a, b),
                (State::ByInt(a), State::ByInt(b)) => same(a, b),
                #[cfg(feature = "sql-join")]
                (State::JoinByString(a), _) => q.join.as_ref().is_some_and(|j| a.fits(j)),
                #[cfg(feature = "sql-join")]
                (State::JoinByInt(a), _) => q.join.as_ref().is_some_and(|j| a.fits(j)),
                _ => true,
            }
    }
}

fn same<K: Key>(a: &Groups<K>, b: &Groups<K>) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// What the windows' code needs of a window: size, slide, lateness.
fn dims(w: Win) -> (i64, i64) {
    match w {
        Win::Tumbling { size } => (size, size),
        Win::Sliding { size, slide } => (size, slide),
        Win::Session { gap } => (gap, gap),
    }
}

const LATENESS: i64 = 0;

impl<K: DynKey> Groups<K> {
    /// Adds a row; a running aggregate returns its updated accumulators (with the key),
    /// a window the reason when the row is late.
    #[inline]
    pub fn push(&mut self, g: &Grouping, row: &[Val], ts: i64) -> Pushed<'_> {
        let k = K::of(&row[g.key.expect("keyed").0]);
        match self {
            Groups::Running(s) => {
                let acc = s.entry_ref(k);
                acc.add(&g.aggs, row);
                Pushed::Updated(acc)
            }
            Groups::Windows(w) => {
                let late = match g.window.expect("windowed") {
                    Win::Tumbling { size } => match w.acc_for(ts, k, size, LATENESS) {
                        Some(acc) => {
                            acc.add(&g.aggs, row);
                            false
                        }
                        None => true,
                    },
                    Win::Sliding { size, slide } => {
                        w.add(ts, k, size, slide, LATENESS, |acc| acc.add(&g.aggs, row))
                    }
                    Win::Session { .. } => unreachable!("sessions are Groups::Session"),
                };
                late_reason(late, g, ts)
            }
            Groups::Session(s) => {
                let (gap, _) = dims(g.window.expect("windowed"));
                let late = s.add(ts, k.to_key(), gap, LATENESS, |acc| acc.add(&g.aggs, row));
                late_reason(late, g, ts)
            }
        }
    }

    /// Closes what the watermark `wm` closes (`None`: end of input, close everything),
    /// appending the windows to `fired` in the order compiled pipelines emit them.
    pub fn close(&mut self, g: &Grouping, wm: Option<i64>, fired: &mut Vec<Fired<K, Accs>>) {
        let Some(w) = g.window else { return };
        let (size, _) = dims(w);
        match self {
            Groups::Running(_) => {}
            Groups::Windows(s) => {
                let wm = wm.unwrap_or_else(|| s.flush_watermark(size, LATENESS));
                if s.set_watermark(wm) {
                    while s.close_next_in(size, LATENESS, true, fired) {}
                }
            }
            Groups::Session(s) => match wm {
                Some(wm) => s.advance(wm, LATENESS, fired),
                None => s.flush(LATENESS, fired),
            },
        }
    }
}

/// What adding a row did.
pub enum Pushed<'a> {
    /// A running aggregate's accumulators, updated.
    Updated(&'a Accs),
    /// A window took the row.
    Windowed,
    /// A window the row belongs to had closed.
    Late(LateReason),
}

fn late_reason<'a>(late: bool, g: &Grouping, ts: i64) -> Pushed<'a> {
    if !late {
        return Pushed::Windowed;
    }
    Pushed::Late(match g.window.expect("windowed") {
        Win::Session { gap } => LateReason::session(ts, gap),
        w => {
            let (size, slide) = dims(w);
            LateReason::windowed(ts, size, slide)
        }
    })
}

/// A window over all events: [`GlobalWindows`].
pub fn push_global(
    s: &mut GlobalWindows<Accs>,
    g: &Grouping,
    row: &[Val],
    ts: i64,
) -> Option<LateReason> {
    let w = g.window.expect("a global grouping is windowed");
    let late = match w {
        Win::Tumbling { size } => match s.acc_for(ts, size, LATENESS) {
            Some(acc) => {
                acc.add(&g.aggs, row);
                false
            }
            None => true,
        },
        Win::Sliding { size, slide } => {
            s.add(ts, size, slide, LATENESS, |acc| acc.add(&g.aggs, row))
        }
        Win::Session { .. } => unreachable!("SESSION needs a key"),
    };
    match late_reason(late, g, ts) {
        Pushed::Late(r) => Some(r),
        _ => None,
    }
}

/// Closes the global windows the watermark closes (`None`: all of them).
pub fn close_global(
    s: &mut GlobalWindows<Accs>,
    g: &Grouping,
    wm: Option<i64>,
    fired: &mut Vec<Fired<(), Accs>>,
) {
    let (size, _) = dims(g.window.expect("windowed"));
    let wm = wm.unwrap_or_else(|| s.flush_watermark(size, LATENESS));
    if s.set_watermark(wm) {
        while s.close_next_in(size, LATENESS, true, fired) {}
    }
}
