//! Sample orders: deterministic, roughly increasing times, out of order by up to 5 s.

use std::io::{BufWriter, Write};
use std::path::Path;

/// SplitMix64: small, fast, good enough for sample data.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Writes `count` orders for `customers` customers starting at 2021-11-01 04:00 UTC;
/// returns how many distinct customers occur.
pub fn write_orders(path: &Path, count: u64, customers: u64, seed: u64) -> Result<u64, String> {
    let mut seen = vec![false; customers as usize + 1];
    let mut distinct = 0;
    let f = std::fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut w = BufWriter::new(f);
    let mut rng = Rng::new(seed);
    let mut t: i64 = 1_635_739_200_000;
    for _ in 0..count {
        t += (rng.next() % 60) as i64;
        let ts = t - (rng.next() % 5_000) as i64;
        let customer = rng.next() % customers + 1;
        if !std::mem::replace(&mut seen[customer as usize], true) {
            distinct += 1;
        }
        let cents = rng.next() % 20_000 + 100;
        writeln!(
            w,
            "{{\"customer\":\"C{customer:03}\",\"amount\":{}.{:02},\"ts\":{ts}}}",
            cents / 100,
            cents % 100
        )
        .map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(distinct)
}

pub fn cli(args: &[String]) -> Result<(), String> {
    let path = args
        .first()
        .ok_or("usage: cargo xtask gen FILE [COUNT] [CUSTOMERS] [SEED]")?;
    let num = |i: usize, d: u64| {
        args.get(i)
            .map(|s| s.parse::<u64>().map_err(|e| format!("{s}: {e}")))
            .unwrap_or(Ok(d))
    };
    write_orders(Path::new(path), num(1, 100_000)?, num(2, 200)?, num(3, 1)?).map(|_| ())
}
