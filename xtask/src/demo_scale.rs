//! `cargo xtask demo-scale`: two `orders` instances share a 4-partition topic as
//! members of one Kafka consumer group (`--group-assign`). instance-2 is killed with
//! SIGKILL at a pause point; once its session runs out, instance-1 is given every
//! partition and takes instance-2's over from their checkpoints (its log lines are
//! printed); the output topic is then compared with a reference run, partition by
//! partition.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;

use crate::kafka_bench::fill_topic;
use crate::scale_bench::customer;
use crate::stores::{fresh_dir, release_orders, start_tansu};
use crate::tools;

const EVENTS: u64 = 200_000;
const PARTITIONS: i32 = 4;
/// instance-1 stops each task here (events of its partition) until a rebalance or its
/// release; instance-2 at the second point, after events of its own.
const PAUSE_1: &str = "15000";
const PAUSE_2: &str = "30000";

pub fn run(_args: &[String]) -> Result<(), String> {
    let bin = tools::ensure()?;
    crate::build_release_binaries()?;
    let orders = release_orders();
    let base = fresh_dir("target/demo-scale")?;
    let (_tansu, port) = start_tansu(&bin)?;
    let addr = format!("127.0.0.1:{port}");
    let input = base.join("orders.jsonl");
    crate::gen::write_orders(&input, EVENTS, 200, 2024)?;
    fill_topic(&addr, "orders", &input, PARTITIONS, |_, l| {
        customer(l) % PARTITIONS as usize
    })?;
    println!(
        "\n== 1. {EVENTS} orders in topic `orders` on tansu at {addr}: {PARTITIONS} partitions, by customer"
    );

    let cmd = |dir: &str, out: &str, name: &str| {
        let mut c = Command::new(&orders);
        c.args(["--input", &format!("kafka://{addr}/orders")]);
        c.args(["--output", &format!("kafka://{addr}/{out}")]);
        c.arg("--checkpoint-dir").arg(base.join(dir));
        c.args(["--instance", name, "--partition-key", "customer"]);
        c.args(["--checkpoint-every", "5000"]);
        c
    };
    println!("\n== 2. A reference: one instance owning every partition, never killed");
    let o = cmd("reference", "reference", "solo")
        .args(["--partitions", "0,1,2,3", "--quiet"])
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }

    println!("\n== 3. instance-1 and instance-2 join group `Orders` (--group-assign, 2 s sessions; checkpoints in target/demo-scale/shared)");
    let member = |name: &str, pause: &str| {
        let mut c = cmd("shared", "out", name);
        c.args(["--group-assign", "--session-timeout", "2s"]);
        Member::spawn(c, name, pause)
    };
    let mut one = member("instance-1", PAUSE_1)?;
    one.wait_for("1 member(s)")?;
    one.wait_for(PAUSED)?;
    println!("   instance-1 alone owns every partition, each stopped at {PAUSE_1} events; instance-2 joins, reads on from there to {PAUSE_2}:");
    let mut two = member("instance-2", PAUSE_2)?;
    two.wait_for("2 member(s)")?;
    two.wait_for(PAUSED)?;
    let theirs = owned(&two.assignment);
    // Killed after events of its own: it restored instance-1's checkpoints at
    // PAUSE_1 and read on to PAUSE_2.
    two.child.kill().map_err(|e| e.to_string())?;
    let _ = two.child.wait();
    let killed = Instant::now();
    println!(
        "   instance-2 killed with SIGKILL at its pause point ({PAUSE_2} events of a partition); it owned partitions {theirs:?}"
    );

    println!("\n== 4. instance-2's session runs out: instance-1 is given every partition and takes {theirs:?} over");
    one.wait_for("1 member(s)")?;
    let mut left: Vec<String> = theirs
        .iter()
        .map(|p| format!("took partition {p} over"))
        .collect();
    while !left.is_empty() {
        let l = one.next_line()?;
        left.retain(|n| !l.contains(n.as_str()));
    }
    println!(
        "   taken over {:.1}s after the kill; instance-1 now runs to the end",
        killed.elapsed().as_secs_f64()
    );
    one.release()?;

    println!("\n== 5. The output topic against the reference, partition by partition");
    let same = compare(&addr)?;
    if !same {
        return Err("the outputs differ".into());
    }
    println!("\nDone: instance-2 was killed, instance-1 took its partitions over, and the output equals the reference.");
    Ok(())
}

/// The start of the line a pause point prints.
const PAUSED: &str = "simplestream: paused at event";

/// A running group member whose log lines about membership and moves are printed.
struct Member {
    name: String,
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
    /// Its latest assignment line.
    assignment: String,
}

impl Member {
    fn spawn(mut c: Command, name: &str, pause: &str) -> Result<Member, String> {
        c.env("SIMPLESTREAM_PAUSE_AT", pause)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| format!("running orders: {e}"))?;
        let lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        Ok(Member {
            name: name.to_string(),
            child,
            lines,
            assignment: String::new(),
        })
    }

    /// Reads (and shows) its log until a line contains `needle`.
    fn wait_for(&mut self, needle: &str) -> Result<(), String> {
        while !self.next_line()?.contains(needle) {}
        Ok(())
    }

    /// Its next log line (shown if it is about membership or moves).
    fn next_line(&mut self) -> Result<String, String> {
        let l = self
            .lines
            .next()
            .ok_or_else(|| format!("{} exited", self.name))?
            .map_err(|e| e.to_string())?;
        self.show(&l);
        Ok(l)
    }

    fn show(&mut self, line: &str) {
        const SHOWN: [&str; 5] = [
            "owns partitions",
            "took partition",
            "restored checkpoint",
            "rebalance:",
            "gave partitions up",
        ];
        if line.contains("owns partitions") {
            self.assignment = line.to_string();
        }
        if SHOWN.iter().any(|s| line.contains(s)) {
            // The message, without the time and level in front.
            let at = [
                "group ",
                "took ",
                "restored ",
                "generation ",
                "simplestream: ",
            ]
            .iter()
            .filter_map(|s| line.find(s))
            .min()
            .unwrap_or(0);
            println!("   [{}] {}", self.name, &line[at..]);
        }
    }

    /// Closes stdin (every pause point lets its task go) and waits for the exit.
    fn release(mut self) -> Result<(), String> {
        drop(self.child.stdin.take());
        while let Some(l) = self.lines.next() {
            let l = l.map_err(|e| e.to_string())?;
            self.show(&l);
        }
        let st = self.child.wait().map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("{} failed ({st})", self.name));
        }
        Ok(())
    }
}

/// The partitions in an assignment line (`... owns partitions 2,3 of 4 ...`).
fn owned(line: &str) -> Vec<i32> {
    let list = line.split("owns partitions ").nth(1).unwrap_or_default();
    let list = list.split(' ').next().unwrap_or_default();
    list.split(',').filter_map(|x| x.parse().ok()).collect()
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
    for p in 0..PARTITIONS {
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
