//! End to end: the `orders` program (the runner, a release build) over a JSON-lines file,
//! against a hand-written program doing the same job, each run as its own process.
//!
//! The hand programs ([`hand`]) do the same job in one loop, with three ways of keeping the
//! customer key; the fastest of them in each run is the baseline. They take no checkpoints;
//! `orders` takes only its first (empty) and final one (`--checkpoint-every 0`). All
//! outputs are compared byte for byte on every run.

mod hand;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use hand::{hand, Keys};

/// One end-to-end comparison.
#[derive(Debug, Clone, Serialize)]
pub struct E2e {
    pub events: u64,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub runs: usize,
    /// Each hand program's runs, in [`Keys::ALL`] order.
    pub hands: Vec<HandRuns>,
    pub orders_ms: Vec<f64>,
    /// CPU time (user + system) of each run, from the children's times.
    pub orders_cpu_ms: Vec<f64>,
    /// The hand program with the best wall time: the baseline.
    pub fastest_hand: String,
    /// Best time of the fastest hand program / best `orders` time: `orders`' speed as a
    /// fraction of the hand program's.
    pub ratio_orders_to_hand: f64,
    pub ratio_cpu_orders_to_hand: f64,
    pub command: String,
    /// The SQL query as `pipeline!` compiles it (`sql_orders`) and as `simplestream sql`
    /// interprets it, when their programs were given.
    pub sql: Option<SqlE2e>,
}

/// One hand program's runs.
#[derive(Debug, Clone, Serialize)]
pub struct HandRuns {
    pub keys: String,
    pub ms: Vec<f64>,
    pub cpu_ms: Vec<f64>,
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
        hands: Keys::ALL
            .iter()
            .map(|k| HandRuns {
                keys: k.name().into(),
                ms: Vec::new(),
                cpu_ms: Vec::new(),
            })
            .collect(),
        orders_ms: Vec::new(),
        orders_cpu_ms: Vec::new(),
        fastest_hand: String::new(),
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
        let mut hand_times = Vec::new();
        let mut first: Option<Vec<u8>> = None;
        for keys in Keys::ALL {
            let mut hand = Command::new(&exe);
            hand.arg("--e2e-hand").arg(input).arg(&hand_out);
            hand.args(["--e2e-keys", keys.name()]);
            hand_times.push(timed(hand)?);
            let out = std::fs::read(&hand_out).map_err(|e| e.to_string())?;
            match &first {
                None => first = Some(out),
                Some(f) if *f != out => {
                    return Err(format!(
                        "end to end: the {} hand program's output differs from the {}'s",
                        keys.name(),
                        Keys::ALL[0].name()
                    ))
                }
                Some(_) => {}
            }
        }
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
        let a = first.expect("three hand programs ran");
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
        let hands: Vec<String> = Keys::ALL
            .iter()
            .zip(&hand_times)
            .map(|(k, (h, hc))| format!("{} {:.0} ms (cpu {hc:.0})", k.name(), crate::ms(*h)))
            .collect();
        println!(
            "   {} hand {}, orders {:>7.0} ms (cpu {:>5.0}), outputs identical ({} bytes)",
            if round == 0 { "warm-up" } else { "run    " },
            hands.join(", "),
            crate::ms(o),
            oc,
            a.len()
        );
        if let Some(bins) = sql {
            sql_round(bins, input, &dir, &a, &mut sql_r, round == 0)?;
        }
        if round > 0 {
            for (h, (t, c)) in r.hands.iter_mut().zip(&hand_times) {
                h.ms.push(crate::ms(*t));
                h.cpu_ms.push(*c);
            }
            r.orders_ms.push(crate::ms(o));
            r.orders_cpu_ms.push(oc);
        }
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let fastest = r
        .hands
        .iter()
        .min_by(|a, b| min(&a.ms).total_cmp(&min(&b.ms)))
        .expect("three hand programs");
    r.fastest_hand = fastest.keys.clone();
    r.ratio_orders_to_hand = min(&fastest.ms) / min(&r.orders_ms);
    r.ratio_cpu_orders_to_hand = min(&fastest.cpu_ms) / min(&r.orders_cpu_ms).max(1.0);
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

/// `--e2e-hand INPUT OUTPUT --e2e-keys KEYS`: a hand program as a process of its own.
pub fn hand_main(keys: Keys, input: PathBuf, output: PathBuf) -> std::process::ExitCode {
    match hand(keys, &input, &output) {
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

    /// Orders of 13 customers over several windows, out of order within the 5 s delay,
    /// one with a customer id too long to be kept inline: each hand program writes the rows the `orders` pipeline emits, byte for byte.
    #[test]
    fn the_hand_program_writes_what_the_orders_pipeline_emits() {
        let dir = std::env::temp_dir().join(format!("simplestream-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let orders: Vec<Order> = (0..5_000i64)
            .map(|i| Order {
                customer: if i % 13 == 5 {
                    "a customer id longer than twenty-two bytes".into()
                } else {
                    format!("C{}", i * 7 % 13)
                },
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
        let mut got = Vec::new();
        for keys in super::Keys::ALL {
            assert_eq!(super::hand(keys, &inp, &outp).unwrap(), 5_000);
            got.push((
                keys,
                String::from_utf8(std::fs::read(&outp).unwrap()).unwrap(),
            ));
        }
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
        let want = String::from_utf8(want).unwrap();
        for (keys, got) in got {
            assert_eq!(got, want, "the {keys:?} hand program");
        }
    }
}
