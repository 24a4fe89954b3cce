//! `KafkaStore` against a real Kafka-protocol broker (tansu on 127.0.0.1, started per
//! test): the record layout on the topic, round trips, `latest`, retention, a crash before
//! the manifest, corrupt records, a second writer, an unreachable broker, a broker
//! restart, a "new machine", and the coordinator checkpointing a real pipeline through it.
//!
//! Without the tansu binary (`cargo xtask tools` installs it) each test returns early,
//! unless `SIMPLESTREAM_REQUIRE_SERVERS=1`, where it fails.

mod common;
mod support;
use common::*;
use support::servers;

/// Bounds a wait that must end (a bounded retry): a hang guard, not a speed verdict.
const HANG_GUARD: Duration = Duration::from_secs(180);

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;
use simplestream::coordinator::checkpoint_name;
use simplestream::envelope;
use simplestream::store::{
    CheckpointStore, KafkaStore, KafkaStoreOptions, Manifest, StoreErrorKind,
};
use simplestream::{Codec, Coordinator, CoordinatorConfig, Pipeline};

const TOPIC: &str = "app-checkpoints";
const INSTANCE: &str = "app-instance-1";
const T0: i64 = 1_733_061_600_000; // 2024-12-01 14:00:00 UTC

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The topic read and written directly, as another Kafka client would.
struct Raw {
    rt: tokio::runtime::Runtime,
    pc: PartitionClient,
}

/// One record of the topic.
#[derive(Debug, Clone)]
struct Rec {
    offset: i64,
    key: String,
    value: Option<Vec<u8>>,
    writer: Option<String>,
}

impl Raw {
    fn new(addr: &str, topic: &str) -> Raw {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pc = rt.block_on(async {
            let client = ClientBuilder::new(vec![addr.to_string()])
                .build()
                .await
                .unwrap();
            client
                .partition_client(topic, 0, UnknownTopicHandling::Retry)
                .await
                .unwrap()
        });
        Raw { rt, pc }
    }

    /// Every record, oldest first.
    fn records(&self) -> Vec<Rec> {
        self.rt.block_on(async {
            let end = self.pc.get_offset(OffsetAt::Latest).await.unwrap();
            let mut at = self.pc.get_offset(OffsetAt::Earliest).await.unwrap();
            let mut out = Vec::new();
            while at < end {
                let (recs, _) = self
                    .pc
                    .fetch_records(at, 1..64 * 1024 * 1024, 500)
                    .await
                    .unwrap();
                assert!(!recs.is_empty(), "nothing at offset {at} < {end}");
                for r in recs {
                    at = r.offset + 1;
                    out.push(Rec {
                        offset: r.offset,
                        key: String::from_utf8(r.record.key.unwrap_or_default()).unwrap(),
                        value: r.record.value,
                        writer: r
                            .record
                            .headers
                            .get("simplestream-writer")
                            .map(|w| String::from_utf8_lossy(w).into_owned()),
                    });
                }
            }
            out
        })
    }

    /// Produces one record; returns its offset.
    fn produce(&self, key: &str, value: Option<Vec<u8>>, writer: Option<&str>) -> i64 {
        let mut headers = BTreeMap::new();
        if let Some(w) = writer {
            headers.insert("simplestream-writer".to_string(), w.as_bytes().to_vec());
        }
        let record = Record {
            key: Some(key.as_bytes().to_vec()),
            value,
            headers,
            timestamp: rskafka::chrono::DateTime::from_timestamp_millis(T0).unwrap(),
        };
        self.rt
            .block_on(self.pc.produce(vec![record], Compression::NoCompression))
            .unwrap()[0]
    }
}

fn open(addr: &str) -> KafkaStore {
    KafkaStore::open(addr, TOPIC, INSTANCE).unwrap_or_else(|e| panic!("{e}"))
}

/// Every stage's state as JSON text: equal text means equal state.
fn state<P: Pipeline>(p: &P) -> String {
    let mut v = Vec::new();
    p.encode_stages(Codec::Json, &mut v).unwrap();
    String::from_utf8(v).unwrap()
}

/// An `OrderStats` fed with `n` orders of up to `keys` customers.
fn fed(seed: u64, n: usize, keys: u64) -> OrderStats {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    for e in orders(seed, n, keys, 3_000) {
        p.process(e, &mut out);
    }
    p
}

/// A checkpoint of `p` (bytes and stage spans) named as the coordinator would.
fn encoded(p: &OrderStats, id: u64, codec: Codec) -> (String, envelope::Encoded) {
    let e = envelope::encode_staged(p, codec, id, T0 + id as i64, BTreeMap::new()).unwrap();
    (checkpoint_name(T0 + id as i64, id, codec), e)
}

fn names(s: &KafkaStore) -> Vec<String> {
    s.list().unwrap().into_iter().map(|e| e.name).collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// Several checkpoints, one of several MB and stages, round-trip byte for byte; on the
/// topic they really are one record per stage chunk plus a manifest, keyed as documented;
/// `latest`, `list`, `delete` (tombstones) and a reopen ("new machine") agree.
#[test]
fn round_trip_records_per_stage_latest_list_delete_reopen() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let addr = server.addr();
    let mut store = open(&addr);
    assert_eq!(store.cleanup_policy().unwrap().as_deref(), Some("compact"));
    assert!(store.list().unwrap().is_empty());
    assert_eq!(store.get_latest().unwrap(), None);

    let small = fed(1, 200, 20);
    let big = fed(2, 120_000, 100_000);
    let mut written = Vec::new();
    for (id, p, codec) in [
        (1, &small, Codec::Json),
        (2, &small, Codec::Binary),
        (3, &big, Codec::Json),
    ] {
        let (name, e) = encoded(p, id, codec);
        store.put_staged(&name, &e.bytes, &e.stages).unwrap();
        written.push((name, e));
    }
    // A plain `put` (no spans) is one segment.
    store
        .put(
            "checkpoint_20241201_140000_004-000004.json",
            b"{\"plain\":true}",
        )
        .unwrap();
    store
        .put_latest(br#"{"file":"checkpoint_20241201_140000_004-000004.json"}"#)
        .unwrap();

    let (big_name, big_enc) = &written[2];
    assert!(
        big_enc.bytes.len() > 2_000_000,
        "{} bytes",
        big_enc.bytes.len()
    );
    for (name, e) in &written {
        assert_eq!(&store.get(name).unwrap(), &e.bytes, "{name}");
    }
    assert_eq!(
        store
            .get("checkpoint_20241201_140000_004-000004.json")
            .unwrap(),
        b"{\"plain\":true}"
    );
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 4);
    assert!(
        listed.windows(2).all(|w| w[0].name < w[1].name),
        "sorted: {listed:?}"
    );
    assert_eq!(listed[2].size, big_enc.bytes.len() as u64);

    // The topic: the big checkpoint's records, keyed per stage, in order, then its manifest.
    let raw = Raw::new(&addr, TOPIC);
    let recs = raw.records();
    let prefix = format!("{INSTANCE}/{big_name}");
    let mine: Vec<&Rec> = recs.iter().filter(|r| r.key.starts_with(&prefix)).collect();
    let keys: Vec<&str> = mine.iter().map(|r| r.key.as_str()).collect();
    let stage_chunks = |stage: &str| {
        let span = big_enc.stages.iter().find(|s| s.name == stage).unwrap();
        span.range.len().div_ceil(512 * 1024)
    };
    let mut expected = vec![format!("{prefix}/_envelope/0")];
    for i in 0..stage_chunks("customer_stats") {
        expected.push(format!("{prefix}/customer_stats/{i}"));
    }
    expected.push(format!("{prefix}/_envelope/1"));
    for i in 0..stage_chunks("per_5min") {
        expected.push(format!("{prefix}/per_5min/{i}"));
    }
    expected.push(format!("{prefix}/_envelope/2"));
    expected.push(prefix.clone());
    assert_eq!(keys, expected);
    assert!(
        stage_chunks("customer_stats") >= 4,
        "a multi-MB stage is several records"
    );
    // Each record holds exactly its slice, at most 512 KiB, written by this store.
    let mut joined = Vec::new();
    for r in &mine[..mine.len() - 1] {
        let v = r.value.as_ref().unwrap();
        assert!(v.len() <= 512 * 1024);
        joined.extend_from_slice(v);
        assert_eq!(r.writer.as_deref(), Some(store.writer_id()));
    }
    assert_eq!(&joined, &big_enc.bytes);
    // The stage records hold the stage's state and nothing else.
    let span = &big_enc
        .stages
        .iter()
        .find(|s| s.name == "customer_stats")
        .unwrap()
        .range;
    let stage_bytes: Vec<u8> = mine
        .iter()
        .filter(|r| r.key.contains("/customer_stats/"))
        .flat_map(|r| r.value.clone().unwrap())
        .collect();
    assert_eq!(stage_bytes, big_enc.bytes[span.clone()]);
    // The manifest lists them with offsets, places and CRCs.
    let m: Manifest = serde_json::from_slice(mine.last().unwrap().value.as_ref().unwrap()).unwrap();
    assert_eq!(m.checkpoint, *big_name);
    assert_eq!(m.size, big_enc.bytes.len() as u64);
    assert_eq!(m.segments.len(), mine.len() - 1);
    for (s, r) in m.segments.iter().zip(&mine) {
        assert_eq!((s.key.as_str(), s.offset), (r.key.as_str(), r.offset));
        assert_eq!(
            s.crc32,
            format!("{:08x}", crc32fast::hash(r.value.as_ref().unwrap()))
        );
        assert_eq!(
            &big_enc.bytes[s.start as usize..(s.start + s.len) as usize],
            r.value.as_ref().unwrap().as_slice()
        );
    }
    assert!(recs.iter().any(|r| r.key == format!("{INSTANCE}/latest")));

    // Delete: tombstones for the manifest and every record; gone from list and get.
    let before = recs.len();
    store.delete(&written[0].0).unwrap();
    store.delete("checkpoint_never_written.json").unwrap();
    assert_eq!(names(&store).len(), 3);
    assert_eq!(
        store.get(&written[0].0).unwrap_err().kind,
        StoreErrorKind::NotFound
    );
    let recs = raw.records();
    let tomb: Vec<&Rec> = recs[before..].iter().collect();
    let deleted_keys: Vec<&str> = recs[..before]
        .iter()
        .filter(|r| r.key.starts_with(&format!("{INSTANCE}/{}", written[0].0)))
        .map(|r| r.key.as_str())
        .collect();
    assert_eq!(tomb.len(), deleted_keys.len(), "one tombstone per record");
    assert!(tomb.iter().all(|r| r.value.is_none()));
    assert_eq!(
        tomb[0].key,
        format!("{INSTANCE}/{}", written[0].0),
        "manifest first"
    );

    // A new machine: a new store on the same topic sees the same.
    drop(store);
    let again = open(&addr);
    assert_eq!(
        names(&again),
        listed[1..]
            .iter()
            .map(|e| e.name.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        again.get_latest().unwrap().unwrap(),
        br#"{"file":"checkpoint_20241201_140000_004-000004.json"}"#
    );
    for (name, e) in &written[1..] {
        assert_eq!(&again.get(name).unwrap(), &e.bytes, "{name}");
    }
    assert!(again.orphan_keys().is_empty());
}

/// The coordinator checkpoints a real pipeline into Kafka (in the foreground and as a
/// background upload), applies retention, and a coordinator on another store (another
/// machine) recovers the same state.
#[test]
fn coordinator_checkpoints_and_recovers_through_kafka() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let addr = server.addr();
    let config = CoordinatorConfig {
        every_events: None,
        keep: 2,
        ..Default::default()
    };
    let mut c = Coordinator::new(open(&addr), config.clone());
    let events = orders(7, 6_000, 500, 3_000);
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    for (i, chunk) in events.chunks(1_000).enumerate() {
        for e in chunk {
            p.process(e.clone(), &mut out);
        }
        let pos = BTreeMap::from([("source.offset".to_string(), (i as u64 + 1) * 1_000)]);
        if i % 2 == 0 {
            c.checkpoint(&p, pos, T0 + i as i64 * 1_000).unwrap();
        } else {
            c.begin_upload(&p, pos, T0 + i as i64 * 1_000).unwrap();
            c.finish_upload().unwrap().unwrap();
        }
    }
    assert_eq!(c.store().list().unwrap().len(), 2, "retention keeps 2");
    let latest = c.latest().unwrap().unwrap();
    assert_eq!(latest.checkpoint_id, 6);

    let mut other = Coordinator::new(open(&addr), config);
    let r = other.recover::<OrderStats>().unwrap().unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.header.checkpoint_id, 6);
    assert_eq!(r.header.positions["source.offset"], 6_000);
    assert_eq!(state(&r.pipeline), state(&p));
    assert_eq!(other.next_id(), 7);
}

/// A crash after the stage records but before the manifest: the checkpoint does not
/// exist (not listed, not after a reopen either), the previous one restores, and the next
/// writer tombstones the orphan records.
#[test]
fn crash_before_manifest_leaves_previous_checkpoint() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let addr = server.addr();
    let mut store = open(&addr);
    let p7 = fed(3, 3_000, 300);
    let (n7, e7) = encoded(&p7, 7, Codec::Json);
    store.put_staged(&n7, &e7.bytes, &e7.stages).unwrap();
    store
        .put_latest(format!(r#"{{"file":"{n7}"}}"#).as_bytes())
        .unwrap();

    let p8 = fed(4, 4_000, 300);
    let (n8, e8) = encoded(&p8, 8, Codec::Json);
    store.fail_before_manifest();
    assert!(store.put_staged(&n8, &e8.bytes, &e8.stages).is_err());
    assert_eq!(names(&store), vec![n7.clone()]);
    assert_eq!(store.get(&n8).unwrap_err().kind, StoreErrorKind::NotFound);

    // The stage records of 8 are on the topic, its manifest is not.
    let raw = Raw::new(&addr, TOPIC);
    let keys8: Vec<String> = raw
        .records()
        .into_iter()
        .filter(|r| r.key.starts_with(&format!("{INSTANCE}/{n8}")))
        .map(|r| r.key)
        .collect();
    assert!(
        keys8.iter().any(|k| k.ends_with("/customer_stats/0")),
        "{keys8:?}"
    );
    assert!(!keys8.contains(&format!("{INSTANCE}/{n8}")));

    // "Restart": a new store and a coordinator restore checkpoint 7.
    drop(store);
    let mut c = Coordinator::new(open(&addr), CoordinatorConfig::default());
    assert_eq!(names(c.store()), vec![n7.clone()]);
    let mut orphans = c.store().orphan_keys();
    orphans.sort();
    let mut expected = keys8.clone();
    expected.sort();
    assert_eq!(orphans, expected);
    let r = c.recover::<OrderStats>().unwrap().unwrap();
    assert_eq!(r.name, n7);
    assert_eq!(state(&r.pipeline), state(&p7));

    // The next write tombstones the orphans.
    let (n9, e9) = encoded(&p8, 9, Codec::Json);
    let store = c.store_mut();
    store.put_staged(&n9, &e9.bytes, &e9.stages).unwrap();
    assert!(store.orphan_keys().is_empty());
    let recs = raw.records();
    for k in &keys8 {
        let last = recs.iter().rev().find(|r| &r.key == k).unwrap();
        assert!(last.value.is_none(), "{k} tombstoned");
    }
    assert_eq!(names(store), vec![n7, n9]);
}

/// A record whose bytes do not match the manifest, a record with another key at the
/// manifest's offset, and a manifest that does not parse: each `get` fails with an error
/// naming the checkpoint and the record; the coordinator falls back to an older one.
#[test]
fn corrupt_records_are_refused_and_recovery_falls_back() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let addr = server.addr();
    let mut store = open(&addr);
    let p1 = fed(5, 2_000, 200);
    let p2 = fed(6, 3_000, 200);
    let (n1, e1) = encoded(&p1, 1, Codec::Json);
    let (n2, e2) = encoded(&p2, 2, Codec::Binary);
    store.put_staged(&n1, &e1.bytes, &e1.stages).unwrap();
    store.put_staged(&n2, &e2.bytes, &e2.stages).unwrap();
    let m2 = store.manifest(&n2).unwrap().clone();
    let meta = |name: &str, e: &envelope::Encoded| {
        format!(
            r#"{{"checkpoint_id":2,"file":"{name}","timestamp":0,"codec":"binary","size":{},"checksum":"{:08x}","positions":{{}}}}"#,
            e.bytes.len(),
            crc32fast::hash(&e.bytes)
        )
    };
    store.put_latest(meta(&n2, &e2).as_bytes()).unwrap();
    let writer = store.writer_id().to_string();
    drop(store);

    // Bit rot: checkpoint 2's `customer_stats` record now holds other bytes (a record with
    // the same key, and the manifest pointing at it with the original CRC).
    let raw = Raw::new(&addr, TOPIC);
    let seg = m2
        .segments
        .iter()
        .find(|s| s.label == "customer_stats")
        .unwrap()
        .clone();
    let mut garbage = e2.bytes[seg.start as usize..(seg.start + seg.len) as usize].to_vec();
    garbage[0] ^= 0x40;
    let off = raw.produce(&seg.key, Some(garbage), Some(&writer));
    let mut bad = m2.clone();
    bad.segments
        .iter_mut()
        .find(|s| s.key == seg.key)
        .unwrap()
        .offset = off;
    raw.produce(
        &format!("{INSTANCE}/{n2}"),
        Some(serde_json::to_vec(&bad).unwrap()),
        Some(&writer),
    );

    let store = open(&addr);
    let err = store.get(&n2).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind, StoreErrorKind::Other);
    for part in [
        n2.as_str(),
        seg.key.as_str(),
        &format!("offset {off}"),
        "corrupt",
        "crc32",
    ] {
        assert!(msg.contains(part), "{part:?} not in: {msg}");
    }
    assert_eq!(
        store.get(&n1).unwrap(),
        e1.bytes,
        "the older checkpoint is intact"
    );

    // The coordinator: latest points at 2, which fails; it falls back to 1.
    let mut c = Coordinator::new(store, CoordinatorConfig::default());
    let r = c.recover::<OrderStats>().unwrap().unwrap();
    assert_eq!(r.name, n1);
    assert_eq!(state(&r.pipeline), state(&p1));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains(&n2) && w.contains("corrupt")),
        "{:?}",
        r.warnings
    );
    drop(c);

    // A manifest whose offset holds another key's record (one of checkpoint 1's): a
    // restore can never take another checkpoint's bytes.
    let other = open(&addr).manifest(&n1).unwrap().segments[0].offset;
    let mut wrong = m2.clone();
    wrong.segments[0].offset = other;
    raw.produce(
        &format!("{INSTANCE}/{n2}"),
        Some(serde_json::to_vec(&wrong).unwrap()),
        Some(&writer),
    );
    let msg = open(&addr).get(&n2).unwrap_err().to_string();
    assert!(msg.contains(&format!("offset {other} has key")), "{msg}");
    assert!(msg.contains(&m2.segments[0].key), "{msg}");

    // A manifest that is not one: still listed (so the coordinator reports it), refused.
    raw.produce(
        &format!("{INSTANCE}/{n2}"),
        Some(b"{not json".to_vec()),
        Some(&writer),
    );
    let store = open(&addr);
    assert_eq!(names(&store), vec![n1.clone(), n2.clone()]);
    let msg = store.get(&n2).unwrap_err().to_string();
    assert!(
        msg.contains("manifest record") && msg.contains("corrupt") && msg.contains(&n2),
        "{msg}"
    );
}

/// A manifest in a layout a newer version wrote is left alone: not listed, reported, its
/// records never tombstoned by the next writer's sweep, and `delete` refuses it. A
/// manifest that lists another instance's record never gets that record deleted. A
/// manifest claiming a huge size is corrupt, not an allocation.
#[test]
fn odd_manifests_are_left_alone_or_refused_never_trusted() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let addr = server.addr();
    const OURS: &str = "checkpoint_20241201_140000_000-000001.json";
    const NEWER: &str = "checkpoint_20241201_140005_000-000005.json";
    const POINTS_AWAY: &str = "checkpoint_20241201_140006_000-000006.json";
    const HUGE: &str = "checkpoint_20241201_140007_000-000007.json";
    let mut first = open(&addr);
    first.put(OURS, b"ours").unwrap();
    drop(first);

    let raw = Raw::new(&addr, TOPIC);
    let newer_keys = [
        format!("{INSTANCE}/{NEWER}/_envelope/0"),
        format!("{INSTANCE}/{NEWER}/customer_stats/0"),
    ];
    for k in &newer_keys {
        raw.produce(k, Some(b"v2 bytes".to_vec()), Some("newer-build"));
    }
    raw.produce(
        &format!("{INSTANCE}/{NEWER}"),
        Some(br#"{"format":"simplestream-kafka-manifest","version":2,"chunks":[0,1]}"#.to_vec()),
        Some("newer-build"),
    );
    let theirs = format!("other-instance/{POINTS_AWAY}/_envelope/0");
    let at = raw.produce(&theirs, Some(b"theirs".to_vec()), Some("other"));
    let away = Manifest {
        format: "simplestream-kafka-manifest".into(),
        version: 1,
        checkpoint: POINTS_AWAY.into(),
        size: 6,
        crc32: format!("{:08x}", crc32fast::hash(b"theirs")),
        writer: "odd".into(),
        segments: vec![simplestream::store::Segment {
            key: theirs.clone(),
            label: "_envelope".into(),
            offset: at,
            start: 0,
            len: 6,
            crc32: format!("{:08x}", crc32fast::hash(b"theirs")),
        }],
    };
    raw.produce(
        &format!("{INSTANCE}/{POINTS_AWAY}"),
        Some(serde_json::to_vec(&away).unwrap()),
        Some("odd"),
    );

    let huge_key = format!("{INSTANCE}/{HUGE}/_envelope/0");
    let at = raw.produce(&huge_key, Some(b"tiny".to_vec()), Some("odd"));
    let mut huge = away.clone();
    huge.checkpoint = HUGE.into();
    huge.size = 1 << 62;
    huge.segments[0].key = huge_key;
    huge.segments[0].offset = at;
    huge.segments[0].len = 1 << 62;
    raw.produce(
        &format!("{INSTANCE}/{HUGE}"),
        Some(serde_json::to_vec(&huge).unwrap()),
        Some("odd"),
    );

    let mut s = open(&addr);
    assert_eq!(
        names(&s),
        vec![OURS.to_string(), POINTS_AWAY.to_string(), HUGE.to_string()]
    );
    let e = s.get(HUGE).unwrap_err().to_string();
    assert!(
        e.contains("corrupt") && e.contains("more than any record"),
        "{e}"
    );
    let notes = s.left_alone();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains(NEWER) && notes[0].contains("version 2"),
        "{notes:?}"
    );
    assert!(s.orphan_keys().is_empty(), "{:?}", s.orphan_keys());
    let e = s.get(NEWER).unwrap_err();
    assert!(e.to_string().contains("version 2"), "{e}");
    assert!(s
        .get(POINTS_AWAY)
        .unwrap_err()
        .to_string()
        .contains("other-instance"));
    // A write (which sweeps orphans first), deleting both odd checkpoints, more writes.
    s.put("checkpoint_20241201_140010_000-000010.json", b"new")
        .unwrap();
    assert_eq!(s.delete(NEWER).unwrap_err().kind, StoreErrorKind::Invalid);
    s.delete(POINTS_AWAY).unwrap();
    s.put_latest(b"{}").unwrap();

    let records = raw.records();
    let tombstoned = |key: &str| records.iter().any(|r| r.key == key && r.value.is_none());
    for k in newer_keys
        .iter()
        .chain([&format!("{INSTANCE}/{NEWER}"), &theirs])
    {
        assert!(!tombstoned(k), "{k} was tombstoned");
    }
    assert!(tombstoned(&format!("{INSTANCE}/{POINTS_AWAY}")));
    let reopened = open(&addr);
    assert_eq!(reopened.left_alone().len(), 1);
    assert_eq!(reopened.get(OURS).unwrap(), b"ours");
}

/// Two processes writing one instance: the one that finds the other's records refuses
/// to write (Conflict), and keeps refusing; another instance on the same topic is fine.
#[test]
fn second_writer_is_a_conflict() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let addr = server.addr();
    let mut first = open(&addr);
    first
        .put("checkpoint_20241201_140000_000-000001.json", b"one")
        .unwrap();

    // Another instance writing in between is no conflict.
    let mut neighbour = KafkaStore::open(&addr, TOPIC, "app-instance-2").unwrap();
    neighbour
        .put("checkpoint_20241201_140000_000-000001.json", b"neighbour")
        .unwrap();
    first
        .put("checkpoint_20241201_140000_000-000002.json", b"two")
        .unwrap();
    assert_eq!(names(&neighbour).len(), 1);
    assert_eq!(
        neighbour
            .get("checkpoint_20241201_140000_000-000001.json")
            .unwrap(),
        b"neighbour"
    );

    // A second writer on the same instance (e.g. a restarted copy while the first lives).
    let mut second = open(&addr);
    assert_eq!(names(&second).len(), 2);
    let second_start = second.known_end();
    second
        .put("checkpoint_20241201_140000_000-000003.json", b"three")
        .unwrap();

    let err = first
        .put("checkpoint_20241201_140000_000-000004.json", b"four")
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Conflict);
    let msg = err.to_string();
    let expected = format!(
        "instance {INSTANCE} is being written by another process (writer {}) since offset {second_start}",
        second.writer_id()
    );
    assert!(msg.contains(&expected), "{msg}\nexpected: {expected}");
    assert!(
        msg.contains("stopping so the two do not interleave"),
        "{msg}"
    );
    // And every later write of `first` too; nothing of it landed.
    assert_eq!(
        first.put_latest(b"{}").unwrap_err().kind,
        StoreErrorKind::Conflict
    );
    assert_eq!(
        first
            .delete("checkpoint_20241201_140000_000-000001.json")
            .unwrap_err()
            .kind,
        StoreErrorKind::Conflict
    );
    let third = open(&addr);
    assert_eq!(
        names(&third),
        vec![
            "checkpoint_20241201_140000_000-000001.json",
            "checkpoint_20241201_140000_000-000002.json",
            "checkpoint_20241201_140000_000-000003.json"
        ]
    );
    assert_eq!(third.get_latest().unwrap(), None);
}

/// Bad configuration and an unreachable broker: one clear line, quickly.
#[test]
fn unreachable_broker_and_bad_names_fail_clearly_and_quickly() {
    let port = servers::free_port();
    let started = Instant::now();
    let err = KafkaStore::open(&format!("127.0.0.1:{port}"), TOPIC, INSTANCE).unwrap_err();
    assert!(started.elapsed() < HANG_GUARD, "{:?}", started.elapsed());
    assert_eq!(err.kind, StoreErrorKind::Unavailable);
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.contains(&format!(
            "127.0.0.1:{port}: connection refused, nothing is listening there"
        )),
        "{msg}"
    );

    for (brokers, topic, instance, what) in [
        ("127.0.0.1:9092", "bad topic", INSTANCE, "topic name"),
        ("127.0.0.1:9092", "", INSTANCE, "topic name"),
        ("127.0.0.1:9092", TOPIC, "a/b", "instance name"),
        ("localhost", TOPIC, INSTANCE, "host:port"),
    ] {
        let err = KafkaStore::open(brokers, topic, instance).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid, "{err}");
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
}

/// tansu with its storage in S3 (moto) survives a restart. While it is down a put fails
/// (Unavailable, bounded) and leaves the previous checkpoint; after the restart the same
/// store writes again, and a new machine sees everything written before and after.
#[test]
fn broker_stopped_and_restarted() {
    let Some(moto) = servers::moto() else {
        return;
    };
    let Some(bin) = servers::server_bin("tansu") else {
        return;
    };
    servers::create_bucket(&moto, "tansu");
    let port = servers::free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let command: Vec<std::ffi::OsString> = vec![
        bin.into(),
        "broker".into(),
        "--listener-url".into(),
        url.clone().into(),
        "--advertised-listener-url".into(),
        url.into(),
        "--storage-engine".into(),
        "s3://tansu/".into(),
    ];
    let envs = servers::s3_env(&moto);
    let mut child = std::process::Command::new(&command[0]);
    child
        .args(&command[1..])
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = child.spawn().expect("start tansu");
    servers::wait_for_port(port, &mut child, "tansu");
    let mut server = servers::Server {
        child,
        port,
        what: "tansu",
        command,
        envs,
    };
    let addr = server.addr();
    let options = KafkaStoreOptions {
        timeout: Duration::from_secs(1),
        retries: 1,
        ..Default::default()
    };
    let mut store = KafkaStore::open_with(&addr, TOPIC, INSTANCE, options.clone()).unwrap();
    let p1 = fed(8, 2_000, 100);
    let (n1, e1) = encoded(&p1, 1, Codec::Json);
    store.put_staged(&n1, &e1.bytes, &e1.stages).unwrap();
    store.put_latest(n1.as_bytes()).unwrap();

    server.stop();
    let (n2, e2) = encoded(&fed(9, 2_500, 100), 2, Codec::Json);
    let started = Instant::now();
    let err = store.put_staged(&n2, &e2.bytes, &e2.stages).unwrap_err();
    assert!(started.elapsed() < HANG_GUARD, "{:?}", started.elapsed());
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
    assert_eq!(names(&store), vec![n1.clone()]);

    server.restart();
    // The same store goes on after the restart (the client reconnects).
    let (n3, e3) = encoded(&fed(10, 3_000, 100), 3, Codec::Json);
    store.put_staged(&n3, &e3.bytes, &e3.stages).unwrap();
    store.put_latest(n3.as_bytes()).unwrap();
    assert_eq!(store.get(&n1).unwrap(), e1.bytes);

    // A new machine after another restart: the broker kept everything.
    drop(store);
    server.restart();
    let again = KafkaStore::open_with(&addr, TOPIC, INSTANCE, options).unwrap();
    assert_eq!(names(&again), vec![n1.clone(), n3.clone()]);
    assert_eq!(again.get(&n1).unwrap(), e1.bytes);
    assert_eq!(again.get(&n3).unwrap(), e3.bytes);
    assert_eq!(again.get_latest().unwrap().unwrap(), n3.as_bytes());
}

/// Put and get times, bytes and records for 10k- and 1M-key checkpoints (OrderStats with
/// one customer per order). `cargo test --release --test remote_kafka -- --ignored --nocapture measure`
#[test]
#[ignore]
fn measure() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let mut store = open(&server.addr());
    for (keys, codec) in [
        (10_000u64, Codec::Json),
        (10_000, Codec::Binary),
        (1_000_000, Codec::Json),
        (1_000_000, Codec::Binary),
    ] {
        // One order per customer: `keys` distinct customer_stats keys.
        let mut p = OrderStats::new();
        let mut out = Vec::new();
        for (i, mut o) in orders(11, keys as usize, 1, 0).into_iter().enumerate() {
            o.customer = format!("C{i:07}");
            o.amount = o.amount.abs() + 1.0;
            p.process(o, &mut out);
        }
        let (name, e) = encoded(&p, keys + codec as u64, codec);
        let before = store.stats();
        let t = Instant::now();
        store.put_staged(&name, &e.bytes, &e.stages).unwrap();
        let put = t.elapsed();
        let after = store.stats();
        let t = Instant::now();
        let back = store.get(&name).unwrap();
        let get = t.elapsed();
        assert_eq!(back, e.bytes);
        let open_t = Instant::now();
        let reopened = open(&server.addr());
        let reopen = open_t.elapsed();
        assert!(reopened.list().unwrap().iter().any(|x| x.name == name));
        println!(
            "{keys:>8} keys {codec:<6}: {:>11} bytes, {:>3} records ({} produce requests), put {:>7.1} ms, get {:>7.1} ms, reopen (scan of the topic) {:>7.1} ms",
            e.bytes.len(),
            after.records_written - before.records_written,
            after.produce_requests - before.produce_requests,
            put.as_secs_f64() * 1e3,
            get.as_secs_f64() * 1e3,
            reopen.as_secs_f64() * 1e3,
        );
    }
}
