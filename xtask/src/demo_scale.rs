//! `cargo xtask demo-scale`: two `orders` instances share a 2-partition topic; one is
//! killed with SIGKILL, the survivor is restarted owning both partitions and takes the
//! dead one's over from its checkpoints; the output topic is compared with a reference
//! run, partition by partition.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;

use crate::kafka_bench::fill_topic;
use crate::scale_bench::customer;
use crate::stores::{fresh_dir, release_orders, start_tansu};
use crate::tools;

const EVENTS: u64 = 400_000;
const PAUSE_AT: &str = "100000";

pub fn run(_args: &[String]) -> Result<(), String> {
    let bin = tools::ensure()?;
    crate::build_release_binaries()?;
    let orders = release_orders();
    let base = fresh_dir("target/demo-scale")?;
    let (_tansu, port) = start_tansu(&bin)?;
    let addr = format!("127.0.0.1:{port}");
    let input = base.join("orders.jsonl");
    crate::gen::write_orders(&input, EVENTS, 200, 2024)?;
    fill_topic(&addr, "orders", &input, 2, |_, l| customer(l) % 2)?;
    println!(
        "\n== 1. {EVENTS} orders in topic `orders` on tansu at {addr}: 2 partitions, by customer"
    );

    let cmd = |dir: &str, out: &str, name: &str, parts: &str| {
        let mut c = Command::new(&orders);
        c.args(["--input", &format!("kafka://{addr}/orders")]);
        c.args(["--output", &format!("kafka://{addr}/{out}")]);
        c.arg("--checkpoint-dir").arg(base.join(dir));
        c.args(["--instance", name, "--partitions", parts]);
        c.args(["--partition-key", "customer", "--checkpoint-every", "20000"]);
        c
    };
    println!("\n== 2. A reference: one instance owning both partitions, never killed");
    let o = cmd("reference", "reference", "solo", "0,1")
        .arg("--quiet")
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }

    println!("\n== 3. instance-1 owns partition 0, instance-2 partition 1 (checkpoints in target/demo-scale/shared)");
    let mut one = Paused::spawn(cmd("shared", "out", "instance-1", "0"))?;
    let mut two = Paused::spawn(cmd("shared", "out", "instance-2", "1"))?;
    two.wait_paused()?;
    two.child.kill().map_err(|e| e.to_string())?;
    let _ = two.child.wait();
    println!("   instance-2 killed with SIGKILL after {PAUSE_AT} events of partition 1");
    one.wait_paused()?;
    let st = Command::new("kill")
        .args(["-TERM", &one.child.id().to_string()])
        .status();
    if !st.is_ok_and(|s| s.success()) {
        return Err("could not signal instance-1".into());
    }
    one.finish()?;
    println!(
        "   instance-1 stopped (SIGTERM: final checkpoint) to be restarted with both partitions"
    );

    println!("\n== 4. instance-1 restarted with --partitions 0,1: it takes partition 1 over");
    let o = cmd("shared", "out", "instance-1", "0,1")
        .output()
        .map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&o.stderr);
    for l in err.lines().filter(|l| {
        l.contains("owns") || l.contains("took partition") || l.contains("restored checkpoint")
    }) {
        println!("   {}", l.trim());
    }
    if !o.status.success() {
        return Err(format!("the restarted instance failed:\n{err}"));
    }

    println!("\n== 5. The output topic against the reference, partition by partition");
    let same = compare(&addr)?;
    if !same {
        return Err("the outputs differ".into());
    }
    println!("\nDone: one instance killed, the other took its partition over, and the output equals the reference.");
    Ok(())
}

/// A started instance with a pause point at [`PAUSE_AT`] events of each partition.
struct Paused {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
}

impl Paused {
    fn spawn(mut c: Command) -> Result<Paused, String> {
        c.env("SIMPLESTREAM_PAUSE_AT", PAUSE_AT)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| format!("running orders: {e}"))?;
        let lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        Ok(Paused { child, lines })
    }

    fn wait_paused(&mut self) -> Result<(), String> {
        for l in self.lines.by_ref() {
            if l.map_err(|e| e.to_string())?.contains("paused at event") {
                return Ok(());
            }
        }
        Err("the instance exited before its pause point".into())
    }

    fn finish(mut self) -> Result<(), String> {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
        let st = self.child.wait().map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("instance-1 failed:\n{}", rest.join("\n")));
        }
        Ok(())
    }
}

/// Prints each partition's row count in both topics; true if every partition matches.
fn compare(addr: &str) -> Result<bool, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = rt
        .block_on(ClientBuilder::new(vec![addr.to_string()]).build())
        .map_err(|e| e.to_string())?;
    let mut same = true;
    for p in 0..2 {
        let mut rows = BTreeMap::new();
        for topic in ["reference", "out"] {
            let pc = rt
                .block_on(client.partition_client(topic, p, UnknownTopicHandling::Error))
                .map_err(|e| e.to_string())?;
            let end = rt
                .block_on(pc.get_offset(OffsetAt::Latest))
                .map_err(|e| e.to_string())?;
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut at = 0;
            while at < end {
                let (recs, _) = rt
                    .block_on(pc.fetch_records(at, 1..64 << 20, 500))
                    .map_err(|e| e.to_string())?;
                let Some(last) = recs.iter().map(|r| r.offset).max() else {
                    break;
                };
                got.extend(
                    recs.into_iter()
                        .filter(|r| r.offset >= at)
                        .map(|r| r.record.value.unwrap_or_default()),
                );
                at = last + 1;
            }
            rows.insert(topic, got);
        }
        let ok = rows["reference"] == rows["out"];
        same &= ok;
        println!(
            "   partition {p}: reference {} rows, shared run {} rows: {}",
            rows["reference"].len(),
            rows["out"].len(),
            if ok { "identical" } else { "DIFFERENT" }
        );
    }
    Ok(same)
}
