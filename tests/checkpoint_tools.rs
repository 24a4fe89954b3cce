//! The checkpoint tools on the checkpoints of a pipeline other than `orders` (Nexmark q8:
//! two sources, a join and a window), as real processes: the `simplestream` tool reads
//! JSON checkpoints in full and the header of binary ones; a program's own `checkpoints`
//! subcommand decodes binary checkpoints of its own pipeline only (`tests/runner.rs` has
//! `orders` decoding its own); `checkpoints layout` describes them from the plan.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use simplestream::fingerprint::to_hex;
use simplestream::store::{FileStore, FileStoreOptions};
use simplestream::{Codec, Coordinator, CoordinatorConfig, Pipeline};
use simplestream_examples::nexmark::{events, inputs, Q8};
use simplestream_examples::orders::Orders;
use support::{code, orders_bin, stderr_of, tmp, tool_bin};

const INSTANCE: &str = "q8-1";
const EVENTS: usize = 20_000;

/// Runs q8 over the first `EVENTS` generated events with a checkpoint (in `codec`) halfway
/// and one at the end, into `dir/checkpoints/q8-1`; returns the pipeline as it ended.
fn q8_checkpoints(dir: &Path, codec: Codec) -> Q8 {
    let store = FileStore::open(dir, INSTANCE, FileStoreOptions::default()).unwrap();
    let config = CoordinatorConfig {
        codec,
        ..CoordinatorConfig::default()
    };
    let mut coord = Coordinator::new(store, config);
    let mut p = Q8::new();
    let mut out = Vec::new();
    for (i, e) in events(0, EVENTS).enumerate() {
        if let Some(ev) = inputs::q8(e) {
            p.process(ev, &mut out);
        }
        let n = i + 1;
        if n == EVENTS / 2 || n == EVENTS {
            let positions = BTreeMap::from([("events".to_string(), n as u64)]);
            coord
                .checkpoint(&p, positions, 1_700_000_000_000 + n as i64)
                .unwrap();
        }
    }
    p
}

/// `bin checkpoints SUB DIR --instance q8-1 [extra..]`.
fn run(bin: PathBuf, sub: &str, dir: &Path, extra: &[&str]) -> Output {
    Command::new(bin)
        .args(["checkpoints", sub])
        .arg(dir)
        .args(["--instance", INSTANCE])
        .args(extra)
        .output()
        .unwrap()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr_of(out));
    serde_json::from_slice(&out.stdout).expect("show prints JSON")
}

#[test]
fn the_tool_reads_another_pipelines_json_checkpoints_in_full() {
    let t = tmp();
    let p = q8_checkpoints(t.path(), Codec::Json);

    let listing = stdout_of(&run(tool_bin(), "list", t.path(), &[]));
    let rows: Vec<&str> = listing.lines().filter(|l| l.contains(" json ")).collect();
    assert_eq!(rows.len(), 2, "{listing}");
    assert!(rows[1].ends_with("(latest)"), "{listing}");

    let shown = json_of(&run(tool_bin(), "show", t.path(), &[]));
    assert_eq!(shown["pipeline"], "Q8");
    assert_eq!(shown["fingerprint"], to_hex(Q8::FINGERPRINT));
    assert_eq!(shown["positions"]["events"], EVENTS as u64);
    for stage in ["opened", "q8"] {
        assert_eq!(shown[stage], p.stage_json(stage).unwrap(), "{stage}");
    }
    assert!(
        shown["opened"] != fresh_stage("opened"),
        "the join holds events: the comparison is not of two empty states"
    );
    assert_eq!(shown["source_clocks"].as_array().map(Vec::len), Some(2));

    let out = run(tool_bin(), "verify", t.path(), &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out).matches("ok   checkpoint_").count(), 2);
    assert!(
        stderr_of(&out).contains("checkpoints of pipeline `Q8` were checked up to their checksum"),
        "{}",
        stderr_of(&out)
    );
}

/// A stage's state in a fresh pipeline.
fn fresh_stage(stage: &str) -> Value {
    Q8::new().stage_json(stage).unwrap()
}

#[test]
fn the_tool_shows_the_header_of_a_binary_checkpoint_and_who_decodes_the_rest() {
    let t = tmp();
    q8_checkpoints(t.path(), Codec::Binary);

    let out = run(tool_bin(), "show", t.path(), &["--id", "1"]);
    let header = json_of(&out);
    assert_eq!(header["pipeline"], "Q8");
    assert_eq!(header["fingerprint"], to_hex(Q8::FINGERPRINT));
    assert_eq!(header["checkpoint_id"], 1);
    assert_eq!(header["positions"]["events"], (EVENTS / 2) as u64);
    assert!(header.get("q8").is_none(), "{header}");
    let note = stderr_of(&out);
    assert_eq!(note.lines().count(), 1, "{note}");
    let pointer = format!(
        "`checkpoints show {} --instance {INSTANCE} --id 1` of the program that wrote it (pipeline `Q8`) decodes them",
        t.path().display()
    );
    assert!(
        note.contains("is binary (checksum ok)") && note.contains(&pointer),
        "{note}"
    );

    // Without the pipeline, verify still catches a changed byte (the checksum).
    let out = run(tool_bin(), "verify", t.path(), &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr_of(&out));
    let inst = t.path().join("checkpoints").join(INSTANCE);
    let victim = std::fs::read_dir(&inst)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-000001.bin"))
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();
    let out = run(tool_bin(), "verify", t.path(), &[]);
    assert_eq!(code(&out), Some(1), "{}", stdout_of(&out));
    assert!(
        stderr_of(&out).contains("checksum mismatch"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_program_decodes_the_binary_checkpoints_of_its_own_pipeline_only() {
    let t = tmp();
    let (json_dir, bin_dir) = (t.path().join("json"), t.path().join("bin"));
    q8_checkpoints(&json_dir, Codec::Json);
    q8_checkpoints(&bin_dir, Codec::Binary);

    // Another pipeline's binary checkpoint: what the tool shows, header and pointer.
    let by_orders = run(orders_bin(), "show", &bin_dir, &[]);
    let by_tool = run(tool_bin(), "show", &bin_dir, &[]);
    assert_eq!(json_of(&by_orders), json_of(&by_tool));
    assert!(json_of(&by_orders).get("q8").is_none());
    assert_eq!(stderr_of(&by_orders), stderr_of(&by_tool));
    // JSON describes itself: any program shows it as the tool does.
    assert_eq!(
        json_of(&run(orders_bin(), "show", &json_dir, &[])),
        json_of(&run(tool_bin(), "show", &json_dir, &[]))
    );
    let out = run(orders_bin(), "verify", &bin_dir, &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("pipeline `Q8` were checked up to their checksum"));
}

/// Cuts the last byte of a binary checkpoint's stages, then re-seals it (the stage
/// lengths after the stages, the length and CRC): the checksum holds, the stages no
/// longer decode.
fn cut_and_reseal(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let n = bytes.len() - 4;
    let tlen = u32::from_le_bytes(bytes[n..].try_into().unwrap()) as usize;
    let start = n - tlen;
    let mut lens = leb128s(&bytes[start + 1..n]); // a count, then the lengths
    *lens.last_mut().unwrap() -= 1;
    let mut trailer = vec![lens.len() as u8];
    for l in &lens {
        leb128(*l, &mut trailer);
    }
    let mut bytes = [&bytes[..start - 1], &trailer[..]].concat();
    bytes.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
    let payload_len = (bytes.len() - 18) as u64;
    let crc = crc32fast::hash(&bytes[18..]);
    bytes[6..14].copy_from_slice(&payload_len.to_le_bytes());
    bytes[14..18].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Unsigned LEB128 varints (postcard's integers) one after another.
fn leb128s(mut b: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[0];
            b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        out.push(v);
    }
    out
}

fn leb128(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[test]
fn only_the_program_finds_binary_stages_that_do_not_decode() {
    let t = tmp();
    let store = FileStore::open(t.path(), INSTANCE, FileStoreOptions::default()).unwrap();
    let config = CoordinatorConfig {
        codec: Codec::Binary,
        ..CoordinatorConfig::default()
    };
    let mut coord = Coordinator::new(store, config);
    let mut p = Orders::new();
    let mut out = Vec::new();
    p.process(
        simplestream_examples::orders::Order {
            customer: "C1".into(),
            amount: 2.5,
            ts: 1_000,
        },
        &mut out,
    );
    let info = coord.checkpoint(&p, BTreeMap::new(), 1_000).unwrap();
    drop(coord);
    let file = t.path().join("checkpoints").join(INSTANCE).join(&info.name);
    cut_and_reseal(&file);

    let out = run(tool_bin(), "verify", t.path(), &[]);
    assert_eq!(
        code(&out),
        Some(0),
        "checksum and header hold: {}",
        stdout_of(&out)
    );
    let out = run(orders_bin(), "verify", t.path(), &[]);
    assert_eq!(code(&out), Some(1), "{}", stdout_of(&out));
    assert!(
        stdout_of(&out).contains(&format!("BAD  {}: checkpoint does not decode", info.name)),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn layout_describes_each_stage_state_from_the_plan() {
    let out = Command::new(orders_bin())
        .args(["checkpoints", "layout"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let expected = format!(
        "pipeline Orders (fingerprint {}): each checkpoint holds, after its header:\n\
         \x20 customer_stats  one accumulator per key customer: String; columns count: u64 = count, amount: f64 = sum\n\
         \x20 per_5min        open tumbling 5min windows, one accumulator per key customer: String in each; columns orders: u64 = count, amount: f64 = sum\n",
        to_hex(Orders::FINGERPRINT)
    );
    assert_eq!(stdout_of(&out), expected);

    let out = Command::new(orders_bin())
        .args(["checkpoints", "layout", "--mermaid"])
        .output()
        .unwrap();
    assert_eq!(stdout_of(&out), Orders::PLAN.mermaid());
}

/// Orders with incremental checkpoints (a whole base, then deltas and manifests) into
/// `dir/checkpoints/q8-1`; returns the pipeline as it ended.
fn incremental_orders(dir: &Path) -> Orders {
    use simplestream::incremental::IncrementalConfig;
    use simplestream_examples::orders::Order;
    let store = FileStore::open(dir, INSTANCE, FileStoreOptions::default()).unwrap();
    let mut coord = Coordinator::new(store, CoordinatorConfig::default());
    coord.set_incremental(Some(IncrementalConfig::default()));
    let mut p = Orders::new();
    let mut out = Vec::new();
    for n in 1..=3_000u64 {
        // A thousand customers first, then ten of them again: deltas stay small.
        let customer = if n <= 1_000 { n } else { n % 10 };
        let order = Order {
            customer: format!("C{customer:04}"),
            amount: (n % 13) as f64,
            ts: n as i64 * 1_000,
        };
        p.process(order, &mut out);
        if n % 1_000 == 0 {
            let positions = BTreeMap::from([("events".to_string(), n)]);
            coord
                .checkpoint(&p, positions, 1_700_000_000_000 + n as i64)
                .unwrap();
        }
    }
    p
}

#[test]
fn incremental_checkpoints_are_restored_by_their_program_and_checked_by_the_tool() {
    let t = tmp();
    let p = incremental_orders(t.path());
    let dir = t.path().join("checkpoints").join(INSTANCE);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| n.ends_with(".manifest.json"))
            .count(),
        2,
        "{names:?}"
    );

    // The program restores base + deltas into the state it ended with.
    let shown = json_of(&run(orders_bin(), "show", t.path(), &[]));
    assert_eq!(shown["positions"]["events"], 3_000);
    assert_eq!(
        shown["customer_stats"],
        p.stage_json("customer_stats").unwrap()
    );

    // The tool cannot restore Orders: it checks every piece and shows the manifest.
    let out = run(tool_bin(), "show", t.path(), &[]);
    let manifest = json_of(&out);
    assert_eq!(manifest["format"], "simplestream-manifest");
    assert_eq!(
        manifest["pieces"].as_array().map(Vec::len),
        Some(3),
        "base + 2 deltas"
    );
    assert!(
        stderr_of(&out).contains("incremental checkpoint of pipeline `Orders`"),
        "{}",
        stderr_of(&out)
    );
    let out = run(tool_bin(), "verify", t.path(), &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr_of(&out));
    let listing = stdout_of(&run(tool_bin(), "list", t.path(), &[]));
    for (kind, n) in [(" whole ", 1), (" delta ", 2), (" manifest ", 2)] {
        assert_eq!(listing.matches(kind).count(), n, "{kind}:\n{listing}");
    }

    // A missing delta makes the manifests naming it bad, for the tool and the program.
    let delta = names.iter().find(|n| n.contains(".delta.")).unwrap();
    std::fs::remove_file(dir.join(delta)).unwrap();
    for bin in [tool_bin(), orders_bin()] {
        let out = run(bin, "verify", t.path(), &[]);
        assert_eq!(code(&out), Some(1), "{}", stdout_of(&out));
        assert!(
            stdout_of(&out).contains("BAD  checkpoint_"),
            "{}",
            stdout_of(&out)
        );
    }
}
