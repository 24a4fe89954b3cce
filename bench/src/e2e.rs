//! End to end: the `orders` program (the runner, a release build) over a JSON-lines file,
//! against a hand-written program doing the same job, each run as its own process.
//!
//! The hand program ([`hand`]) reads the file at once, parses each line with serde_json
//! into an order borrowing its customer (`&str` into the file's bytes), keeps a count and
//! sum per customer and per customer and 5-minute tumbling window in FxHash maps keyed by
//! that `&str`, closes windows by the same watermark (max event time − 5 s) in
//! `(window end, customer)` order and writes the rows with serde_json. It takes no
//! checkpoints; `orders` takes only its first (empty) and final one
//! (`--checkpoint-every 0`). Their outputs are compared byte for byte on every run.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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

type Window<'a> = (i64, FxMap<&'a str, (u64, f64)>);

/// The hand-written program: `input` to `output`; returns the number of events.
pub fn hand(input: &Path, output: &Path) -> Result<u64, String> {
    let data = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let text = std::str::from_utf8(&data).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut stats: FxMap<&str, (u64, f64)> = FxMap::default();
    let mut windows: VecDeque<Window> = VecDeque::new();
    let mut max_ts = i64::MIN;
    let mut watermark = i64::MIN;
    let mut events = 0u64;
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let o: OrderRef = serde_json::from_str(line).map_err(|e| format!("{line}: {e}"))?;
        events += 1;
        let s = stats.entry(o.customer).or_default();
        s.0 += 1;
        s.1 += o.amount;
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
        let w = windows[at].1.entry(o.customer).or_default();
        w.0 += 1;
        w.1 += o.amount;
        max_ts = max_ts.max(o.ts);
        watermark = max_ts.saturating_sub(MAX_DELAY);
        while windows.front().is_some_and(|w| w.0 + SIZE <= watermark) {
            let w = windows.pop_front().expect("checked");
            write_window(&mut out, w)?;
        }
    }
    for w in windows {
        write_window(&mut out, w)?;
    }
    std::hint::black_box(&stats);
    out.flush().map_err(|e| e.to_string())?;
    Ok(events)
}

fn write_window(out: &mut impl Write, (start, rows): Window) -> Result<(), String> {
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (customer, (orders, amount)) in rows {
        let row = Row {
            customer,
            window_start: start,
            window_end: start + SIZE,
            orders,
            amount,
        };
        serde_json::to_writer(&mut *out, &row).map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One end-to-end comparison.
#[derive(Debug, Clone, Serialize)]
pub struct E2e {
    pub events: u64,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub runs: usize,
    pub hand_ms: Vec<f64>,
    pub orders_ms: Vec<f64>,
    /// CPU time (user + system) of each run, from the children's times.
    pub hand_cpu_ms: Vec<f64>,
    pub orders_cpu_ms: Vec<f64>,
    /// Best hand time / best `orders` time: `orders`' speed as a fraction of the hand
    /// program's.
    pub ratio_orders_to_hand: f64,
    pub ratio_cpu_orders_to_hand: f64,
    pub command: String,
    /// The SQL query as `pipeline!` compiles it (`sql_orders`) and as `simplestream sql`
    /// interprets it, when their programs were given.
    pub sql: Option<SqlE2e>,
}

/// The same windows in SQL, compiled and interpreted.
#[derive(Debug, Clone, Serialize)]
pub struct SqlE2e {
    pub query: String,
    pub compiled_ms: Vec<f64>,
    pub interpreted_ms: Vec<f64>,
    pub compiled_cpu_ms: Vec<f64>,
    pub interpreted_cpu_ms: Vec<f64>,
    /// Best compiled time / best interpreted time: the interpreter's speed as a
    /// fraction of the compiled pipeline's.
    pub ratio_interpreted_to_compiled: f64,
    pub command: String,
}

/// The query of `sql_orders`: the `orders` job's windows.
pub const SQL: &str = "SELECT customer, COUNT(*) AS orders, SUM(amount) AS amount FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)";

/// User + system time of this process's reaped children, in ms (/proc/self/stat).
fn children_cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of the whole line: 14 and 15 here.
    let ticks: f64 = [13usize, 14]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks * 10.0 // USER_HZ is 100 on Linux.
}

fn timed(mut cmd: Command) -> Result<(Duration, f64), String> {
    let cpu = children_cpu_ms();
    let t = Instant::now();
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let el = t.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((el, children_cpu_ms() - cpu))
}

/// Runs a runner program (`cmd`, given its input) to `out`, and checks that it wrote
/// exactly `want` and no late events.
fn runner_round(
    mut cmd: Command,
    dir: &Path,
    out: &Path,
    want: &[u8],
) -> Result<(Duration, f64), String> {
    let (ckpt, late) = (dir.join("ckpt"), dir.join("late.jsonl"));
    let _ = std::fs::remove_dir_all(&ckpt);
    for f in [out, &late] {
        let _ = std::fs::remove_file(f);
    }
    cmd.arg("--output").arg(out).arg("--late-output").arg(&late);
    cmd.arg("--checkpoint-dir").arg(&ckpt);
    cmd.args(["--instance", "bench", "--checkpoint-every", "0", "--quiet"]);
    let (t, cpu) = timed(cmd)?;
    let b = std::fs::read(out).map_err(|e| e.to_string())?;
    let late_len = std::fs::metadata(&late).map(|m| m.len()).unwrap_or(0);
    if want != b || late_len != 0 {
        let at = want
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(want.len().min(b.len()));
        return Err(format!(
            "end to end: outputs differ at byte {at} (hand {} bytes, {} {} bytes, late output {late_len} bytes)",
            want.len(),
            out.display(),
            b.len(),
        ));
    }
    Ok((t, cpu))
}

/// The compiled and the interpreted SQL programs, one round each; their times are
/// pushed onto `r` (unless warming up).
fn sql_round(
    bins: (&Path, &Path),
    input: &Path,
    dir: &Path,
    want: &[u8],
    r: &mut SqlE2e,
    warm: bool,
) -> Result<(), String> {
    let mut compiled = Command::new(bins.0);
    compiled.arg("--input").arg(input);
    let (c, cc) = runner_round(compiled, dir, &dir.join("sql_compiled.jsonl"), want)?;
    let mut interp = Command::new(bins.1);
    interp.arg("sql").arg(SQL).arg("--input").arg(input);
    if r.command.is_empty() {
        r.command = format!("{interp:?}");
    }
    let (i, ic) = runner_round(interp, dir, &dir.join("sql_interpreted.jsonl"), want)?;
    println!(
        "           SQL compiled {:>7.0} ms (cpu {:>5.0}), interpreted {:>7.0} ms (cpu {:>5.0}), outputs identical",
        crate::ms(c), cc, crate::ms(i), ic
    );
    if !warm {
        r.compiled_ms.push(crate::ms(c));
        r.interpreted_ms.push(crate::ms(i));
        r.compiled_cpu_ms.push(cc);
        r.interpreted_cpu_ms.push(ic);
    }
    Ok(())
}

/// Runs both programs `runs` times after a warm-up round, alternating, over `input`
/// (and the SQL programs `sql`, compiled and the `simplestream` tool, if given).
pub fn compare(
    orders: &Path,
    sql: Option<(&Path, &Path)>,
    input: &Path,
    scratch: &Path,
    runs: usize,
) -> Result<E2e, String> {
    let dir = scratch.join("e2e");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (hand_out, orders_out, late) = (
        dir.join("hand.jsonl"),
        dir.join("orders.jsonl"),
        dir.join("late.jsonl"),
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut r = E2e {
        events: 0,
        input_bytes: std::fs::metadata(input).map_err(|e| e.to_string())?.len(),
        output_bytes: 0,
        runs,
        hand_ms: Vec::new(),
        orders_ms: Vec::new(),
        hand_cpu_ms: Vec::new(),
        orders_cpu_ms: Vec::new(),
        ratio_orders_to_hand: 0.0,
        ratio_cpu_orders_to_hand: 0.0,
        command: String::new(),
        sql: None,
    };
    let mut sql_r = SqlE2e {
        query: SQL.into(),
        compiled_ms: Vec::new(),
        interpreted_ms: Vec::new(),
        compiled_cpu_ms: Vec::new(),
        interpreted_cpu_ms: Vec::new(),
        ratio_interpreted_to_compiled: 0.0,
        command: String::new(),
    };
    for round in 0..=runs {
        let mut hand = Command::new(&exe);
        hand.arg("--e2e-hand").arg(input).arg(&hand_out);
        let (h, hc) = timed(hand)?;
        let ckpt = dir.join("ckpt");
        let _ = std::fs::remove_dir_all(&ckpt);
        for f in [&orders_out, &late] {
            let _ = std::fs::remove_file(f);
        }
        let mut run = Command::new(orders);
        run.arg("--input")
            .arg(input)
            .arg("--output")
            .arg(&orders_out);
        run.arg("--late-output")
            .arg(&late)
            .arg("--checkpoint-dir")
            .arg(&ckpt);
        run.args(["--instance", "bench", "--checkpoint-every", "0", "--quiet"]);
        if round == 0 {
            r.command = format!("{run:?}");
        }
        let (o, oc) = timed(run)?;
        let a = std::fs::read(&hand_out).map_err(|e| e.to_string())?;
        let b = std::fs::read(&orders_out).map_err(|e| e.to_string())?;
        let late_len = std::fs::metadata(&late).map(|m| m.len()).unwrap_or(0);
        if a != b || late_len != 0 {
            let at = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            return Err(format!(
                "end to end: outputs differ at byte {at} (hand {} bytes, orders {} bytes, late output {late_len} bytes): {} vs {}",
                a.len(),
                b.len(),
                hand_out.display(),
                orders_out.display()
            ));
        }
        r.output_bytes = a.len() as u64;
        println!(
            "   {} hand {:>7.0} ms (cpu {:>5.0}), orders {:>7.0} ms (cpu {:>5.0}), outputs identical ({} bytes)",
            if round == 0 { "warm-up" } else { "run    " },
            crate::ms(h),
            hc,
            crate::ms(o),
            oc,
            a.len()
        );
        if let Some(bins) = sql {
            sql_round(bins, input, &dir, &a, &mut sql_r, round == 0)?;
        }
        if round > 0 {
            r.hand_ms.push(crate::ms(h));
            r.orders_ms.push(crate::ms(o));
            r.hand_cpu_ms.push(hc);
            r.orders_cpu_ms.push(oc);
        }
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    r.ratio_orders_to_hand = min(&r.hand_ms) / min(&r.orders_ms);
    r.ratio_cpu_orders_to_hand = min(&r.hand_cpu_ms) / min(&r.orders_cpu_ms).max(1.0);
    if sql.is_some() {
        sql_r.ratio_interpreted_to_compiled = min(&sql_r.compiled_ms) / min(&sql_r.interpreted_ms);
        r.sql = Some(sql_r);
    }
    r.events = count_lines(input)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(r)
}

fn count_lines(input: &Path) -> Result<u64, String> {
    let data = std::fs::read(input).map_err(|e| e.to_string())?;
    Ok(data.iter().filter(|&&b| b == b'\n').count() as u64)
}

/// `--e2e-hand INPUT OUTPUT`: the hand program as a process of its own.
pub fn hand_main(input: PathBuf, output: PathBuf) -> std::process::ExitCode {
    match hand(&input, &output) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e hand program: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use simplestream::Pipeline;
    use simplestream_examples::orders::{Order, Orders};

    /// Orders of 13 customers over several windows, out of order within the 5 s delay:
    /// the hand program writes the rows the `orders` pipeline emits, byte for byte.
    #[test]
    fn the_hand_program_writes_what_the_orders_pipeline_emits() {
        let dir = std::env::temp_dir().join(format!("simplestream-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let orders: Vec<Order> = (0..5_000i64)
            .map(|i| Order {
                customer: format!("C{}", i * 7 % 13),
                amount: (i % 17) as f64 * 1.25 + 0.01,
                ts: 1_635_739_200_000 + i * 997 - (i % 5) * 1_000,
            })
            .collect();
        let mut input = Vec::new();
        for o in &orders {
            serde_json::to_writer(&mut input, o).unwrap();
            input.push(b'\n');
        }
        let (inp, outp) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
        std::fs::write(&inp, &input).unwrap();
        assert_eq!(super::hand(&inp, &outp).unwrap(), 5_000);
        let got = std::fs::read(&outp).unwrap();
        let mut p = Orders::new();
        let mut out = Vec::new();
        for o in orders {
            p.process(o, &mut out);
        }
        p.finish(&mut out);
        let mut want = Vec::new();
        for rec in &out {
            serde_json::to_writer(&mut want, rec).unwrap();
            want.push(b'\n');
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(out.len() > 100, "{} rows", out.len());
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
