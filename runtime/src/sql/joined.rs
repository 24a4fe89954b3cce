//! A join stage of the interpreter: the runtime's [`WindowJoin`] and [`IntervalJoin`],
//! the operators compiled joins run, over rows keyed by a string or an integer.

use serde::de::DeserializeSeed;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::join::{JoinKind, JoinSpec};
use super::prepared::installed;
use super::query::Query;
use super::stage::DynKey;
use super::value::{Named, Row, RowSeed, Schema, Val};
use super::window::Win;
use crate::checkpoint::Checkpointable;
use crate::fingerprint::fnv1a;
use crate::join::{IntervalJoin, JoinFired, Pair, WindowJoin};
use crate::state::{Key, Probe};
use crate::window::LateReason;

/// A buffered event of the left (`R = false`) or right stream: in checkpoints, an object
/// of that stream's columns, as a compiled join writes its event structs.
#[derive(Debug, Clone, PartialEq)]
pub struct Held<const R: bool>(pub Vec<Val>);

/// The columns of the left or right stream of the installed query.
pub fn schema(right: bool) -> &'static Schema {
    let q = &installed().query;
    match (&q.join, right) {
        (Some(j), true) => &j.right_input,
        _ => &q.input,
    }
}

impl<const R: bool> Serialize for Held<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Named {
            names: &schema(R).names,
            vals: &self.0,
        }
        .serialize(s)
    }
}

/// Held rows go to the disk tier of a spilling join window as they go into binary
/// checkpoints (postcard, read back by the installed query's schema).
impl<const R: bool> Checkpointable for Held<R> {
    const LAYOUT: u64 = fnv1a(if R {
        "sql::Held<right>"
    } else {
        "sql::Held<left>"
    });
}

impl<'de, const R: bool> Deserialize<'de> for Held<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RowSeed(schema(R)).deserialize(d).map(|r| Held(r.0))
    }
}

/// The buffers of a join whose key is a `K`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", bound = "K: Key")]
pub enum Joins<K: Key> {
    /// `TUMBLE(l.ts, ..) = TUMBLE(r.ts, ..)` or `HOP`.
    Window(WindowJoin<K, Held<false>, Held<true>>),
    /// `r.ts BETWEEN l.ts - .. AND l.ts + ..`.
    Interval(IntervalJoin<K, Held<false>, Held<true>>),
}

/// A joined row: the key, the window (windowed joins), and both events' values.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The key.
    pub key: Val,
    /// Window start and end.
    pub window: Option<(i64, i64)>,
    /// The left event.
    pub left: Vec<Val>,
    /// The right event.
    pub right: Vec<Val>,
}

/// Size and slide of a join's window.
fn dims(w: Win) -> (i64, i64) {
    match w {
        Win::Tumbling { size } => (size, size),
        Win::Sliding { size, slide } => (size, slide),
        Win::Session { gap } => (gap, gap),
    }
}

const LATENESS: i64 = 0;

impl<K: DynKey> Joins<K> {
    /// The empty buffers of `kind`.
    pub fn new(kind: JoinKind) -> Self {
        match kind {
            JoinKind::Window(_) => Joins::Window(WindowJoin::default()),
            JoinKind::Interval { .. } => Joins::Interval(IntervalJoin::default()),
        }
    }

    /// True if `self` is of the kind `j` joins by.
    pub fn fits(&self, j: &JoinSpec) -> bool {
        matches!(
            (self, j.kind),
            (Joins::Window(_), JoinKind::Window(_))
                | (Joins::Interval(_), JoinKind::Interval { .. })
        )
    }

    /// Adds an event of stream `row.1` at `ts`: pairs it makes go to `emit`; a late event
    /// comes back with the reason, as the compiled join reports it.
    pub fn push(
        &mut self,
        j: &JoinSpec,
        row: Row,
        ts: i64,
        emit: &mut impl FnMut(Joined),
    ) -> Option<(Row, LateReason)> {
        let right = row.1 == 1;
        let col = if right { j.keys.1 } else { j.keys.0 };
        let key = K::of(&row.0[col]).to_key();
        match (self, j.kind) {
            (Joins::Window(w), JoinKind::Window(win)) => {
                let (size, slide) = dims(win);
                let late = if right {
                    w.add_right_or_late(ts, key, Held(row.0), size, slide, LATENESS)
                        .map(|h| h.0)
                } else {
                    w.add_left_or_late(ts, key, Held(row.0), size, slide, LATENESS)
                        .map(|h| h.0)
                };
                late.map(|v| (Row(v, row.1), LateReason::windowed(ts, size, slide)))
            }
            (Joins::Interval(i), JoinKind::Interval { lower, upper }) => {
                let mut pairs: Vec<Pair<K, Held<false>, Held<true>>> = Vec::new();
                let held = row.0.clone();
                let ok = if right {
                    i.add_right(ts, key, Held(held), lower, upper, &mut pairs)
                } else {
                    i.add_left(ts, key, Held(held), lower, upper, &mut pairs)
                };
                for p in pairs {
                    emit(Joined {
                        key: p.key.val(),
                        window: None,
                        left: p.left.0,
                        right: p.right.0,
                    });
                }
                (!ok).then_some((row, LateReason::Closed))
            }
            _ => unreachable!("the buffers are of the query's kind (checked at restore)"),
        }
    }

    /// Moves the watermark to `wm` (`None`: end of input): closed windows send their pairs
    /// to `emit`, expired interval buffers are dropped.
    pub fn advance(&mut self, j: &JoinSpec, wm: Option<i64>, emit: &mut impl FnMut(Joined)) {
        match (self, j.kind) {
            (Joins::Window(w), JoinKind::Window(win)) => {
                let (size, _) = dims(win);
                let mut fired = Vec::new();
                match wm {
                    Some(wm) => w.advance(wm, size, LATENESS, &mut fired),
                    None => w.flush(size, LATENESS, &mut fired),
                }
                for f in fired {
                    pairs_of(f, emit);
                }
            }
            (Joins::Interval(i), JoinKind::Interval { lower, upper }) => {
                if let Some(wm) = wm {
                    i.advance(wm, lower, upper);
                }
            }
            _ => unreachable!("the buffers are of the query's kind (checked at restore)"),
        }
    }
}

/// The pairs of a closed window: each left event with each right one, in arrival order.
fn pairs_of<K: DynKey>(f: JoinFired<K, Held<false>, Held<true>>, emit: &mut impl FnMut(Joined)) {
    let key = f.key.val();
    for l in &f.left {
        for r in &f.right {
            emit(Joined {
                key: key.clone(),
                window: Some((f.start, f.end)),
                left: l.0.clone(),
                right: r.0.clone(),
            });
        }
    }
}

/// A joined row as the compiled join's row struct writes it: the key, the window, then
/// both events under their streams' names.
pub fn pair<S: Serializer>(q: &Query, j: &Joined, s: S) -> Result<S::Ok, S::Error> {
    let names = &q.output.names;
    let mut m = s.serialize_map(Some(names.len()))?;
    m.serialize_entry(names[0], &j.key)?;
    if let Some((start, end)) = j.window {
        m.serialize_entry("window_start", &start)?;
        m.serialize_entry("window_end", &end)?;
    }
    let (l, r) = (names[names.len() - 2], names[names.len() - 1]);
    let left = Named {
        names: &q.input.names,
        vals: &j.left,
    };
    let right = Named {
        names: &q.join.as_ref().map_or(&q.input, |j| &j.right_input).names,
        vals: &j.right,
    };
    m.serialize_entry(l, &left)?;
    m.serialize_entry(r, &right)?;
    m.end()
}
