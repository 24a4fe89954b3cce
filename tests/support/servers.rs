//! Real servers on 127.0.0.1 for the remote-store tests: moto (S3 protocol) and tansu
//! (Kafka protocol), installed by `cargo xtask tools` (and `cargo xtask test`) into
//! `target/tools/bin`. Each test starts its own server on a free port and stops it on
//! drop.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the server binaries are.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("SIMPLESTREAM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin"))
}

/// The server binary `name`, or `None` (with a note) when it is not installed. Under
/// `cargo xtask test` (`SIMPLESTREAM_REQUIRE_SERVERS=1`) a missing server fails the test.
pub fn server_bin(name: &str) -> Option<PathBuf> {
    let p = tools_dir().join(name);
    if p.exists() {
        return Some(p);
    }
    let msg = format!(
        "{} is not installed: run `cargo xtask tools` (cargo xtask test does)",
        p.display()
    );
    if std::env::var("SIMPLESTREAM_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    None
}

/// A free TCP port on 127.0.0.1, never one handed out before in this process: the
/// kernel may give a just-released port again, and two servers of parallel tests on one
/// port would make one test talk to the other's server.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Waits until `port` accepts connections.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server process, killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub what: &'static str,
    /// How to start it again on the same port (for stop/restart tests).
    pub command: Vec<std::ffi::OsString>,
    pub envs: Vec<(String, String)>,
}

impl Server {
    fn spawn(
        what: &'static str,
        port: u16,
        command: Vec<std::ffi::OsString>,
        envs: Vec<(String, String)>,
    ) -> Server {
        let mut c = Command::new(&command[0]);
        c.args(&command[1..])
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("starting {what}: {e}"));
        wait_for_port(port, &mut child, what);
        Server {
            child,
            port,
            what,
            command,
            envs,
        }
    }

    /// Stops the server (SIGKILL).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes the server (SIGSTOP): it keeps its port and state but answers nothing.
    pub fn pause(&self) {
        signal(self.child.id(), "-STOP");
    }

    /// Unfreezes a paused server (SIGCONT).
    pub fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let again = Server::spawn(
            self.what,
            self.port,
            self.command.clone(),
            self.envs.clone(),
        );
        *self = again;
    }

    fn resume_quietly(&self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

impl Drop for Server {
    fn drop(&mut self) {
        self.resume_quietly();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A moto S3 server (state in memory: a restart empties it).
pub fn moto() -> Option<Server> {
    let bin = server_bin("moto_server")?;
    let port = free_port();
    Some(Server::spawn(
        "moto_server",
        port,
        vec![
            bin.into(),
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string().into(),
        ],
        vec![],
    ))
}

/// The `AWS_*` variables that point an S3 client at `server`.
pub fn s3_env(server: &Server) -> Vec<(String, String)> {
    vec![
        (
            "AWS_ENDPOINT_URL".into(),
            format!("http://{}", server.addr()),
        ),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
}

/// Creates `bucket` on a moto server (a plain HTTP PUT, as S3 does it). Retried for a
/// few seconds: a server that just started listening may still reset connections.
pub fn create_bucket(server: &Server, bucket: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match try_create_bucket(server.port, bucket) {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("creating bucket {bucket}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("creating bucket {bucket}: {e}"),
        }
    }
}

fn try_create_bucket(port: u16, bucket: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    if resp.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("unexpected answer: {resp}"))
    }
}

/// A tansu Kafka broker with in-memory storage.
pub fn tansu() -> Option<Server> {
    let bin = server_bin("tansu")?;
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    Some(Server::spawn(
        "tansu",
        port,
        vec![
            bin.into(),
            "broker".into(),
            "--listener-url".into(),
            url.clone().into(),
            "--advertised-listener-url".into(),
            url.into(),
            "--storage-engine".into(),
            "memory://tansu/".into(),
        ],
        vec![],
    ))
}

/// Azurite's blob service (Azure Blob Storage, in memory), from npm.
pub fn azurite() -> Option<Server> {
    let bin = server_bin("azurite-blob")?;
    let port = free_port();
    Some(Server::spawn(
        "azurite-blob",
        port,
        vec![
            bin.into(),
            "--blobHost".into(),
            "127.0.0.1".into(),
            "--blobPort".into(),
            port.to_string().into(),
            "--inMemoryPersistence".into(),
            "--skipApiVersionCheck".into(),
            // No telemetry: nothing but loopback.
            "--disableTelemetry".into(),
            "--silent".into(),
        ],
        vec![],
    ))
}

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Creates `container` on Azurite (a signed request `object_store` cannot make; node
/// comes with Azurite).
pub fn create_azure_container(server: &Server, container: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/azurite_container.js");
    // A just-started Azurite may still refuse or reset connections (seen in a fresh CI
    // run): retry those until it answers; any other failure is final.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("node")
            .arg(&script)
            .arg(server.port.to_string())
            .arg(container)
            .output()
            .expect("run node");
        if out.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let transient = err.contains("ECONNREFUSED") || err.contains("ECONNRESET");
        assert!(
            transient && Instant::now() < deadline,
            "creating container {container} failed: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `object_store` options that point an `az://` store at `server`.
pub fn azure_options(server: &Server) -> Vec<(String, String)> {
    vec![
        ("azure_storage_account_name".into(), AZURITE_ACCOUNT.into()),
        ("azure_storage_account_key".into(), AZURITE_KEY.into()),
        (
            "azure_storage_endpoint".into(),
            format!("http://{}/{AZURITE_ACCOUNT}", server.addr()),
        ),
        ("azure_allow_http".into(), "true".into()),
    ]
}
