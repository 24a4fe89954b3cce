//! Deterministic event generators. Events are generated once, in memory, before any
//! timing starts; every implementation of a workload reads the same events.

use serde::{Deserialize, Serialize};
use simplestream::Checkpointable;

/// Event time of the first event, ms (2021-11-01).
pub const T0: i64 = 1_635_724_800_000;
/// Bound on how far an event's time lags the largest time seen so far, ms. The
/// pipelines use `max_delay = 5s`, so no event is ever late and every implementation
/// sees exactly the same windows.
pub const DISORDER_MS: u64 = 2_000;
/// Watermark delay of every pipeline and hand loop, ms (`max_delay = 5s`).
pub const MAX_DELAY_MS: i64 = 5_000;

/// One event with a `u64` key.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ev {
    pub key: u64,
    pub amount: f64,
    pub ts: i64,
}

/// One event with a `String` key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SEv {
    pub customer: String,
    pub amount: f64,
    pub ts: i64,
}

/// A sale (left side of the interval join).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Sale {
    pub id: u64,
    pub customer: u64,
    pub amount: f64,
    pub ts: i64,
}

/// A payment (right side of the interval join).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Payment {
    pub order_id: u64,
    pub paid: f64,
    pub ts: i64,
}

/// splitmix64.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    #[inline]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `n` events over `keys` keys, one per ms of event time (a 5-minute window holds 300 k
/// events: with 100 k keys, 95 % of the keys show up in each window), times out of order
/// by up to [`DISORDER_MS`]. Amounts are multiples of 1/100 in [0, 100).
pub fn events(seed: u64, n: usize, keys: u64) -> Vec<Ev> {
    let mut r = Rng::new(seed);
    let mut t = T0;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        t += 1;
        let x = r.next();
        out.push(Ev {
            key: x % keys,
            amount: ((x >> 32) % 10_000) as f64 / 100.0,
            ts: t - ((x >> 48) % DISORDER_MS) as i64,
        });
    }
    out
}

/// The key of `i` as a string.
pub fn key_string(i: u64) -> String {
    format!("customer-{i:07}")
}

/// [`events`] with `String` keys.
pub fn string_events(seed: u64, n: usize, keys: u64) -> Vec<SEv> {
    events(seed, n, keys)
        .into_iter()
        .map(|e| SEv {
            customer: key_string(e.key),
            amount: e.amount,
            ts: e.ts,
        })
        .collect()
}

/// [`string_events`] with keys drawn from a Zipf distribution of exponent 1: the key of
/// popularity rank `r` (0-based) has probability proportional to `1 / (r + 1)`. Ranks map
/// to keys through a fixed permutation, so hot keys are spread over the key space.
pub fn zipf_string_events(seed: u64, n: usize, keys: u64) -> Vec<SEv> {
    let mut cdf = Vec::with_capacity(keys as usize);
    let mut total = 0.0;
    for r in 0..keys {
        total += 1.0 / (r + 1) as f64;
        cdf.push(total);
    }
    let step = coprime_step(keys);
    let mut r = Rng::new(seed);
    let mut t = T0;
    (0..n)
        .map(|_| {
            t += 1;
            let x = r.next();
            let u = (r.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let rank = cdf.partition_point(|&c| c <= u).min(keys as usize - 1) as u64;
            SEv {
                customer: key_string((rank as u128 * step as u128 % keys as u128) as u64),
                amount: ((x >> 32) % 10_000) as f64 / 100.0,
                ts: t - ((x >> 48) % DISORDER_MS) as i64,
            }
        })
        .collect()
}

/// A multiplier that permutes `0..keys` (coprime with `keys`).
fn coprime_step(keys: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    (0x9e37_79b9u64..)
        .find(|&s| gcd(s, keys) == 1)
        .expect("a coprime")
}

/// Sales and payments, `n` events in all: a sale every 0.2 ms on average, 80 % of them
/// paid 0..8 s later (the interval join's `upper = 5s` matches about 5/8 of those),
/// payments arriving in time order, interleaved with the sales. Each element is
/// `Ok(sale)` or `Err(payment)`; the workloads turn them into their input type.
pub fn sales_and_payments(seed: u64, n: usize) -> Vec<Result<Sale, Payment>> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut r = Rng::new(seed);
    let mut t = T0 * 5;
    let mut pending: BinaryHeap<Reverse<(i64, u64, u64)>> = BinaryHeap::new();
    let mut out = Vec::with_capacity(n);
    let mut id = 0u64;
    while out.len() < n {
        let x = r.next();
        t += (x % 2) as i64;
        while out.len() < n && pending.peek().is_some_and(|p| p.0 .0 <= t) {
            let Reverse((ts, order_id, paid_bits)) = pending.pop().expect("peeked");
            out.push(Err(Payment {
                order_id,
                paid: f64::from_bits(paid_bits),
                ts: ts / 5,
            }));
        }
        if out.len() >= n {
            break;
        }
        let amount = ((x >> 8) % 10_000) as f64 / 100.0;
        out.push(Ok(Sale {
            id,
            customer: (x >> 24) % 100_000,
            amount,
            ts: t / 5,
        }));
        if !(x >> 40).is_multiple_of(5) {
            let delay = ((x >> 44) % 40_000) as i64; // 0..8 s in units of 0.2 ms
            pending.push(Reverse((t + delay, id, (amount + 1.0).to_bits())));
        }
        id += 1;
    }
    out
}
