//! The final state checked against counts computed from the input, independently of
//! SimpleStream: `customer_stats` of the checkpoint `orders checkpoints show` prints,
//! streamed (tens of millions of customers do not fit a `serde_json::Value` comfortably).

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// Per customer number (`C001` is 1): orders and their amount in cents.
pub type Expected = HashMap<u64, (u64, i64)>;

#[derive(Deserialize)]
struct Order {
    customer: String,
    amount: f64,
}

/// `C001` -> 1 (the generator writes `C{n:03}`, so distinct names are distinct numbers).
fn number(customer: &str) -> Option<u64> {
    customer.strip_prefix('C')?.parse().ok()
}

/// Counts and sums per customer over the input's lines.
pub fn expected(input: &Path) -> Result<Expected, String> {
    let f = std::fs::File::open(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let mut m = Expected::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let o: Order = serde_json::from_str(&line).map_err(|e| format!("{line}: {e}"))?;
        let c = number(&o.customer).ok_or_else(|| format!("customer {:?}", o.customer))?;
        let e = m.entry(c).or_insert((0, 0));
        e.0 += 1;
        e.1 += (o.amount * 100.0).round() as i64;
    }
    Ok(m)
}

/// What the comparison found.
#[derive(Default)]
pub struct Check {
    pub equal: u64,
    pub wrong: Vec<String>,
    pub wrong_count: u64,
}

impl Check {
    fn wrong(&mut self, what: String) {
        self.wrong_count += 1;
        if self.wrong.len() < 5 {
            self.wrong.push(what);
        }
    }
}

/// Runs `orders checkpoints show` on `ckpt` and checks its `customer_stats` against
/// `expected` (consumed: what is left at the end was missing).
pub fn check(
    orders: &Path,
    ckpt: &Path,
    instance: &str,
    expected: Expected,
) -> Result<Check, String> {
    let mut child = Command::new(orders)
        .args(["checkpoints", "show"])
        .arg(ckpt)
        .args(["--instance", instance])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start checkpoints show: {e}"))?;
    let out = BufReader::with_capacity(1 << 20, child.stdout.take().ok_or("no stdout")?);
    let mut seed = Top {
        expected,
        check: Check::default(),
        seen: false,
    };
    let parsed = (&mut seed).deserialize(&mut serde_json::Deserializer::from_reader(out));
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("checkpoints show failed: {status}"));
    }
    parsed.map_err(|e| format!("checkpoints show printed: {e}"))?;
    if !seed.seen {
        return Err("the checkpoint has no customer_stats".into());
    }
    let mut check = seed.check;
    for (c, _) in seed.expected.iter().take(5) {
        check.wrong(format!("C{c:03}: missing from the checkpoint"));
    }
    check.wrong_count += seed.expected.len().saturating_sub(5) as u64;
    Ok(check)
}

/// The checkpoint's top-level object: `customer_stats` is checked, the rest skipped.
struct Top {
    expected: Expected,
    check: Check,
    seen: bool,
}

impl<'de> DeserializeSeed<'de> for &mut Top {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut Top {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a checkpoint object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "customer_stats" {
                self.seen = true;
                map.next_value_seed(Stats(self))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Stat {
    count: u64,
    amount: f64,
}

/// `customer_stats`: each entry compared as it is read.
struct Stats<'a>(&'a mut Top);

impl<'de> DeserializeSeed<'de> for Stats<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Stats<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("customer_stats")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let top = self.0;
        while let Some(name) = map.next_key::<String>()? {
            let s: Stat = map.next_value()?;
            match number(&name).and_then(|c| top.expected.remove(&c)) {
                None => top
                    .check
                    .wrong(format!("{name}: not in the input (or twice)")),
                Some((count, cents)) => {
                    if count == s.count && (s.amount * 100.0 - cents as f64).abs() < 0.5 {
                        top.check.equal += 1;
                    } else {
                        top.check.wrong(format!(
                            "{name}: {} orders, {} vs {count} orders, {cents} cents",
                            s.count, s.amount
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
