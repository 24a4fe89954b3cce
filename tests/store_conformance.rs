//! One set of store tests run against every store: file, memory, S3 (moto), Azure
//! (Azurite) and Kafka (tansu). Each backend gets one `#[test]` that runs the whole suite
//! with instances of its own; what a store cannot do (a memory store has no second
//! process, no read-only mode) is skipped by its harness, never asserted loosely.
//!
//! Also here: decoders of what is read from a store (envelope, `latest.json`) fed random
//! and mutated bytes, and the checkpoint tools given URLs with credentials or stores that
//! do not exist (they print no secret and create nothing).

mod common;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use simplestream::envelope;
use simplestream::store::{
    FileStore, FileStoreOptions, KafkaStore, KafkaStoreOptions, MemoryStore, ObjectStoreBackend,
    StoreError, StoreErrorKind, StoreUrl,
};
use simplestream::{CheckpointStore, Codec, Coordinator, CoordinatorConfig, Pipeline};
use support::servers::{self, Server};

type Store = Box<dyn CheckpointStore + Send>;

const A: &str = "checkpoint_20241201_140000_123-000001.json";
const B: &str = "checkpoint_20241201_140001_123-000002.json";
const BAD_NAMES: [&str; 10] = [
    "",
    "../x.json",
    "a/b.json",
    "a\\b.json",
    "..",
    ".hidden.json",
    "latest",
    "latest.json",
    "x.json.tmp",
    "a\nb",
];

/// How the suite reaches one kind of store.
trait Harness {
    /// A writer on `instance`.
    fn open(&self, instance: &str) -> Result<Store, StoreError>;
    /// A read-only store on `instance`; `None` if the store has no read-only mode.
    fn open_read_only(&self, instance: &str) -> Option<Result<Store, StoreError>>;
    /// True if nothing at all exists for `instance` (no directory, topic or object).
    fn nothing_exists(&self, instance: &str) -> bool;
    /// True if a second writer can be opened on one instance (another process).
    fn has_second_writer(&self) -> bool {
        true
    }
    /// True if a checkpoint name can be written only once (other bytes are refused).
    fn create_only(&self) -> bool {
        false
    }
}

fn must(r: Result<Store, StoreError>) -> Store {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Runs every check; `tag` keeps the instances of one backend apart.
fn conformance(h: &dyn Harness, tag: &str) {
    round_trip(h, &format!("{tag}-rt"));
    names_are_checked(h, &format!("{tag}-names"));
    rewriting_a_name(h, &format!("{tag}-rewrite"));
    streamed(h, &format!("{tag}-stream"));
    retention_and_recovery(h, &format!("{tag}-keep"));
    savepoints(h, &format!("{tag}-save"));
    corrupt_truncated_and_huge(h, &format!("{tag}-bad"));
    if h.has_second_writer() {
        second_writer(h, &format!("{tag}-two"));
    }
    read_only(h, &format!("{tag}-ro"));
}

/// put/get/list/delete/latest, and what a new store on the same instance sees.
fn round_trip(h: &dyn Harness, inst: &str) {
    let mut s = must(h.open(inst));
    assert!(s.list().unwrap().is_empty());
    assert_eq!(s.get_latest().unwrap(), None);
    assert_eq!(s.get(A).unwrap_err().kind, StoreErrorKind::NotFound);
    s.put(B, b"second").unwrap();
    s.put(A, b"first").unwrap();
    s.put_latest(b"{\"file\":\"b\"}").unwrap();
    let listed: Vec<(String, u64)> = s
        .list()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.size))
        .collect();
    assert_eq!(listed, vec![(A.to_string(), 5), (B.to_string(), 6)]);
    assert_eq!(s.get(A).unwrap(), b"first");
    assert_eq!(
        s.get_latest().unwrap().as_deref(),
        Some(&b"{\"file\":\"b\"}"[..])
    );
    s.delete(A).unwrap();
    s.delete(A).unwrap();
    assert_eq!(s.get(A).unwrap_err().kind, StoreErrorKind::NotFound);
    assert!(!s.location().is_empty());
    if h.has_second_writer() {
        drop(s);
        let again = must(h.open(inst));
        let names: Vec<String> = again.list().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, vec![B.to_string()]);
        assert_eq!(again.get(B).unwrap(), b"second");
    }
}

/// Every store refuses the same names, on every call, and stores nothing for them.
fn names_are_checked(h: &dyn Harness, inst: &str) {
    let mut s = must(h.open(inst));
    for bad in BAD_NAMES {
        for (call, e) in [
            ("put", s.put(bad, b"x").unwrap_err()),
            ("get", s.get(bad).unwrap_err()),
            ("delete", s.delete(bad).unwrap_err()),
        ] {
            assert_eq!(e.kind, StoreErrorKind::Invalid, "{call} {bad:?}: {e}");
            assert!(e.to_string().contains("not a valid checkpoint name"), "{e}");
        }
    }
    assert!(s.list().unwrap().is_empty());
    assert_eq!(s.get_latest().unwrap(), None);
}

/// The same name written again: the same bytes are accepted (a retried request); other
/// bytes are refused by create-only stores, and never give a mix of the two.
fn rewriting_a_name(h: &dyn Harness, inst: &str) {
    let mut s = must(h.open(inst));
    s.put(A, b"one").unwrap();
    s.put(A, b"one").unwrap();
    let second = s.put(A, b"two, longer");
    if h.create_only() {
        let e = second
            .as_ref()
            .expect_err("a create-only store overwrote a checkpoint");
        assert_eq!(e.kind, StoreErrorKind::Conflict, "{e}");
        assert!(e.to_string().contains("another process"), "{e}");
    }
    let got = s.get(A).unwrap();
    let expected: &[u8] = if second.is_ok() {
        b"two, longer"
    } else {
        b"one"
    };
    assert_eq!(got, expected);
}

/// A checkpoint written in pieces: nothing is visible before the commit or after a
/// dropped stream; checkpoints encoded into the store are the bytes `encode` gives.
fn streamed(h: &dyn Harness, inst: &str) {
    let mut s = must(h.open(inst));
    let mut w = s.put_stream(A).unwrap();
    w.write(b"??llo, ").unwrap();
    w.write(b"world").unwrap();
    w.patch(0, b"he").unwrap();
    assert_eq!(
        w.patch(10, b"xyz").unwrap_err().kind,
        StoreErrorKind::Invalid
    );
    w.commit(&[]).unwrap();
    let mut dropped = s.put_stream(B).unwrap();
    dropped.write(b"never stored").unwrap();
    drop(dropped);
    assert_eq!(s.get(A).unwrap(), b"hello, world");
    let names: Vec<String> = s.list().unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, vec![A.to_string()]);
    assert_eq!(
        s.put_stream("a/b.json").err().unwrap().kind,
        StoreErrorKind::Invalid
    );
    let before = orders_fed(300);
    let since = before.stage_versions().expect("OrderStats has deltas");
    let p = orders_fed(600);
    for (codec, name) in [(Codec::Json, B), (Codec::Binary, "checkpoint_x-000003.bin")] {
        let pos = BTreeMap::from([("events".to_string(), 600)]);
        let got = envelope::store_whole(&mut *s, name, &p, codec, 3, 7, pos.clone()).unwrap();
        let expected = envelope::encode(&p, codec, 3, 7, pos.clone()).unwrap();
        assert_eq!(s.get(name).unwrap(), expected, "{codec}");
        assert_eq!(got.size, expected.len() as u64);
        assert_eq!(got.crc32, crc32fast::hash(&expected));
        // One name per codec: remote stores refuse to overwrite a checkpoint.
        let delta = &format!("delta_x-000004.{}", codec.extension());
        envelope::store_delta(&mut *s, delta, &p, &since, codec, 4, 8, pos.clone()).unwrap();
        let expected = envelope::encode_delta(&p, &since, codec, 4, 8, pos).unwrap();
        assert_eq!(s.get(delta).unwrap(), expected.bytes, "{codec}");
    }
}

fn orders_fed(n: usize) -> OrderStats {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    for e in orders(7, n, 20, 2_000) {
        p.process(e, &mut out);
    }
    p
}

fn state<P: Pipeline>(p: &P) -> String {
    let mut v = Vec::new();
    p.encode_stages(Codec::Json, &mut v).unwrap();
    String::from_utf8(v).unwrap()
}

fn coordinator(store: Store, keep: usize, codec: Codec) -> Coordinator<Store> {
    Coordinator::new(
        store,
        CoordinatorConfig {
            every_events: Some(1),
            every_ms: None,
            codec,
            keep,
        },
    )
}

/// Five checkpoints through the coordinator keep the newest two; a new process on the
/// instance restores the newest.
fn retention_and_recovery(h: &dyn Harness, inst: &str) {
    let mut c = coordinator(must(h.open(inst)), 2, Codec::Binary);
    let mut last = String::new();
    for i in 1..=5u64 {
        let p = orders_fed(50 * i as usize);
        let pos = BTreeMap::from([("events".to_string(), 50 * i)]);
        c.checkpoint(&p, pos, 1_733_061_600_000 + i as i64).unwrap();
        last = state(&p);
    }
    let names: Vec<String> = c
        .store()
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].ends_with("-000004.bin") && names[1].ends_with("-000005.bin"),
        "{names:?}"
    );
    let store = if h.has_second_writer() {
        drop(c);
        must(h.open(inst))
    } else {
        c.into_store()
    };
    let r = coordinator(store, 2, Codec::Binary)
        .recover::<OrderStats>()
        .unwrap()
        .expect("a checkpoint");
    assert_eq!(r.header.checkpoint_id, 5);
    assert_eq!(state(&r.pipeline), last);
}

/// A savepoint among incremental checkpoints kept to one: retention never deletes it, a
/// new process on the instance restores it by name (and the latest checkpoint as
/// before), and its name is never taken twice.
fn savepoints(h: &dyn Harness, inst: &str) {
    let mut c = coordinator(must(h.open(inst)), 1, Codec::Binary);
    c.set_incremental(Some(simplestream::incremental::IncrementalConfig {
        max_deltas: 2,
        ..Default::default()
    }));
    let events = orders(7, 240, 20, 2_000);
    let mut p = OrderStats::new();
    let mut saved = String::new();
    for (i, chunk) in events.chunks(40).enumerate() {
        for e in chunk {
            p.process(e.clone(), &mut Vec::new());
        }
        let pos = BTreeMap::from([("events".to_string(), 40 * (i as u64 + 1))]);
        c.checkpoint(&p, pos.clone(), 1_733_061_600_000 + i as i64)
            .unwrap();
        if i == 1 {
            c.savepoint(&p, "before-v2", pos, 1_733_061_600_100)
                .unwrap();
            saved = state(&p);
        }
    }
    let again = c.savepoint(&p, "before-v2", BTreeMap::new(), 1_733_061_600_200);
    assert!(again.is_err(), "a savepoint was overwritten");
    let store = if h.has_second_writer() {
        drop(c);
        must(h.open(inst))
    } else {
        c.into_store()
    };
    let names: Vec<String> = store.list().unwrap().into_iter().map(|e| e.name).collect();
    assert!(
        names.contains(&"checkpoint_savepoint-before-v2.bin".to_string()),
        "{names:?}"
    );
    let mut c = coordinator(store, 1, Codec::Binary);
    let r = c.recover_savepoint::<OrderStats>("before-v2").unwrap();
    assert_eq!(
        (state(&r.pipeline), r.header.positions["events"]),
        (saved, 80)
    );
    let r = c
        .recover::<OrderStats>()
        .unwrap()
        .expect("the latest checkpoint");
    assert_eq!(state(&r.pipeline), state(&p));
}

/// The newest checkpoint replaced by a corrupt, a truncated or a huge-length one: the
/// restore falls back to the previous one with a warning, never panics.
fn corrupt_truncated_and_huge(h: &dyn Harness, inst: &str) {
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 4] = [
        ("flipped", |b| {
            let mid = b.len() / 2;
            b[mid] ^= 0x20;
        }),
        ("truncated", |b| b.truncate(b.len() * 2 / 3)),
        ("empty", |b| b.clear()),
        // The binary header's payload length (bytes 6..14) claims 2^62 bytes.
        ("huge length", |b| {
            b[6..14].copy_from_slice(&(1u64 << 62).to_le_bytes())
        }),
    ];
    for (n, (what, damage)) in damages.iter().enumerate() {
        let inst = format!("{inst}{n}");
        let mut c = coordinator(must(h.open(&inst)), 5, Codec::Binary);
        let good = orders_fed(100);
        c.checkpoint(&good, BTreeMap::new(), 1_733_061_600_001)
            .unwrap();
        let info = c
            .checkpoint(&orders_fed(200), BTreeMap::new(), 1_733_061_600_002)
            .unwrap();
        let mut bytes = c.store().get(&info.name).unwrap();
        damage(&mut bytes);
        // Rewritten through the store itself: the store keeps what it is given, the
        // restore must notice.
        c.store_mut().delete(&info.name).unwrap();
        c.store_mut().put(&info.name, &bytes).unwrap();
        let r = c
            .recover::<OrderStats>()
            .unwrap()
            .unwrap_or_else(|| panic!("{what}: nothing restored"));
        assert_eq!(r.header.checkpoint_id, 1, "{what}");
        assert_eq!(state(&r.pipeline), state(&good), "{what}");
        assert!(!r.warnings.is_empty(), "{what}: no warning");
    }
}

/// Two writers on one instance: the second cannot open, or the first one's next write
/// fails with a conflict; either way the first writer's checkpoint stays readable.
fn second_writer(h: &dyn Harness, inst: &str) {
    let mut first = must(h.open(inst));
    first.put(A, b"first").unwrap();
    first.put_latest(b"a").unwrap();
    match h.open(inst) {
        Err(e) => assert_eq!(e.kind, StoreErrorKind::Locked, "{e}"),
        Ok(mut second) => {
            second.put(B, b"second").unwrap();
            second.put_latest(b"b").unwrap();
            let e = first.put_latest(b"a2").unwrap_err();
            assert_eq!(e.kind, StoreErrorKind::Conflict, "{e}");
            assert_eq!(second.get(A).unwrap(), b"first");
        }
    }
    assert_eq!(first.get(A).unwrap(), b"first");
}

/// Read-only: a missing instance is an error that creates nothing; an existing one is
/// read, and every write is refused and changes nothing.
fn read_only(h: &dyn Harness, inst: &str) {
    let missing = format!("{inst}-missing");
    let Some(r) = h.open_read_only(&missing) else {
        return;
    };
    if let Ok(s) = r {
        assert!(s.list().unwrap().is_empty());
    }
    assert!(
        h.nothing_exists(&missing),
        "read-only open created something"
    );

    let mut w = must(h.open(inst));
    w.put(A, b"kept").unwrap();
    w.put_latest(b"latest").unwrap();
    drop(w);
    let mut s = must(h.open_read_only(inst).unwrap());
    assert_eq!(s.get(A).unwrap(), b"kept");
    assert_eq!(s.get_latest().unwrap().as_deref(), Some(&b"latest"[..]));
    for e in [
        s.put(B, b"x").unwrap_err(),
        s.delete(A).unwrap_err(),
        s.put_latest(b"x").unwrap_err(),
    ] {
        assert_eq!(e.kind, StoreErrorKind::Denied, "{e}");
    }
    let again = must(h.open(inst));
    let names: Vec<String> = again.list().unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, vec![A.to_string()]);
    assert_eq!(again.get_latest().unwrap().as_deref(), Some(&b"latest"[..]));
}

// ---------------------------------------------------------------------------------------
// The stores
// ---------------------------------------------------------------------------------------

struct Files(tempfile::TempDir);

impl Harness for Files {
    fn open(&self, instance: &str) -> Result<Store, StoreError> {
        Ok(Box::new(FileStore::open(
            self.0.path(),
            instance,
            FileStoreOptions::default(),
        )?))
    }
    fn open_read_only(&self, instance: &str) -> Option<Result<Store, StoreError>> {
        Some(StoreUrl::File(self.0.path().into()).open(instance, true))
    }
    fn nothing_exists(&self, instance: &str) -> bool {
        !self.0.path().join("checkpoints").join(instance).exists()
    }
}

#[test]
fn file_store_conforms() {
    conformance(&Files(tempfile::tempdir().unwrap()), "file");
}

/// One in-process store: no instances, no second process, no read-only mode.
struct Memory(std::sync::Mutex<BTreeMap<String, MemoryStore>>);

/// A memory store handed out and given back on drop, so "reopening" sees the same data.
struct Lent(String, Option<MemoryStore>, &'static Memory);

impl Harness for &'static Memory {
    fn open(&self, instance: &str) -> Result<Store, StoreError> {
        let s = self.0.lock().unwrap().remove(instance).unwrap_or_default();
        Ok(Box::new(Lent(instance.to_string(), Some(s), self)))
    }
    fn open_read_only(&self, _: &str) -> Option<Result<Store, StoreError>> {
        None
    }
    fn nothing_exists(&self, instance: &str) -> bool {
        !self.0.lock().unwrap().contains_key(instance)
    }
    fn has_second_writer(&self) -> bool {
        false
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(s) = self.1.take() {
            self.2 .0.lock().unwrap().insert(self.0.clone(), s);
        }
    }
}

impl CheckpointStore for Lent {
    fn location(&self) -> String {
        self.1.as_ref().unwrap().location()
    }
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.1.as_mut().unwrap().put(name, bytes)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.1.as_ref().unwrap().get(name)
    }
    fn list(&self) -> Result<Vec<simplestream::store::StoredEntry>, StoreError> {
        self.1.as_ref().unwrap().list()
    }
    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        self.1.as_mut().unwrap().delete(name)
    }
    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.1.as_mut().unwrap().put_latest(bytes)
    }
    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.1.as_ref().unwrap().get_latest()
    }
}

#[test]
fn memory_store_conforms() {
    let h: &'static Memory = Box::leak(Box::new(Memory(Default::default())));
    conformance(&h, "mem");
}

const BUCKET: &str = "conformance";

/// An object store on a local server: S3 on moto, Azure Blob Storage on Azurite.
struct Object {
    /// Held so the server lives as long as the harness (dropping it stops the server).
    _server: Server,
    url: String,
    options: Vec<(String, String)>,
}

impl Object {
    fn backend(&self, instance: &str) -> Result<ObjectStoreBackend, StoreError> {
        let o: Vec<(&str, &str)> = self
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        ObjectStoreBackend::open_with(&self.url, instance, &o)
    }
}

impl Harness for Object {
    fn open(&self, instance: &str) -> Result<Store, StoreError> {
        Ok(Box::new(self.backend(instance)?))
    }
    fn open_read_only(&self, instance: &str) -> Option<Result<Store, StoreError>> {
        Some(
            self.backend(instance)
                .map(|s| Box::new(s.into_read_only()) as Store),
        )
    }
    fn nothing_exists(&self, instance: &str) -> bool {
        let s = self.backend(instance).unwrap();
        s.list().unwrap().is_empty() && s.get_latest().unwrap().is_none()
    }
    fn create_only(&self) -> bool {
        true
    }
}

#[test]
fn s3_store_conforms() {
    let Some(server) = servers::moto() else {
        return;
    };
    servers::create_bucket(&server, BUCKET);
    let options = vec![
        ("aws_endpoint".into(), format!("http://{}", server.addr())),
        ("allow_http".into(), "true".into()),
        ("aws_access_key_id".into(), "test".into()),
        ("aws_secret_access_key".into(), "test".into()),
        ("aws_region".into(), "us-east-1".into()),
    ];
    let url = format!("s3://{BUCKET}/app");
    conformance(
        &Object {
            _server: server,
            url,
            options,
        },
        "s3",
    );
}

#[test]
fn azure_store_conforms() {
    let Some(server) = servers::azurite() else {
        return;
    };
    servers::create_azure_container(&server, BUCKET);
    let options = servers::azure_options(&server);
    let url = format!("az://{BUCKET}/app");
    conformance(
        &Object {
            _server: server,
            url,
            options,
        },
        "az",
    );
}

struct Kafka(Server);

impl Kafka {
    /// One topic per instance, so "nothing exists" can be checked as "no topic".
    fn options(read_only: bool) -> KafkaStoreOptions {
        KafkaStoreOptions {
            read_only,
            ..KafkaStoreOptions::default()
        }
    }
}

impl Harness for Kafka {
    fn open(&self, instance: &str) -> Result<Store, StoreError> {
        let s = KafkaStore::open_with(&self.0.addr(), instance, instance, Self::options(false))?;
        Ok(Box::new(s))
    }
    fn open_read_only(&self, instance: &str) -> Option<Result<Store, StoreError>> {
        Some(
            KafkaStore::open_with(&self.0.addr(), instance, instance, Self::options(true))
                .map(|s| Box::new(s) as Store),
        )
    }
    fn nothing_exists(&self, instance: &str) -> bool {
        !kafka_topics(&self.0.addr()).iter().any(|t| t == instance)
    }
}

/// The topics on the broker at `addr`, asked with a client of its own.
fn kafka_topics(addr: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = rskafka::client::ClientBuilder::new(vec![addr.to_string()])
            .build()
            .await
            .unwrap();
        client
            .list_topics()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect()
    })
}

#[test]
fn kafka_store_conforms() {
    let Some(server) = servers::tansu() else {
        return;
    };
    conformance(&Kafka(server), "kafka");
}

// ---------------------------------------------------------------------------------------
// Decoders of what a store gives back
// ---------------------------------------------------------------------------------------

/// A checkpoint and the `latest` record that points at it, as the coordinator writes them.
fn sample_checkpoint(codec: Codec) -> (Vec<u8>, Vec<u8>) {
    let mut c = Coordinator::new(
        MemoryStore::new(),
        CoordinatorConfig {
            codec,
            ..CoordinatorConfig::default()
        },
    );
    let pos = BTreeMap::from([("events".to_string(), 60)]);
    let info = c
        .checkpoint(&orders_fed(60), pos, 1_733_061_600_000)
        .unwrap();
    let bytes = c.store().get(&info.name).unwrap();
    (bytes, c.store().get_latest().unwrap().unwrap())
}

/// Runs the envelope decoders and a whole restore on `bytes` as checkpoint `name` (and
/// `latest` as the latest record): an error or a state, never a panic.
fn decode_everything(name: &str, bytes: &[u8], latest: Option<&[u8]>) {
    let _ = envelope::verify(bytes);
    let _ = envelope::decode::<OrderStats>(bytes);
    let mut m = MemoryStore::new();
    m.put(name, bytes).unwrap();
    *m.latest_mut() = latest.map(<[u8]>::to_vec);
    let mut c = Coordinator::new(m, CoordinatorConfig::default());
    let _ = c.latest();
    let _ = c.inspect();
    let _ = c.recover::<OrderStats>();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic_a_decoder(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        latest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
    ) {
        decode_everything(A, &bytes, Some(&latest));
    }

    #[test]
    fn mutated_checkpoints_and_latest_records_never_panic_a_decoder(
        binary in proptest::prelude::any::<bool>(),
        edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6),
        cut in proptest::option::of(proptest::prelude::any::<usize>()),
        huge in proptest::option::of(proptest::prelude::any::<u64>()),
    ) {
        let codec = if binary { Codec::Binary } else { Codec::Json };
        let (mut bytes, mut latest) = sample_checkpoint(codec);
        let name: String = serde_json::from_slice::<serde_json::Value>(&latest).unwrap()["file"]
            .as_str()
            .unwrap()
            .to_string();
        for (at, b) in &edits {
            let at = at % bytes.len();
            bytes[at] = *b;
        }
        if let (true, Some(len)) = (binary, huge) {
            bytes[6..14].copy_from_slice(&len.to_le_bytes());
        }
        if let Some(at) = cut {
            bytes.truncate(at % (bytes.len() + 1));
        }
        // The same edits land in `latest` in every other case.
        if edits.len() % 2 == 0 {
            for (at, b) in &edits {
                let at = at % latest.len();
                latest[at] = *b;
            }
        }
        decode_everything(&name, &bytes, Some(&latest));
    }
}

// ---------------------------------------------------------------------------------------
// The tools and the runner: no secret printed, nothing created by read-only tools
// ---------------------------------------------------------------------------------------

fn run(mut c: Command) -> (bool, String) {
    let out = c.output().expect("start the program");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn tool(args: &[&str]) -> Command {
    let mut c = Command::new(support::tool_bin());
    c.args(args).env_remove("RUST_LOG");
    c
}

fn orders_with_store(dir: &Path, url: &str) -> Command {
    let input = dir.join("in.jsonl");
    std::fs::write(&input, support::order_lines(1, 50, 5, 0, 0)).unwrap();
    let mut c = support::orders(dir, &input, &["--checkpoint-store", url]);
    c.env("RUST_LOG", "debug");
    c
}

#[test]
fn urls_with_credentials_never_print_the_secret() {
    let Some(kafka) = servers::tansu() else {
        return;
    };
    let Some(moto) = servers::moto() else {
        return;
    };
    servers::create_bucket(&moto, "bkt");
    let tmp = tempfile::tempdir().unwrap();
    let secret = "s3cr3t-pw";
    let urls = [
        format!("kafka://user:{secret}@{}/ckpt", kafka.addr()),
        format!("kafka://{},user:{secret}@127.0.0.1:1/ckpt", kafka.addr()),
        format!("s3://AKID:{secret}@bkt/app?X-Amz-Signature={secret}"),
        format!("az://container/app?sig={secret}"),
        format!("ftp://user:{secret}@host/x"),
    ];
    for url in &urls {
        let mut runs = vec![
            ("list", tool(&["checkpoints", "list", url])),
            ("verify", tool(&["checkpoints", "verify", url])),
            ("show", tool(&["checkpoints", "show", url])),
            ("run", orders_with_store(tmp.path(), url)),
        ];
        for (what, c) in &mut runs {
            c.envs(servers::s3_env(&moto));
            let (_, text) = run(std::mem::replace(c, Command::new("true")));
            assert!(
                !text.contains(secret),
                "{what} {url} printed the secret:\n{text}"
            );
            assert!(!text.trim().is_empty(), "{what} {url} said nothing");
        }
    }
    // The URL as shown keeps what is not secret.
    let (ok, text) = run(tool(&["checkpoints", "list", &urls[0]]));
    assert!(
        !ok && text.contains("credentials") && text.contains("***@"),
        "{text}"
    );
}

#[test]
fn read_only_tools_create_no_directory_and_no_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let missing: PathBuf = tmp.path().join("typo");
    for sub in ["list", "verify", "show"] {
        let (ok, text) = run(tool(&["checkpoints", sub, missing.to_str().unwrap()]));
        assert!(!ok, "{sub}: {text}");
        assert!(text.contains("no checkpoints"), "{sub}: {text}");
        assert!(!missing.exists(), "{sub} created {}", missing.display());
    }
    let Some(kafka) = servers::tansu() else {
        return;
    };
    let url = format!("kafka://{}/typo", kafka.addr());
    for sub in ["list", "verify", "show"] {
        let (ok, text) = run(tool(&["checkpoints", sub, &url]));
        assert!(!ok, "{sub}: {text}");
        assert!(text.contains("no topic `typo`"), "{sub}: {text}");
    }
    let topics = kafka_topics(&kafka.addr());
    assert!(!topics.iter().any(|t| t == "typo"), "{topics:?}");
}

#[test]
fn checkpoints_list_reports_a_kafka_checkpoint_in_a_newer_layout() {
    let Some(kafka) = servers::tansu() else {
        return;
    };
    let addr = kafka.addr();
    let mut s = KafkaStore::open(&addr, "ckpt", "default").unwrap();
    s.put(A, b"{}").unwrap();
    drop(s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use rskafka::client::partition::{Compression, UnknownTopicHandling};
        let client = rskafka::client::ClientBuilder::new(vec![addr.clone()])
            .build()
            .await
            .unwrap();
        let pc = client
            .partition_client("ckpt", 0, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let record = rskafka::record::Record {
            key: Some(format!("default/{B}").into_bytes()),
            value: Some(br#"{"format":"simplestream-kafka-manifest","version":3}"#.to_vec()),
            headers: BTreeMap::new(),
            timestamp: rskafka::chrono::DateTime::from_timestamp_millis(0).unwrap(),
        };
        pc.produce(vec![record], Compression::NoCompression)
            .await
            .unwrap();
    });
    let (ok, text) = run(tool(&[
        "checkpoints",
        "list",
        &format!("kafka://{addr}/ckpt"),
    ]));
    assert!(ok, "{text}");
    let note = format!("note: checkpoint {B} (manifest default/{B} at offset");
    assert!(
        text.contains(&note) && text.contains("layout version 3"),
        "{text}"
    );
    assert_eq!(
        text.matches(B).count(),
        2,
        "listed as a checkpoint too:\n{text}"
    );
}
