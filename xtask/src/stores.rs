//! `cargo xtask store-bench [--quick]`: what a checkpoint costs in each store.
//!
//! Runs the release `orders` program over generated orders with 10k and 1M customers
//! (`--quick`: 10k and 100k), checkpointing every 500 ms (2 s for 1M keys), into a file
//! store, S3 (moto on 127.0.0.1) and Kafka (tansu on 127.0.0.1), with inline and with
//! background uploads, and reads the pause and upload times from the program's summary
//! line. Writes `target/bench/stores.md`.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{root, tools};

/// A server process, killed on drop.
pub(crate) struct Server(Child);

impl Server {
    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// A tansu broker on a free port of 127.0.0.1 with in-memory storage, and its port.
pub(crate) fn start_tansu(bin: &std::path::Path) -> Result<(Server, u16), String> {
    let port = free_port()?;
    let url = format!("tcp://127.0.0.1:{port}");
    let server = start(
        Command::new(bin.join("tansu")).args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ]),
        port,
        "tansu",
    )?;
    Ok((server, port))
}

/// The release `orders` example (built by `build_release_binaries`).
pub(crate) fn release_orders() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("release/examples/orders")
}

/// `rel` under the repository, emptied: a bench's or demo's scratch directory.
pub(crate) fn fresh_dir(rel: &str) -> Result<std::path::PathBuf, String> {
    let dir = root().join(rel);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

pub(crate) fn start(cmd: &mut Command, port: u16, what: &str) -> Result<Server, String> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {what}: {e}"))?;
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not listen on {port}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

fn create_bucket(port: u16, bucket: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    if !resp.starts_with("HTTP/1.1 200") {
        return Err(format!("creating bucket {bucket}: {resp}"));
    }
    Ok(())
}

/// What one run reported.
#[derive(Debug, Default)]
struct Measured {
    eps: f64,
    checkpoints: u64,
    pause_p50: f64,
    pause_max: f64,
    upload_p50: f64,
    upload_max: f64,
    bytes: u64,
}

/// Reads the numbers out of the summary line (see `runner::run`).
fn parse_summary(s: &str) -> Option<Measured> {
    let line = s.lines().rev().find(|l| l.contains("checkpoint(s)"))?;
    let num_after = |key: &str| -> Option<f64> {
        let i = line.find(key)? + key.len();
        let rest = line[i..].trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    let eps = {
        let i = line.find("this run, ")? + "this run, ".len();
        let rest = &line[i..];
        rest[..rest.find("/s")?].parse().ok()?
    };
    let checkpoints = {
        let j = line.find(" checkpoint(s)")?;
        let start = line[..j].rfind(' ')? + 1;
        line[start..j].parse().ok()?
    };
    Some(Measured {
        eps,
        checkpoints,
        pause_p50: num_after("pause p50")?,
        pause_max: num_after("ms, max")?,
        upload_p50: num_after("upload p50")?,
        upload_max: {
            let i = line.find("upload p50")?;
            let rest = &line[i..];
            let k = rest.find("max")? + 3;
            let r = rest[k..].trim_start();
            r[..r.find(' ')?].parse().ok()?
        },
        bytes: 0,
    })
}

fn latest_bytes(tool: &Path, store: &str, envs: &[(String, String)]) -> u64 {
    let out = Command::new(tool)
        .args(["checkpoints", "list", store, "--instance", "bench"])
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .output();
    let Ok(out) = out else { return 0 };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("(latest)"))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(0)
}

pub fn run_store_bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let bin = tools::ensure()?;
    crate::build_release_binaries()?;
    let release = root().join("target/release");
    let orders = release.join("examples/orders");
    let tool = release.join("simplestream");
    let work = root().join("target/bench/stores");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;

    let s3_port = free_port()?;
    let _moto = start(
        Command::new(bin.join("moto_server")).args(["-H", "127.0.0.1", "-p", &s3_port.to_string()]),
        s3_port,
        "moto_server",
    )?;
    create_bucket(s3_port, "bench")?;
    let (_tansu, k_port) = start_tansu(&bin)?;
    let s3_env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{s3_port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "bench".into()),
        ("AWS_SECRET_ACCESS_KEY", "bench".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    let sizes: &[u64] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 1_000_000]
    };
    let mut md = String::new();
    writeln!(
        md,
        "# Checkpoint stores: pause and upload per checkpoint\n\n`cargo xtask store-bench{}`: the release `orders` program (at least 2M events, 3 per key), a checkpoint every 500 ms (2 s with 1M keys), servers on 127.0.0.1 (moto for S3, tansu with in-memory storage for Kafka). Pause = processing stopped (inline: serialize + store; background: serialize, plus waiting for the previous upload if it is still running). Upload = writing the checkpoint, `latest` and retention. p50 / max over the run's checkpoints (the final one is always inline).\n",
        if quick { " --quick" } else { "" }
    )
    .unwrap();
    writeln!(md, "| keys | codec | store | upload | checkpoints | bytes | pause p50 | pause max | upload p50 | upload max | events/s |").unwrap();
    writeln!(md, "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|").unwrap();
    for &customers in sizes {
        // Long enough for several time-triggered checkpoints, each far enough apart that
        // a background upload normally finishes before the next one starts.
        let events = (customers * 3).max(2_000_000);
        let interval = if customers >= 1_000_000 {
            "2s"
        } else {
            "500ms"
        };
        let input = work.join(format!("orders-{customers}.jsonl"));
        let keys = crate::gen::write_orders(&input, events, customers, 7)?;
        for codec in ["binary", "json"] {
            for (store_name, url, envs) in [
                ("file", String::new(), Vec::new()),
                (
                    "s3",
                    format!("s3://bench/{customers}-{codec}"),
                    s3_env.clone(),
                ),
                (
                    "kafka",
                    format!("kafka://127.0.0.1:{k_port}/bench-{customers}-{codec}"),
                    Vec::new(),
                ),
            ] {
                for upload in ["inline", "background"] {
                    let tag = format!("{store_name}-{customers}-{codec}-{upload}");
                    let dir = work.join(&tag);
                    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                    // A fresh instance per run, so every run starts from nothing.
                    let store = if url.is_empty() {
                        dir.join("ckpt").display().to_string()
                    } else {
                        format!("{url}-{upload}")
                    };
                    let mut c = Command::new(&orders);
                    c.arg("--input")
                        .arg(&input)
                        .arg("--output")
                        .arg(dir.join("out.jsonl"))
                        .args(["--checkpoint-store", &store, "--instance", "bench"])
                        .args(["--checkpoint-every", "0", "--checkpoint-interval", interval])
                        .args(["--codec", codec, "--upload", upload])
                        .envs(envs.iter().map(|(k, v)| (k, v)));
                    let out = c.output().map_err(|e| format!("running orders: {e}"))?;
                    let err = String::from_utf8_lossy(&out.stderr);
                    if !out.status.success() {
                        return Err(format!("{tag}: orders failed:\n{err}"));
                    }
                    let mut m = parse_summary(&err)
                        .ok_or_else(|| format!("{tag}: no summary line in:\n{err}"))?;
                    m.bytes = latest_bytes(&tool, &store, &envs);
                    let row = format!(
                        "| {keys} | {codec} | {store_name} | {upload} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} |",
                        m.checkpoints, m.bytes, m.pause_p50, m.pause_max, m.upload_p50, m.upload_max, m.eps
                    );
                    eprintln!("{row}");
                    writeln!(md, "{row}").unwrap();
                }
            }
        }
    }
    let out: PathBuf = root().join("target/bench/stores.md");
    std::fs::write(&out, &md).map_err(|e| format!("writing {}: {e}", out.display()))?;
    println!("{md}");
    eprintln!("wrote {}", out.display());
    Ok(())
}
