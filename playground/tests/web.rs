//! `LocalStorageStore` in a real browser (headless Chromium through chromedriver):
//! round trip, the latest pointer, corrupt values, and a real `QuotaExceededError`.
//!
//! Run by `cargo xtask test` (or by hand: see `playground/README.md`):
//! `cargo test -p simplestream-playground --target wasm32-unknown-unknown --test web`
//! with `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner` and
//! `CHROMEDRIVER=/usr/bin/chromedriver`. Every test starts by clearing localStorage.
#![cfg(target_arch = "wasm32")]

use simplestream::coordinator::CoordinatorError;
use simplestream::store::{CheckpointStore, StoreErrorKind};
use simplestream::{Codec, Coordinator, CoordinatorConfig, Pipeline};
use simplestream_playground::gallery::{Order, Orders};
use simplestream_playground::lab::{garble, PlayStore};
use simplestream_playground::local_storage::{from_text, to_text};
use simplestream_playground::LocalStorageStore;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn storage() -> web_sys::Storage {
    web_sys::window().unwrap().local_storage().unwrap().unwrap()
}

fn fresh(instance: &str) -> LocalStorageStore {
    storage().clear().unwrap();
    LocalStorageStore::new(instance).unwrap()
}

fn raw(key: &str) -> Option<String> {
    storage().get_item(key).unwrap()
}

fn config(codec: Codec, keep: usize) -> CoordinatorConfig {
    CoordinatorConfig {
        every_events: None,
        every_ms: None,
        codec,
        keep,
    }
}

/// An orders pipeline after `n` events over `customers` customers whose ids are `pad`
/// characters long (to make big state cheaply).
fn pipeline(n: usize, customers: usize, pad: usize) -> Orders {
    let mut p = Orders::new();
    let mut out = Vec::new();
    for i in 0..n {
        p.process(
            Order {
                customer: format!("C{:06}{}", i % customers, "x".repeat(pad)),
                amount: (i % 100) as f64 + 0.25,
                ts: 1_635_739_200_000 + i as i64 * 1000,
            },
            &mut out,
        );
    }
    p
}

fn state(p: &Orders) -> String {
    p.stage_json("customer_stats").unwrap().to_string()
}

#[wasm_bindgen_test]
fn round_trip() {
    let mut s = fresh("rt");
    let json = br#"{"format":"simplestream-checkpoint","x":1}"#;
    let binary: Vec<u8> = (0..=255u8).chain(b"SSCK".iter().copied()).collect();
    s.put("checkpoint_20211101_040000_000-000001.json", json)
        .unwrap();
    s.put("checkpoint_20211101_040001_000-000002.bin", &binary)
        .unwrap();
    assert_eq!(
        s.get("checkpoint_20211101_040000_000-000001.json").unwrap(),
        json
    );
    assert_eq!(
        s.get("checkpoint_20211101_040001_000-000002.bin").unwrap(),
        binary
    );
    // Keys mirror the file layout; JSON is stored as itself, binary as base64 text.
    assert_eq!(
        raw("simplestream/checkpoints/rt/checkpoint_20211101_040000_000-000001.json").as_deref(),
        Some(std::str::from_utf8(json).unwrap())
    );
    let b = raw("simplestream/checkpoints/rt/checkpoint_20211101_040001_000-000002.bin").unwrap();
    assert!(b.starts_with("base64:"), "{b}");
    assert_eq!(from_text(&b).unwrap(), binary);
    assert_eq!(to_text(b"base64:x"), "base64:YmFzZTY0Ong=");
    let list = s.list().unwrap();
    let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "checkpoint_20211101_040000_000-000001.json",
            "checkpoint_20211101_040001_000-000002.bin"
        ]
    );
    assert_eq!(list[0].size, json.len() as u64);
    assert_eq!(list[1].size, binary.len() as u64);
    // Other instances and other keys are not listed.
    storage().set_item("unrelated", "x").unwrap();
    assert!(LocalStorageStore::new("other")
        .unwrap()
        .list()
        .unwrap()
        .is_empty());
    assert_eq!(s.list().unwrap().len(), 2);
    // Delete; deleting again is fine; a missing checkpoint is NotFound.
    s.delete("checkpoint_20211101_040000_000-000001.json")
        .unwrap();
    s.delete("checkpoint_20211101_040000_000-000001.json")
        .unwrap();
    assert_eq!(
        s.get("checkpoint_20211101_040000_000-000001.json")
            .unwrap_err()
            .kind,
        StoreErrorKind::NotFound
    );
    assert_eq!(
        s.put("latest.json", b"{}").unwrap_err().kind,
        StoreErrorKind::Invalid
    );
    assert!(LocalStorageStore::new("../x").is_err());
    // Side records live under their own prefix.
    s.put_extra("source.json", "{\"seed\":42}").unwrap();
    assert_eq!(
        raw("simplestream/playground/rt/source.json").as_deref(),
        Some("{\"seed\":42}")
    );
    assert_eq!(s.list().unwrap().len(), 1);

    // A real pipeline through the coordinator, in both codecs.
    for codec in [Codec::Json, Codec::Binary] {
        let mut c = Coordinator::new(fresh("rt2"), config(codec, 5));
        let p = pipeline(500, 40, 0);
        let info = c
            .checkpoint(&p, Default::default(), 1_700_000_000_000)
            .unwrap();
        assert!(info.name.ends_with(codec.extension()));
        let r = Coordinator::new(LocalStorageStore::new("rt2").unwrap(), config(codec, 5))
            .recover::<Orders>()
            .unwrap()
            .unwrap();
        assert_eq!(state(&r.pipeline), state(&p), "{codec}");
        assert_eq!(r.pipeline.clock(), p.clock());
        assert!(r.warnings.is_empty());
    }
}

#[wasm_bindgen_test]
fn latest_pointer() {
    let mut c = Coordinator::new(fresh("lp"), config(Codec::Json, 5));
    assert!(c.recover::<Orders>().unwrap().is_none(), "empty store");
    let first = c
        .checkpoint(&pipeline(10, 3, 0), Default::default(), 1_700_000_000_000)
        .unwrap();
    let p2 = pipeline(20, 3, 0);
    let second = c
        .checkpoint(&p2, Default::default(), 1_700_000_001_000)
        .unwrap();
    let latest: serde_json::Value =
        serde_json::from_str(&raw("simplestream/checkpoints/lp/latest.json").unwrap()).unwrap();
    assert_eq!(latest["file"], second.name.as_str());
    assert_eq!(latest["checkpoint_id"], 2);
    assert_eq!(latest["size"], second.size);
    let mut s = LocalStorageStore::new("lp").unwrap();
    assert_eq!(
        s.list().unwrap().len(),
        2,
        "latest.json is not a checkpoint"
    );
    let r = Coordinator::new(s.clone(), config(Codec::Json, 5))
        .recover::<Orders>()
        .unwrap()
        .unwrap();
    assert_eq!(r.name, second.name);
    assert_eq!(state(&r.pipeline), state(&p2));
    // Point latest back at the first checkpoint: recovery follows the pointer.
    let mut meta = latest.clone();
    meta["file"] = first.name.clone().into();
    meta["checkpoint_id"] = 1.into();
    meta["size"] = first.size.into();
    let bytes = s.get(&first.name).unwrap();
    meta["checksum"] = format!("{:08x}", crc32(&bytes)).into();
    s.put_latest(meta.to_string().as_bytes()).unwrap();
    assert_eq!(
        s.get_latest().unwrap().unwrap(),
        meta.to_string().as_bytes()
    );
    let r = Coordinator::new(s.clone(), config(Codec::Json, 5))
        .recover::<Orders>()
        .unwrap()
        .unwrap();
    assert_eq!(r.name, first.name);
    // Clearing removes checkpoints and latest, not other instances.
    let mut other = Coordinator::new(
        LocalStorageStore::new("lp-other").unwrap(),
        config(Codec::Json, 5),
    );
    other
        .checkpoint(&p2, Default::default(), 1_700_000_002_000)
        .unwrap();
    s.clear_checkpoints().unwrap();
    assert!(s.list().unwrap().is_empty());
    assert!(s.get_latest().unwrap().is_none());
    assert_eq!(other.store().list().unwrap().len(), 1);
}

/// CRC-32 (IEEE), as the coordinator's latest record uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[wasm_bindgen_test]
fn corrupt_value() {
    for codec in [Codec::Json, Codec::Binary] {
        let mut c = Coordinator::new(fresh("cv"), config(codec, 5));
        let p1 = pipeline(30, 4, 0);
        let first = c
            .checkpoint(&p1, Default::default(), 1_700_000_000_000)
            .unwrap();
        let second = c
            .checkpoint(&pipeline(60, 4, 0), Default::default(), 1_700_000_001_000)
            .unwrap();
        // Garble the latest value in localStorage itself, as a bad edit would.
        let key = format!("simplestream/checkpoints/cv/{}", second.name);
        let bytes = from_text(&raw(&key).unwrap()).unwrap();
        let (garbled, _) = garble(&bytes);
        storage().set_item(&key, &to_text(&garbled)).unwrap();
        let r = Coordinator::new(LocalStorageStore::new("cv").unwrap(), config(codec, 5))
            .recover::<Orders>()
            .unwrap()
            .unwrap();
        assert_eq!(r.name, first.name, "{codec}: fell back");
        assert_eq!(state(&r.pipeline), state(&p1));
        let w = r.warnings.join("\n");
        assert!(w.contains("checksum mismatch"), "{codec}: {w}");
        assert!(w.contains(&format!("fell back to {}", first.name)), "{w}");

        // A stored value that is not even valid base64 / text of a checkpoint.
        storage().set_item(&key, "base64:!!not base64!!").unwrap();
        let r = Coordinator::new(LocalStorageStore::new("cv").unwrap(), config(codec, 5))
            .recover::<Orders>()
            .unwrap()
            .unwrap();
        assert_eq!(r.name, first.name);
        assert!(
            r.warnings.join("\n").contains("damaged"),
            "{:?}",
            r.warnings
        );

        // A garbled latest record: reported, and the newest valid checkpoint is used.
        storage()
            .set_item("simplestream/checkpoints/cv/latest.json", "{\"file\":")
            .unwrap();
        let r = Coordinator::new(LocalStorageStore::new("cv").unwrap(), config(codec, 5))
            .recover::<Orders>()
            .unwrap()
            .unwrap();
        assert_eq!(r.name, first.name);
        assert!(
            r.warnings.join("\n").contains("latest record is corrupt"),
            "{:?}",
            r.warnings
        );

        // Nothing valid at all: an error, nothing loaded.
        storage()
            .set_item(&format!("simplestream/checkpoints/cv/{}", first.name), "{}")
            .unwrap();
        let e = Coordinator::new(LocalStorageStore::new("cv").unwrap(), config(codec, 5))
            .recover::<Orders>()
            .unwrap_err();
        assert!(
            matches!(e, CoordinatorError::NoValidCheckpoint { .. }),
            "{e}"
        );
    }
}

/// Fills localStorage until `setItem` throws; returns the exception's name.
fn fill_storage() -> String {
    let s = storage();
    let mut name = String::new();
    let mut i = 0;
    for chunk in [1 << 20, 1 << 16, 1 << 12, 1 << 8, 1 << 4, 1] {
        let value = "f".repeat(chunk);
        loop {
            i += 1;
            match s.set_item(&format!("filler/{i}"), &value) {
                Ok(()) => {}
                Err(e) => {
                    name = e
                        .dyn_ref::<web_sys::DomException>()
                        .map(|d| d.name())
                        .unwrap_or_else(|| format!("{e:?}"));
                    break;
                }
            }
        }
    }
    name
}

#[wasm_bindgen_test]
fn quota_exceeded() {
    let store = fresh("quota");
    let mut c = Coordinator::new(store, config(Codec::Json, 100));
    // Three checkpoints of about 200 KB each (1,000 customers with long ids).
    let mut names = Vec::new();
    for k in 1..=3 {
        let p = pipeline(1000 * k, 1000, 150);
        let info = c
            .checkpoint(&p, Default::default(), 1_700_000_000_000 + k as i64)
            .unwrap();
        assert!(info.size > 150_000, "{}", info.size);
        names.push(info.name);
    }
    // Fill the origin's quota to the last character: a real QuotaExceededError.
    assert_eq!(fill_storage(), "QuotaExceededError");

    // 1. The next checkpoint does not fit, but does once older ones are pruned: it
    //    succeeds, and says what it deleted. The one latest pointed at is kept.
    let p4 = pipeline(4000, 1000, 150);
    let fourth = c
        .checkpoint(&p4, Default::default(), 1_700_000_000_004)
        .expect("fits after pruning");
    let notes = c.store_mut().take_notes().join("\n");
    assert!(notes.contains("localStorage was full"), "{notes}");
    assert!(
        notes.contains(&names[0]) && notes.contains(&names[1]),
        "{notes}"
    );
    let listed: Vec<String> = c
        .store()
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, [names[2].clone(), fourth.name.clone()]);
    let r = Coordinator::new(
        LocalStorageStore::new("quota").unwrap(),
        config(Codec::Json, 100),
    )
    .recover::<Orders>()
    .unwrap()
    .unwrap();
    assert_eq!(r.name, fourth.name);
    assert_eq!(state(&r.pipeline), state(&p4));

    // 2. Full again, and a checkpoint bigger than anything that can be pruned: it fails
    //    with Full, clearly, and the previous checkpoint stays the valid latest.
    fill_storage();
    let big = pipeline(3000, 3000, 150);
    let e = c
        .checkpoint(&big, Default::default(), 1_700_000_000_005)
        .unwrap_err();
    match &e {
        CoordinatorError::Store(s) => {
            assert_eq!(s.kind, StoreErrorKind::Full, "{s}");
            assert!(s.detail.contains("QuotaExceededError"), "{s}");
            assert!(s.detail.contains("about 5 MB per origin"), "{s}");
            assert!(s.detail.contains("retried once"), "{s}");
        }
        other => panic!("expected a store error, got {other}"),
    }
    let listed: Vec<String> = c
        .store()
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed.len(), 1, "only latest's checkpoint kept: {listed:?}");
    assert_eq!(listed[0], fourth.name);
    let r = Coordinator::new(
        LocalStorageStore::new("quota").unwrap(),
        config(Codec::Json, 100),
    )
    .recover::<Orders>()
    .unwrap()
    .unwrap();
    assert_eq!(
        r.name, fourth.name,
        "the previous checkpoint is still valid"
    );
    assert_eq!(state(&r.pipeline), state(&p4));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    storage().clear().unwrap();
}
