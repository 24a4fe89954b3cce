//! `cargo xtask playground`: builds the browser playground (WASM + static page) and
//! serves it on http://127.0.0.1:8080 (`--port N`), or writes the site to a directory
//! (`--build-only --out DIR`). Also the playground's part of `cargo xtask test`, which
//! `cargo xtask playground --test` runs alone.
//!
//! Installs what it needs on a fresh machine: the `wasm32-unknown-unknown` target, the
//! wasm-bindgen CLI at exactly the version Cargo.lock pins the `wasm-bindgen` crate to,
//! and for the tests Debian's `chromium` + `chromium-driver` and `playwright-core` (npm).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{cargo, root, run};

const PACKAGE: &str = "simplestream-playground";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The .wasm's size limit. The SQL editor's interpreter brings sqlparser (its parser,
/// and the `Display`, `Debug`, `PartialEq` and `Spanned` impls of its AST: about 2.2 MB
/// of the 3.1 MB, 0.65 MB of the 0.94 MB gzipped); the limit leaves room for the rest
/// to grow a little, not for a second parser.
const WASM_LIMIT: u64 = 3584 * 1024;
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Size settings of the WASM build only (native release builds stay optimized for speed):
/// link-time optimization, and every crate in it (the runtime, the SQL plan and the
/// example pipelines too) optimized for size.
const PROFILE: &[&str] = &[
    "--config",
    "profile.release.lto=true",
    "--config",
    "profile.release.package.\"*\".opt-level=\"z\"",
    "--config",
    "profile.release.package.simplestream-runtime.opt-level=\"z\"",
    "--config",
    "profile.release.package.simplestream-sqlplan.opt-level=\"z\"",
    "--config",
    "profile.release.package.simplestream-examples.opt-level=\"z\"",
    "--config",
    "profile.release.package.simplestream.opt-level=\"z\"",
    "--config",
    "profile.release.package.simplestream-playground.opt-level=\"z\"",
    "--config",
    "profile.release.package.simplestream-playground.codegen-units=1",
];

/// `cargo xtask playground [--port N] [--build-only --out DIR]`.
pub fn cli(args: &[String]) -> Result<(), String> {
    let mut port: u16 = 8080;
    let mut build_only = false;
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                let v = it.next().ok_or("--port needs a number, e.g. --port 8081")?;
                port = v
                    .parse()
                    .map_err(|_| format!("--port {v}: not a port number (1-65535)"))?;
            }
            "--build-only" => build_only = true,
            "--test" => return test(),
            "--out" => out = Some(PathBuf::from(it.next().ok_or("--out needs a directory")?)),
            "-h" | "--help" => {
                eprintln!("usage: cargo xtask playground [--port N]\n       cargo xtask playground --build-only --out DIR\n       cargo xtask playground --test   (the playground's part of cargo xtask test)");
                return Ok(());
            }
            other => {
                return Err(format!(
                    "playground: unknown argument `{other}`; use --port N, --build-only, --out DIR"
                ))
            }
        }
    }
    let out = match out {
        Some(o) if o.is_absolute() => o,
        Some(o) => std::env::current_dir().map_err(|e| e.to_string())?.join(o),
        None => target_dir()?.join("playground-site"),
    };
    build(&out)?;
    if build_only {
        eprintln!("\nplayground: site written to {}", out.display());
        return Ok(());
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        format!("cannot listen on 127.0.0.1:{port}: {e} (use --port to pick another)")
    })?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!("\nSimpleStream playground: http://127.0.0.1:{port}/  (Ctrl-C to stop)");
    serve(&out, listener);
    Ok(())
}

/// The cargo target directory (honours CARGO_TARGET_DIR).
pub fn target_dir() -> Result<PathBuf, String> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    v["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata gave no target_directory".into())
}

/// The version Cargo.lock resolves the `wasm-bindgen` crate to.
fn wasm_bindgen_version() -> Result<String, String> {
    let lock = fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines
                .next()
                .and_then(|v| v.trim().strip_prefix("version = \""))
            {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    Err("Cargo.lock has no `wasm-bindgen` package: run `cargo generate-lockfile`".into())
}

/// Where `cargo install` puts binaries.
fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    let p = home.join("bin").join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from(name)
    }
}

fn tool_version(tool: &Path) -> Option<String> {
    let out = Command::new(tool).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_string)
}

fn ensure_wasm_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(o) if o.status.success() => {
            if String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET)
            {
                return Ok(());
            }
            let mut c = Command::new("rustup");
            c.args(["target", "add", WASM_TARGET]);
            run(c)
        }
        _ => {
            let sysroot = Command::new("rustc")
                .args(["--print", "sysroot"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            if Path::new(&sysroot)
                .join("lib/rustlib")
                .join(WASM_TARGET)
                .exists()
            {
                Ok(())
            } else {
                Err(format!("the Rust target {WASM_TARGET} is missing and rustup is not available to add it: install it for your toolchain (e.g. `rustup target add {WASM_TARGET}`)"))
            }
        }
    }
}

/// Installs wasm-bindgen-cli at `version` unless `wasm-bindgen` and
/// `wasm-bindgen-test-runner` of that version are already there.
fn ensure_wasm_bindgen(version: &str) -> Result<(), String> {
    let ok = |tool: &str| tool_version(&cargo_bin(tool)).as_deref() == Some(version);
    if ok("wasm-bindgen") && ok("wasm-bindgen-test-runner") {
        return Ok(());
    }
    eprintln!(
        "\nplayground: installing wasm-bindgen-cli {version} (the version of the wasm-bindgen crate in Cargo.lock; takes a few minutes)"
    );
    let install = |locked: bool| {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &format!("={version}"),
            // Unoptimized: half the CPU of a release build (3.5 against 7.2 min here,
            // both without TLS), about 10 s more per run. No TLS: it reads our own files
            // and talks plain HTTP to a local webdriver.
            "--debug",
            "--no-default-features",
        ]);
        if locked {
            c.arg("--locked");
        }
        // Its own temporary target dir: keep its build out of the workspace's.
        c.env_remove("CARGO_TARGET_DIR");
        c.current_dir(std::env::temp_dir());
        run(c)
    };
    if let Err(e) = install(true) {
        // Seen here: the registry lacked a version the CLI's own lock file pins.
        eprintln!("playground: {e}; retrying without --locked (newest compatible dependencies)");
        install(false)?;
    }
    if ok("wasm-bindgen") && ok("wasm-bindgen-test-runner") {
        Ok(())
    } else {
        Err(format!(
            "wasm-bindgen {version} is still not found after installing it (looked in {}); is cargo's bin directory on PATH?",
            cargo_bin("wasm-bindgen").display()
        ))
    }
}

/// What a build produced.
pub struct Built {
    /// Size of the .wasm the page loads, bytes.
    pub wasm_size: u64,
}

/// Builds the WASM in release mode, runs wasm-bindgen, writes the site to `out`.
pub fn build(out: &Path) -> Result<Built, String> {
    ensure_wasm_target()?;
    let version = wasm_bindgen_version()?;
    ensure_wasm_bindgen(&version)?;
    let mut b = cargo();
    b.args(["build", "--release", "--target", WASM_TARGET, "-p", PACKAGE]);
    b.args(PROFILE);
    run(b)?;
    let wasm = target_dir()?
        .join(WASM_TARGET)
        .join("release")
        .join("simplestream_playground.wasm");
    let pkg = out.join("pkg");
    if pkg.exists() {
        fs::remove_dir_all(&pkg).map_err(|e| format!("cannot clear {}: {e}", pkg.display()))?;
    }
    fs::create_dir_all(&pkg).map_err(|e| format!("cannot create {}: {e}", pkg.display()))?;
    let mut wb = Command::new(cargo_bin("wasm-bindgen"));
    wb.args([
        "--target",
        "web",
        "--no-typescript",
        "--remove-name-section",
        "--remove-producers-section",
        "--out-dir",
    ])
    .arg(&pkg)
    .arg(&wasm);
    run(wb)?;
    let www = root().join("playground/www");
    let entries = fs::read_dir(&www).map_err(|e| format!("cannot read {}: {e}", www.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.path().is_file() {
            fs::copy(entry.path(), out.join(entry.file_name()))
                .map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
        }
    }
    let bg = pkg.join("simplestream_playground_bg.wasm");
    let wasm_size = fs::metadata(&bg)
        .map_err(|e| format!("{}: {e}", bg.display()))?
        .len();
    eprintln!(
        "playground: wasm size {} bytes ({:.0} KiB, limit {} KiB): {}",
        wasm_size,
        wasm_size as f64 / 1024.0,
        WASM_LIMIT / 1024,
        bg.display()
    );
    Ok(Built { wasm_size })
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// Serves `dir` over HTTP/1.1 on `listener`, one thread per connection, forever.
pub fn serve(dir: &Path, listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            let _ = handle(&dir, stream);
        });
    }
}

fn handle(dir: &Path, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let respond = |stream: &mut TcpStream, status: &str, ctype: &str, body: &[u8], head: bool| {
        let header = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(header.as_bytes())?;
        if !head {
            stream.write_all(body)?;
        }
        stream.flush()
    };
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
            false,
        );
    }
    let head = method == "HEAD";
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|s| s == ".." || s.starts_with('.')) || rel.contains('\\') {
        return respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"not found\n",
            head,
        );
    }
    let mut file = dir.join(rel);
    if rel.is_empty() || file.is_dir() {
        file = file.join("index.html");
    }
    let mut body = Vec::new();
    match fs::File::open(&file).and_then(|mut f| f.read_to_end(&mut body)) {
        Ok(_) => respond(&mut stream, "200 OK", content_type(&file), &body, head),
        Err(_) => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"not found\n",
            head,
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Installs Debian packages with apt-get (as root), or says exactly what to run.
fn apt_install(packages: &[&str], why: &str) -> Result<(), String> {
    let cmd = format!(
        "apt-get update && apt-get install -y {}",
        packages.join(" ")
    );
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !has_apt || !is_root() {
        return Err(format!("{why} is missing; install it (as root): {cmd}"));
    }
    eprintln!(
        "\nplayground: {why} is missing; installing {}",
        packages.join(" ")
    );
    let mut update = Command::new("apt-get");
    update.arg("update");
    run(update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages);
    install.env("DEBIAN_FRONTEND", "noninteractive");
    run(install)
}

fn ensure_chromium() -> Result<(), String> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    apt_install(
        &["chromium", "chromium-driver"],
        "headless Chromium (/usr/bin/chromium and /usr/bin/chromedriver)",
    )?;
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        Ok(())
    } else {
        Err(format!("{CHROMIUM} or {CHROMEDRIVER} is still missing after installing chromium and chromium-driver"))
    }
}

fn ensure_node() -> Result<(), String> {
    let ok = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok("node") && ok("npm") {
        return Ok(());
    }
    apt_install(
        &["nodejs", "npm"],
        "Node.js (node and npm, for the end-to-end test)",
    )
}

/// The playground's part of `cargo xtask test`: release WASM build and size check,
/// `LocalStorageStore` tests in headless Chromium (wasm-bindgen-test), and the
/// end-to-end test of the page (playwright-core + node's test runner).
pub fn test() -> Result<(), String> {
    let t = Instant::now();
    eprintln!("\n== playground: WASM build, LocalStorageStore tests in headless Chromium, end-to-end page test ==");
    let target = target_dir()?;
    let site = target.join("playground-site");
    let built = build(&site)?;
    if built.wasm_size >= WASM_LIMIT {
        return Err(format!(
            "the playground's wasm is {} bytes, over the {} KiB limit",
            built.wasm_size,
            WASM_LIMIT / 1024
        ));
    }
    // The workspace clippy step builds natively, where the browser code is compiled out.
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "-p",
        PACKAGE,
        "--all-targets",
        "--target",
        WASM_TARGET,
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    ensure_chromium()?;
    let version = wasm_bindgen_version()?;
    eprintln!("\nplayground: LocalStorageStore in headless Chromium (wasm-bindgen-test {version}, chromedriver)");
    let mut wt = cargo();
    wt.args([
        "test",
        "--release",
        "-p",
        PACKAGE,
        "--target",
        WASM_TARGET,
        "--test",
        "web",
    ]);
    wt.args(PROFILE);
    wt.env(
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
        cargo_bin("wasm-bindgen-test-runner"),
    );
    wt.env("CHROMEDRIVER", CHROMEDRIVER);
    // Chrome flags for this machine: playground/webdriver.json (the runner reads it
    // from the package directory, where cargo runs tests).
    wt.env("WASM_BINDGEN_TEST_TIMEOUT", "300");
    wt.env("WASM_BINDGEN_TEST_DRIVER_TIMEOUT", "60");
    run(wt)?;

    ensure_node()?;
    let dir = root().join("playground");
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir);
    npm.env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    run(npm)?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let served = site.clone();
    std::thread::spawn(move || serve(&served, listener));
    let shots = target.join("playground-screenshots");
    fs::create_dir_all(&shots).map_err(|e| format!("{}: {e}", shots.display()))?;
    eprintln!("\nplayground: end-to-end test of the page served at http://127.0.0.1:{port}/ (screenshots in {})", shots.display());
    let mut node = Command::new("node");
    node.args(["--test", "--test-reporter=spec", "tests/e2e.test.mjs"])
        .current_dir(&dir);
    node.env("PLAYGROUND_URL", format!("http://127.0.0.1:{port}/"));
    node.env("SCREENSHOT_DIR", &shots);
    node.env("CHROMIUM_PATH", CHROMIUM);
    run(node)?;
    eprintln!(
        "\nplayground checks passed in {:.0}s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
