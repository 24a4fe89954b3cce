//! The object-store backend against a real S3-protocol server (moto) on 127.0.0.1:
//! layout, create-only checkpoints, conditional `latest.json`, a second writer, clear
//! errors for a missing bucket, a dead endpoint and missing credentials, corrupt objects,
//! background uploads, and a restore on a "new machine" (a new store, same bucket).

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Bounds a wait that must end (a bounded retry): a hang guard, not a speed verdict.
const HANG_GUARD: Duration = Duration::from_secs(180);

use common::*;
use simplestream::coordinator::Recovered;
use simplestream::envelope;
use simplestream::store::{ObjectStoreBackend, StoreErrorKind};
use simplestream::{CheckpointStore, Codec, Coordinator, CoordinatorConfig, Pipeline};
use support::servers::{self, Server};

const BUCKET: &str = "ckpt-bucket";

fn opts(server: &Server) -> Vec<(String, String)> {
    vec![
        ("aws_endpoint".into(), format!("http://{}", server.addr())),
        ("allow_http".into(), "true".into()),
        ("aws_access_key_id".into(), "test".into()),
        ("aws_secret_access_key".into(), "test".into()),
        ("aws_region".into(), "us-east-1".into()),
    ]
}

fn open(
    server: &Server,
    url: &str,
    instance: &str,
) -> Result<ObjectStoreBackend, simplestream::StoreError> {
    let o = opts(server);
    let o: Vec<(&str, &str)> = o.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ObjectStoreBackend::open_with(url, instance, &o)
}

/// A moto server with the test bucket, or `None` when moto is not installed.
fn s3() -> Option<Server> {
    let server = servers::moto()?;
    servers::create_bucket(&server, BUCKET);
    Some(server)
}

fn orders(n: usize, customers: usize) -> Vec<Order> {
    (0..n)
        .map(|i| Order {
            customer: format!("C{:05}", i % customers),
            amount: (i % 97) as f64 + 0.5,
            ts: 1_733_061_600_000 + i as i64 * 10,
        })
        .collect()
}

fn fed(events: &[Order]) -> OrderStats {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    for e in events {
        p.process(e.clone(), &mut out);
    }
    p
}

fn state(p: &OrderStats) -> Vec<u8> {
    let mut v = Vec::new();
    p.encode_stages(Codec::Json, &mut v).unwrap();
    v
}

fn config(codec: Codec, keep: usize) -> CoordinatorConfig {
    CoordinatorConfig {
        every_events: Some(100),
        every_ms: None,
        codec,
        keep,
    }
}

#[test]
fn checkpoints_land_in_the_articles_layout_and_restore_on_a_new_machine() {
    let Some(server) = s3() else { return };
    let url = format!("s3://{BUCKET}/prod");
    for codec in [Codec::Json, Codec::Binary] {
        let instance = format!("app-instance-{codec}");
        let store = open(&server, &url, &instance).unwrap();
        assert_eq!(
            store.location(),
            format!("s3://{BUCKET}/prod/checkpoints/{instance}")
        );
        let mut c = Coordinator::new(store, config(codec, 3));
        let events = orders(2_000, 300);
        let mut p = OrderStats::new();
        let mut out = Vec::new();
        let mut saved = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            p.process(e.clone(), &mut out);
            if (i + 1) % 400 == 0 {
                let info = c
                    .checkpoint(
                        &p,
                        [("events".to_string(), i as u64 + 1)].into(),
                        1_000 + i as i64,
                    )
                    .unwrap();
                saved.insert(info.name.clone(), state(&p));
            }
        }
        // Retention keeps 3 objects; every name is a checkpoint name under the prefix.
        let names: Vec<String> = c
            .store()
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names
            .iter()
            .all(|n| n.starts_with("checkpoint_") && n.ends_with(codec.extension())));
        let latest: serde_json::Value =
            serde_json::from_slice(&c.store().get_latest().unwrap().unwrap()).unwrap();
        assert_eq!(latest["file"], names[2].as_str());
        assert_eq!(latest["checkpoint_id"], 5);

        // A "new machine": nothing local, only the bucket.
        let mut fresh = Coordinator::new(open(&server, &url, &instance).unwrap(), config(codec, 3));
        let r: Recovered<OrderStats> = fresh.recover().unwrap().expect("a checkpoint");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.name, names[2]);
        assert_eq!(state(&r.pipeline), saved[&names[2]]);
        assert_eq!(state(&r.pipeline), state(&p));
        assert_eq!(fresh.next_id(), 6);
    }
}

#[test]
fn a_second_writer_on_one_instance_loses_loudly_and_changes_nothing() {
    let Some(server) = s3() else { return };
    let url = format!("s3://{BUCKET}/two");
    let mut a = open(&server, &url, "shared").unwrap();
    a.put_latest(b"{\"from\":\"a1\"}").unwrap();
    // B starts and reads the current latest (as recovery does).
    let mut b = open(&server, &url, "shared").unwrap();
    assert_eq!(b.get_latest().unwrap().unwrap(), b"{\"from\":\"a1\"}");
    b.put_latest(b"{\"from\":\"b1\"}").unwrap();
    // A still believes its own version is current: its conditional write must fail.
    let e = a.put_latest(b"{\"from\":\"a2\"}").unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Conflict, "{e}");
    assert!(
        e.to_string()
            .contains("latest.json was changed by another process"),
        "{e}"
    );
    assert_eq!(b.get_latest().unwrap().unwrap(), b"{\"from\":\"b1\"}");
    // And B goes on (its version is the current one).
    b.put_latest(b"{\"from\":\"b2\"}").unwrap();
    assert_eq!(a.get_latest().unwrap().unwrap(), b"{\"from\":\"b2\"}");
}

#[test]
fn a_fresh_instance_creates_latest_only_if_nobody_else_did() {
    let Some(server) = s3() else { return };
    let url = format!("s3://{BUCKET}/race");
    // Both start while the instance has no latest.json; the first create wins.
    let mut a = open(&server, &url, "new").unwrap();
    let mut b = open(&server, &url, "new").unwrap();
    a.put_latest(b"{\"from\":\"a\"}").unwrap();
    let e = b.put_latest(b"{\"from\":\"b\"}").unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Conflict, "{e}");
    assert_eq!(a.get_latest().unwrap().unwrap(), b"{\"from\":\"a\"}");
    // Reading what A wrote does not make B's writes acceptable: B stays fenced off.
    assert_eq!(b.get_latest().unwrap().unwrap(), b"{\"from\":\"a\"}");
    let e = b.put_latest(b"{\"from\":\"b2\"}").unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Conflict, "{e}");
    let e = b.put("checkpoint_b-000009.json", b"x").unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Conflict, "{e}");
    assert_eq!(a.get_latest().unwrap().unwrap(), b"{\"from\":\"a\"}");
}

#[test]
fn bad_bucket_endpoint_credentials_and_urls_give_one_clear_line() {
    let Some(server) = s3() else { return };
    let one_line = |e: &simplestream::StoreError| {
        let s = e.to_string();
        assert!(!s.contains('\n'), "{s}");
        assert!(s.len() < 300, "too long: {s}");
        s
    };
    let e = open(&server, "s3://no-such-bucket/app", "i").unwrap_err();
    let s = one_line(&e);
    assert!(
        s.contains("NoSuchBucket") && s.contains("create the bucket"),
        "{s}"
    );

    // Nothing listens on port 1: refused at once, retried briefly, then reported.
    let started = Instant::now();
    let e = ObjectStoreBackend::open_with(
        &format!("s3://{BUCKET}/app"),
        "i",
        &[
            ("aws_endpoint", "http://127.0.0.1:1"),
            ("allow_http", "true"),
            ("aws_access_key_id", "k"),
            ("aws_secret_access_key", "s"),
            ("aws_region", "us-east-1"),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Unavailable, "{e}");
    let s = one_line(&e);
    assert!(s.contains("cannot reach the server"), "{s}");
    assert!(
        started.elapsed() < HANG_GUARD,
        "took {:?}",
        started.elapsed()
    );

    // http:// without allow_http.
    let e = ObjectStoreBackend::open_with(
        &format!("s3://{BUCKET}/app"),
        "i",
        &[
            ("aws_endpoint", &format!("http://{}", server.addr())),
            ("aws_access_key_id", "k"),
            ("aws_secret_access_key", "s"),
            ("aws_region", "us-east-1"),
        ],
    )
    .unwrap_err();
    assert!(one_line(&e).contains("AWS_ALLOW_HTTP=true"), "{e}");

    // Bad URLs and instance names never reach the network.
    for (url, want) in [
        ("s3:///app", "no bucket"),
        ("ftp://x/y", "unknown scheme"),
        ("kafka://localhost", "kafka://host:port/topic"),
    ] {
        let e = simplestream::store::StoreUrl::parse(url).unwrap_err();
        assert!(one_line(&e).contains(want), "{url}: {e}");
    }
    let e = open(&server, &format!("s3://{BUCKET}/app"), "../x").unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Invalid);
}

#[test]
fn corrupt_or_truncated_objects_are_detected_and_recovery_falls_back() {
    let Some(server) = s3() else { return };
    let url = format!("s3://{BUCKET}/corrupt");
    let mut c = Coordinator::new(open(&server, &url, "i").unwrap(), config(Codec::Binary, 5));
    let events = orders(900, 50);
    let mut names = Vec::new();
    let mut states = Vec::new();
    for k in 1..=3 {
        let p = fed(&events[..300 * k]);
        let info = c.checkpoint(&p, BTreeMap::new(), k as i64 * 1000).unwrap();
        names.push(info.name);
        states.push(state(&p));
    }
    // Overwrite the newest object with a flipped byte, and the middle one cut short,
    // behind the store's back (as a faulty uploader or a manual edit would).
    let mut raw = open(&server, &url, "i").unwrap();
    let mut bytes = raw.get(&names[2]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    raw.delete(&names[2]).unwrap();
    raw.put(&names[2], &bytes).unwrap();
    let good = raw.get(&names[1]).unwrap();
    raw.delete(&names[1]).unwrap();
    raw.put(&names[1], &good[..good.len() - 7]).unwrap();

    let mut fresh = Coordinator::new(open(&server, &url, "i").unwrap(), config(Codec::Binary, 5));
    let r: Recovered<OrderStats> = fresh.recover().unwrap().unwrap();
    assert_eq!(r.name, names[0]);
    assert_eq!(state(&r.pipeline), states[0]);
    let w = r.warnings.join("\n");
    assert!(w.contains("checksum mismatch"), "{w}");
    assert!(w.contains("truncated"), "{w}");
    // The tools see the same.
    let listed = fresh.inspect().unwrap();
    assert!(listed[2].header.is_err() && listed[1].header.is_err() && listed[0].header.is_ok());
    let _ = envelope::verify(&raw.get(&names[0]).unwrap()).unwrap();
}

#[test]
fn background_uploads_move_latest_only_when_durable() {
    let Some(server) = s3() else { return };
    let url = format!("s3://{BUCKET}/bg");
    let mut c = Coordinator::new(open(&server, &url, "i").unwrap(), config(Codec::Json, 10));
    let events = orders(1_000, 100);
    let p1 = fed(&events[..500]);
    let id = c.begin_upload(&p1, BTreeMap::new(), 1_000).unwrap();
    assert_eq!(id, 1);
    assert!(c.uploading());
    // At most one in flight.
    let p2 = fed(&events);
    let e = c.begin_upload(&p2, BTreeMap::new(), 2_000).unwrap_err();
    assert!(e.to_string().contains("still being uploaded"), "{e}");
    let info = c.finish_upload().unwrap().unwrap();
    assert_eq!(info.id, 1);
    assert!(!c.uploading());
    assert_eq!(c.latest().unwrap().unwrap().file, info.name);
    c.begin_upload(&p2, BTreeMap::new(), 2_000).unwrap();
    let info2 = c.finish_upload().unwrap().unwrap();
    assert_eq!(info2.id, 2);
    let mut fresh = Coordinator::new(open(&server, &url, "i").unwrap(), config(Codec::Json, 10));
    let r: Recovered<OrderStats> = fresh.recover().unwrap().unwrap();
    assert_eq!(state(&r.pipeline), state(&p2));
}

#[test]
fn an_upload_during_a_server_outage_fails_cleanly_and_the_next_one_lands() {
    let Some(server) = s3() else { return };
    let url = format!("s3://{BUCKET}/down");
    let o = opts(&server);
    let mut o: Vec<(&str, &str)> = o.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    o.push(("timeout", "1s"));
    let store = ObjectStoreBackend::open_with(&url, "i", &o).unwrap();
    let mut c = Coordinator::new(store, config(Codec::Json, 10));
    let events = orders(600, 60);
    let p1 = fed(&events[..300]);
    let first = c.checkpoint(&p1, BTreeMap::new(), 1_000).unwrap();
    // The server stops answering (SIGSTOP: connections hang) while an upload runs.
    server.pause();
    let p2 = fed(&events);
    let started = Instant::now();
    c.begin_upload(&p2, BTreeMap::new(), 2_000).unwrap();
    let e = c.finish_upload().unwrap().unwrap_err();
    assert!(
        started.elapsed() < HANG_GUARD,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        e.to_string().contains("timed out") || e.to_string().contains("cannot reach"),
        "{e}"
    );
    server.resume();
    // `latest` still names the first checkpoint, which restores.
    assert_eq!(c.latest().unwrap().unwrap().file, first.name);
    let mut other = Coordinator::new(open(&server, &url, "i").unwrap(), config(Codec::Json, 10));
    let r: Recovered<OrderStats> = other.recover().unwrap().unwrap();
    assert_eq!(state(&r.pipeline), state(&p1));
    // Once the server is back, the next checkpoint lands and is the one restored.
    let again = c.checkpoint(&p2, BTreeMap::new(), 3_000).unwrap();
    assert!(again.id > first.id);
    let mut fresh = Coordinator::new(open(&server, &url, "i").unwrap(), config(Codec::Json, 10));
    let r: Recovered<OrderStats> = fresh.recover().unwrap().unwrap();
    assert_eq!(r.name, again.name);
    assert_eq!(state(&r.pipeline), state(&p2));
}
