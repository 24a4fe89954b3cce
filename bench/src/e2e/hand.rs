//! The hand-written end-to-end programs: the `orders` job written directly, with the
//! customer key kept three ways, since which is fastest depends on the machine's caches:
//!
//! - [`Keys::Borrowed`]: `&str` into the file read at once (no allocation, but a lookup
//!   compares against bytes anywhere in the file);
//! - [`Keys::Owned`]: a `String` allocated when a key is first inserted in a table;
//! - [`Keys::Inline`]: up to 22 bytes inside the table's bucket, longer keys boxed.
//!
//! Each reads the file at once, parses each line with serde_json into an order borrowing
//! its customer, keeps a count and sum per customer and per customer and 5-minute tumbling
//! window in FxHash maps, closes windows by the same watermark (max event time − 5 s) in
//! `(window end, customer)` order and writes the rows with serde_json.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::inline_key::Inline;

/// How the hand program keeps its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    Borrowed,
    Owned,
    Inline,
}

impl Keys {
    pub const ALL: [Keys; 3] = [Keys::Borrowed, Keys::Owned, Keys::Inline];

    pub fn name(self) -> &'static str {
        match self {
            Keys::Borrowed => "borrowed",
            Keys::Owned => "owned",
            Keys::Inline => "inline",
        }
    }

    pub fn parse(s: &str) -> Option<Keys> {
        Keys::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// FxHash (rustc's hasher): a multiply and a rotate per word, no seed.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            self.add(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
            bytes = &bytes[8..];
        }
        if bytes.len() >= 4 {
            self.add(u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as u64);
            bytes = &bytes[4..];
        }
        for &b in bytes {
            self.add(b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Deserialize)]
struct OrderRef<'a> {
    #[serde(borrow)]
    customer: &'a str,
    amount: f64,
    ts: i64,
}

/// The `orders` pipeline's output row, field for field.
#[derive(Serialize)]
struct Row<'a> {
    customer: &'a str,
    window_start: i64,
    window_end: i64,
    orders: u64,
    amount: f64,
}

const SIZE: i64 = 5 * 60 * 1000;
const MAX_DELAY: i64 = 5_000;

/// A key as one of the programs keeps it.
trait HandKey<'a>: Hash + Eq + Sized {
    /// The value for `s`, if the map has it.
    fn probe<'m, V>(map: &'m mut FxMap<Self, V>, s: &'a str) -> Option<&'m mut V>;
    /// The key to insert for `s`.
    fn make(s: &'a str) -> Self;
    fn bytes(&self) -> &[u8];
    fn text(&self) -> &str;
}

impl<'a> HandKey<'a> for &'a str {
    #[inline]
    fn probe<'m, V>(map: &'m mut FxMap<Self, V>, s: &'a str) -> Option<&'m mut V> {
        map.get_mut(s)
    }
    fn make(s: &'a str) -> Self {
        s
    }
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }
    fn text(&self) -> &str {
        self
    }
}

impl<'a> HandKey<'a> for String {
    #[inline]
    fn probe<'m, V>(map: &'m mut FxMap<Self, V>, s: &'a str) -> Option<&'m mut V> {
        map.get_mut(s)
    }
    fn make(s: &'a str) -> Self {
        s.to_owned()
    }
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }
    fn text(&self) -> &str {
        self
    }
}

impl<'a> HandKey<'a> for Inline {
    #[inline]
    fn probe<'m, V>(map: &'m mut FxMap<Self, V>, s: &'a str) -> Option<&'m mut V> {
        map.get_mut(&Inline::new(s))
    }
    #[inline]
    fn make(s: &'a str) -> Self {
        Inline::new(s)
    }
    #[inline]
    fn bytes(&self) -> &[u8] {
        Inline::bytes(self)
    }
    fn text(&self) -> &str {
        Inline::text(self)
    }
}

/// The hand-written program keeping keys as `keys` says: `input` to `output`; returns
/// the number of events.
pub fn hand(keys: Keys, input: &Path, output: &Path) -> Result<u64, String> {
    let data = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let text = std::str::from_utf8(&data).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let events = match keys {
        Keys::Borrowed => run::<&str>(text, &mut out)?,
        Keys::Owned => run::<String>(text, &mut out)?,
        Keys::Inline => run::<Inline>(text, &mut out)?,
    };
    out.flush().map_err(|e| e.to_string())?;
    Ok(events)
}

type Window<K> = (i64, FxMap<K, (u64, f64)>);

#[inline]
fn add<'a, K: HandKey<'a>>(map: &mut FxMap<K, (u64, f64)>, customer: &'a str, amount: f64) {
    match K::probe(map, customer) {
        Some(v) => {
            v.0 += 1;
            v.1 += amount;
        }
        None => {
            map.insert(K::make(customer), (1, amount));
        }
    }
}

fn run<'a, K: HandKey<'a>>(text: &'a str, out: &mut impl Write) -> Result<u64, String> {
    let mut stats: FxMap<K, (u64, f64)> = FxMap::default();
    let mut windows: VecDeque<Window<K>> = VecDeque::new();
    let mut max_ts = i64::MIN;
    let mut watermark = i64::MIN;
    let mut events = 0u64;
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let o: OrderRef = serde_json::from_str(line).map_err(|e| format!("{line}: {e}"))?;
        events += 1;
        add(&mut stats, o.customer, o.amount);
        let start = o.ts.div_euclid(SIZE) * SIZE;
        if start + SIZE <= watermark {
            return Err(format!("a late event ({line}): this input has none"));
        }
        let at = match windows.iter().rposition(|w| w.0 <= start) {
            Some(i) if windows[i].0 == start => i,
            Some(i) => {
                windows.insert(i + 1, (start, FxMap::default()));
                i + 1
            }
            None => {
                windows.push_front((start, FxMap::default()));
                0
            }
        };
        add(&mut windows[at].1, o.customer, o.amount);
        max_ts = max_ts.max(o.ts);
        watermark = max_ts.saturating_sub(MAX_DELAY);
        while windows.front().is_some_and(|w| w.0 + SIZE <= watermark) {
            let w = windows.pop_front().expect("checked");
            write_window(out, w)?;
        }
    }
    for w in windows {
        write_window(out, w)?;
    }
    std::hint::black_box(&stats);
    Ok(events)
}

fn write_window<'a, K: HandKey<'a>>(
    out: &mut impl Write,
    (start, rows): Window<K>,
) -> Result<(), String> {
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.bytes().cmp(b.0.bytes()));
    for (customer, (orders, amount)) in &rows {
        let row = Row {
            customer: customer.text(),
            window_start: start,
            window_end: start + SIZE,
            orders: *orders,
            amount: *amount,
        };
        serde_json::to_writer(&mut *out, &row).map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    Ok(())
}
