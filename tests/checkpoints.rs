//! Checkpoints end to end: the envelope (both codecs, every corruption it must refuse),
//! the coordinator (triggers, retention, `latest`, recovery and its fallbacks) over a
//! `MemoryStore` and a real `FileStore`, and "resume equals uninterrupted" through files.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::mem::discriminant;
use std::path::Path;

use simplestream::coordinator::{
    checkpoint_name, id_from_name, CoordinatorError, LatestMeta, Recovered,
};
use simplestream::envelope::{self, FORMAT_NAME, FORMAT_VERSION};
use simplestream::store::{FileStore, FileStoreOptions, StoreErrorKind};
use simplestream::{
    CheckpointError, CheckpointStore, Codec, Coordinator, CoordinatorConfig, MemoryStore, Pipeline,
    StoreError,
};

type Out = <OrderStats as Pipeline>::Output;

const T0: i64 = 1_733_061_600_000; // 2024-12-01 14:00:00 UTC
const CODECS: [Codec; 2] = [Codec::Json, Codec::Binary];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// CRC-32 (IEEE 802.3, the one `crc32fast` computes), bit by bit: the root package does
/// not depend on `crc32fast`, and the tests must not trust the code under test for it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn positions(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Every stage's state as JSON text (sorted keys): equal text means equal state.
fn state<P: Pipeline>(p: &P) -> String {
    let mut v = Vec::new();
    p.encode_stages(Codec::Json, &mut v).unwrap();
    String::from_utf8(v).unwrap()
}

/// An `OrderStats` fed with `events`, and what it emitted.
fn fed(events: &[Order]) -> (OrderStats, Vec<Out>) {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    for e in events {
        p.process(e.clone(), &mut out);
    }
    (p, out)
}

/// Feeds `events` then ends the input; returns the outputs.
fn finish_with(mut p: OrderStats, events: &[Order]) -> Vec<Out> {
    let mut out = Vec::new();
    for e in events {
        p.process(e.clone(), &mut out);
    }
    p.finish(&mut out);
    out
}

fn flipped(bytes: &[u8], at: usize, mask: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= mask;
    b
}

/// For a JSON checkpoint: the bytes the checksum covers (everything before `,"checksum"`).
fn json_checksummed_part(bytes: &[u8]) -> &[u8] {
    let needle = b",\"checksum\":\"crc32:";
    let at = bytes
        .windows(needle.len())
        .rposition(|w| w == needle)
        .expect("a JSON checkpoint has a checksum trailer");
    &bytes[..at]
}

/// Re-seals a JSON checkpoint body with a correct checksum trailer.
fn json_seal(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(format!(",\"checksum\":\"crc32:{:08x}\"}}\n", crc32(body)).as_bytes());
    out
}

fn expect_err(
    r: Result<(envelope::Header, OrderStats), CheckpointError>,
    what: &str,
) -> CheckpointError {
    match r {
        Ok((h, _)) => panic!("{what}: decoded a checkpoint ({h:?}) that must be refused"),
        Err(e) => e,
    }
}

fn recovered(r: Result<Option<Recovered<OrderStats>>, CoordinatorError>) -> Recovered<OrderStats> {
    match r {
        Ok(Some(r)) => r,
        Ok(None) => panic!("recover found no checkpoint"),
        Err(e) => panic!("recover failed: {e}"),
    }
}

fn mem_config(every: u64, keep: usize, codec: Codec) -> CoordinatorConfig {
    CoordinatorConfig {
        every_events: Some(every),
        every_ms: None,
        codec,
        keep,
    }
}

/// What a checkpointed run left behind: per checkpoint id, its name and the state it saved.
#[derive(Debug, Default)]
struct Taken {
    names: BTreeMap<u64, String>,
    states: BTreeMap<u64, String>,
    events: BTreeMap<u64, u64>,
    deleted: Vec<String>,
}

/// Runs `events` through `OrderStats`, checkpointing through `c` whenever it is due;
/// `now` for event `i` is `T0 + 1000 * i`.
fn run_checkpointed<S: CheckpointStore>(
    c: &mut Coordinator<S>,
    events: &[Order],
) -> (OrderStats, Taken) {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    let mut taken = Taken::default();
    for (i, e) in events.iter().enumerate() {
        p.process(e.clone(), &mut out);
        c.note_events(1);
        let now = T0 + 1000 * i as i64;
        if c.due(now) {
            let n = i as u64 + 1;
            let info = c.checkpoint(&p, positions(&[("events", n)]), now).unwrap();
            assert_eq!(info.name, checkpoint_name(now, info.id, c.config().codec));
            assert_eq!(id_from_name(&info.name), Some(info.id));
            assert!(!c.due(now), "the trigger resets after a checkpoint");
            assert_eq!(c.events_since(), 0);
            taken.names.insert(info.id, info.name.clone());
            taken.states.insert(info.id, state(&p));
            taken.events.insert(info.id, n);
            taken.deleted.extend(info.deleted);
        }
    }
    (p, taken)
}

fn names_in<S: CheckpointStore>(s: &S) -> Vec<String> {
    s.list().unwrap().into_iter().map(|e| e.name).collect()
}

fn latest_of<S: CheckpointStore>(c: &Coordinator<S>) -> LatestMeta {
    c.latest().unwrap().expect("a latest record")
}

// ---------------------------------------------------------------------------------------
// 1. Envelope round trip
// ---------------------------------------------------------------------------------------

#[test]
fn envelope_round_trip_keeps_header_state_and_future_outputs() {
    let events = orders(11, 600, 7, 3_000);
    let (head, tail) = events.split_at(400);
    let (p, _) = fed(head);
    let reference = finish_with(fed(head).0, tail);
    assert!(!reference.is_empty());
    let pos = positions(&[
        ("events", 400),
        ("output.len", 17),
        ("source.offset", 51_200),
    ]);
    for codec in CODECS {
        let bytes = envelope::encode(&p, codec, 42, T0 + 123, pos.clone()).unwrap();
        // The same state always gives the same bytes.
        assert_eq!(
            bytes,
            envelope::encode(&p, codec, 42, T0 + 123, pos.clone()).unwrap()
        );

        let v = envelope::verify(&bytes).unwrap();
        assert_eq!(v.codec, codec);
        let (h, q) = envelope::decode::<OrderStats>(&bytes).unwrap();
        assert_eq!(v.header, h);
        assert_eq!(h.format, FORMAT_NAME);
        assert_eq!(h.format_version, FORMAT_VERSION);
        assert_eq!(h.pipeline, "OrderStats");
        assert_eq!(h.fingerprint.len(), 16, "{}", h.fingerprint);
        assert!(
            h.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
            "{}",
            h.fingerprint
        );
        assert_eq!(h.checkpoint_id, 42);
        assert_eq!(h.timestamp, T0 + 123);
        assert_eq!(h.positions, pos);
        assert_eq!(h.watermark, p.clock().watermark);
        assert_eq!(h.max_event_time, p.clock().max_event_time);
        assert_eq!(h.watermark, h.max_event_time - 5_000, "max_delay = 5s");
        assert_eq!(q.clock(), p.clock());

        for stage in OrderStats::STAGES {
            let a = p.stage_json(stage).unwrap();
            assert_eq!(a, q.stage_json(stage).unwrap(), "{codec}: stage {stage}");
        }
        assert!(!p
            .stage_json("customer_stats")
            .unwrap()
            .as_object()
            .unwrap()
            .is_empty());
        assert_eq!(state(&p), state(&q), "{codec}");
        // Re-encoding the restored pipeline gives the very same JSON checkpoint (keys are
        // sorted); binary skips the sort (documented in state.rs), so it gives the same
        // state only.
        let again = envelope::encode(&q, codec, 42, T0 + 123, pos.clone()).unwrap();
        match codec {
            Codec::Json => assert_eq!(bytes, again),
            Codec::Binary => {
                assert_eq!(bytes.len(), again.len());
                assert_eq!(
                    state(&envelope::decode::<OrderStats>(&again).unwrap().1),
                    state(&p)
                );
            }
        }
        // ...and it goes on exactly like the original.
        assert_eq!(finish_with(q, tail), reference, "{codec}");
    }

    // The JSON one is the readable document the docs describe.
    let bytes = envelope::encode(&p, Codec::Json, 42, T0, pos.clone()).unwrap();
    assert!(bytes.ends_with(b"\"}\n"));
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["format"], FORMAT_NAME);
    assert_eq!(doc["format_version"], FORMAT_VERSION);
    assert_eq!(doc["pipeline"], "OrderStats");
    assert_eq!(doc["checkpoint_id"], 42);
    assert_eq!(doc["positions"]["source.offset"], 51_200);
    assert_eq!(
        doc["customer_stats"],
        p.stage_json("customer_stats").unwrap()
    );
    let sum = format!("crc32:{:08x}", crc32(json_checksummed_part(&bytes)));
    assert_eq!(doc["checksum"], sum.as_str());
    // Each stage with the layout of its state: what a restore matches stages by.
    assert_eq!(doc["stage_layouts"][0]["name"], "customer_stats");
    assert_eq!(
        doc["stage_layouts"][0]["layout"],
        "key customer: String; aggregate count: u64 = count, amount: f64 = sum"
    );
    // The binary one: magic, version, payload length, CRC of the payload.
    let bin = envelope::encode(&p, Codec::Binary, 42, T0, pos).unwrap();
    assert_eq!(&bin[..4], b"SSCK");
    assert_eq!(u16::from_le_bytes([bin[4], bin[5]]) as u32, FORMAT_VERSION);
    assert_eq!(
        u64::from_le_bytes(bin[6..14].try_into().unwrap()),
        bin.len() as u64 - 18
    );
    assert_eq!(
        u32::from_le_bytes(bin[14..18].try_into().unwrap()),
        crc32(&bin[18..])
    );
    assert!(bin.len() < bytes.len(), "binary is the compact one");
}

#[test]
fn envelope_round_trip_of_an_empty_pipeline() {
    let p = OrderStats::new();
    for codec in CODECS {
        let bytes = envelope::encode(&p, codec, 1, 0, BTreeMap::new()).unwrap();
        let (h, q) = envelope::decode::<OrderStats>(&bytes).unwrap();
        assert_eq!(h.watermark, i64::MIN);
        assert_eq!(h.max_event_time, i64::MIN);
        assert!(h.positions.is_empty());
        assert_eq!(q.clock(), p.clock());
        assert_eq!(state(&q), state(&p));
        let events = orders(2, 200, 3, 0);
        assert_eq!(
            finish_with(q, &events),
            finish_with(OrderStats::new(), &events),
            "{codec}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. Corruption
// ---------------------------------------------------------------------------------------

fn sample(codec: Codec) -> (OrderStats, Vec<u8>) {
    let (p, _) = fed(&orders(5, 300, 6, 2_000));
    let bytes = envelope::encode(&p, codec, 7, T0, positions(&[("events", 300)])).unwrap();
    (p, bytes)
}

mod v2 {
    //! Same name as `common::OrderStats`, another state layout: a new version of it.
    use super::common::Order;
    use simplestream::pipeline;

    pipeline! {
        pub pipeline OrderStats;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        customer_stats = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), top: f64 = max(|o| o.amount));
        sink customer_stats;
    }
}

#[test]
fn flipped_byte_in_the_middle_is_a_checksum_mismatch() {
    for codec in CODECS {
        let (_, bytes) = sample(codec);
        let mid = bytes.len() / 2;
        let bad = flipped(&bytes, mid, 0xFF);
        let err = expect_err(envelope::decode::<OrderStats>(&bad), "flipped byte");
        let CheckpointError::ChecksumMismatch { stored, computed } = err else {
            panic!("{codec}: expected ChecksumMismatch, got {err:?}");
        };
        let expected_stored = match codec {
            Codec::Json => crc32(json_checksummed_part(&bytes)),
            Codec::Binary => crc32(&bytes[18..]),
        };
        assert_eq!(
            stored, expected_stored,
            "{codec}: the stored checksum is the writer's"
        );
        let expected_computed = match codec {
            Codec::Json => crc32(json_checksummed_part(&bad)),
            Codec::Binary => crc32(&bad[18..]),
        };
        assert_eq!(computed, expected_computed, "{codec}");
        assert_ne!(stored, computed);
        let msg = err.to_string();
        assert!(msg.contains("corrupt"), "{msg}");
        assert!(msg.contains("checksum mismatch"), "{msg}");
        assert!(msg.contains(&format!("stored crc32 {stored:08x}")), "{msg}");
        assert!(msg.contains(&format!("computed {computed:08x}")), "{msg}");
        assert!(msg.contains("older checkpoint"), "{msg}");
        // `verify` (no pipeline type) says the same.
        assert_eq!(envelope::verify(&bad).unwrap_err(), err);
    }
}

#[test]
fn truncated_checkpoints_are_refused() {
    // Binary: the header says how long it is.
    let (_, bytes) = sample(Codec::Binary);
    let half = bytes.len() / 2;
    let err = expect_err(
        envelope::decode::<OrderStats>(&bytes[..half]),
        "binary, half",
    );
    assert_eq!(
        err,
        CheckpointError::Truncated {
            expected: bytes.len() as u64,
            found: half as u64
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("truncated"), "{msg}");
    assert!(msg.contains("cut off"), "{msg}");
    assert!(
        msg.contains(&format!("{half} of {} bytes", bytes.len())),
        "{msg}"
    );
    // Cut inside the fixed header.
    let err = expect_err(
        envelope::decode::<OrderStats>(&bytes[..10]),
        "binary, 10 bytes",
    );
    assert_eq!(
        err,
        CheckpointError::Truncated {
            expected: 18,
            found: 10
        }
    );
    // Every cut is refused; once the magic is there, as Truncated.
    for len in 0..bytes.len() {
        let err = expect_err(
            envelope::decode::<OrderStats>(&bytes[..len]),
            &format!("binary cut at {len}"),
        );
        match len {
            0..=3 => assert!(
                matches!(err, CheckpointError::NotACheckpoint { .. }),
                "cut at {len}: {err:?}"
            ),
            4..=17 => assert_eq!(
                err,
                CheckpointError::Truncated {
                    expected: 18,
                    found: len as u64
                }
            ),
            _ => assert_eq!(
                err,
                CheckpointError::Truncated {
                    expected: bytes.len() as u64,
                    found: len as u64
                }
            ),
        }
    }

    // JSON: the checksum trailer is missing. The code reports it as `Decode`.
    let (p, bytes) = sample(Codec::Json);
    let half = bytes.len() / 2;
    let err = expect_err(envelope::decode::<OrderStats>(&bytes[..half]), "json, half");
    assert!(matches!(err, CheckpointError::Decode { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("cut off"), "{msg}");
    assert!(msg.contains("no checksum trailer"), "{msg}");
    assert!(msg.contains(&format!("({half} bytes)")), "{msg}");
    // Every cut is refused, except dropping only the final newline (same document).
    for len in 0..bytes.len() {
        let r = envelope::decode::<OrderStats>(&bytes[..len]);
        if len == bytes.len() - 1 {
            assert_eq!(state(&r.unwrap().1), state(&p));
            continue;
        }
        let err = expect_err(r, &format!("json cut at {len}"));
        match len {
            0 => assert!(
                matches!(err, CheckpointError::NotACheckpoint { .. }),
                "{err:?}"
            ),
            _ => {
                assert!(
                    matches!(err, CheckpointError::Decode { .. }),
                    "cut at {len}: {err:?}"
                );
                assert!(err.to_string().contains("cut off"), "cut at {len}: {err}");
            }
        }
    }
}

#[test]
fn checkpoint_of_another_pipeline_is_foreign() {
    let mut other = SlidingStats::new();
    let mut sink = Vec::new();
    for e in orders(3, 50, 3, 0) {
        other.process(e, &mut sink);
    }
    for codec in CODECS {
        let bytes = envelope::encode(&other, codec, 3, T0, BTreeMap::new()).unwrap();
        // It is a sound checkpoint, only not ours.
        assert_eq!(
            envelope::verify(&bytes).unwrap().header.pipeline,
            "SlidingStats"
        );
        let err = expect_err(envelope::decode::<OrderStats>(&bytes), "foreign");
        let CheckpointError::ForeignPipeline {
            found_name,
            found_fingerprint,
            expected_name,
            expected_fingerprint,
        } = &err
        else {
            panic!("{codec}: expected ForeignPipeline, got {err:?}");
        };
        assert_eq!(found_name, "SlidingStats");
        assert_eq!(expected_name, "OrderStats");
        assert_eq!(found_fingerprint.len(), 16);
        assert_eq!(expected_fingerprint.len(), 16);
        assert_ne!(found_fingerprint, expected_fingerprint);
        let msg = err.to_string();
        assert!(msg.contains("`SlidingStats`"), "{msg}");
        assert!(msg.contains("`OrderStats`"), "{msg}");
        assert!(msg.contains(found_fingerprint.as_str()), "{msg}");
        assert!(msg.contains(expected_fingerprint.as_str()), "{msg}");
        assert!(msg.contains("state layout differs"), "{msg}");
    }

    // Same name, another state layout (a changed DSL): refused stage by stage, saying
    // what changed and what to do.
    let (_, bytes) = sample(Codec::Json);
    let err = match envelope::decode::<v2::OrderStats>(&bytes) {
        Ok(_) => panic!("a checkpoint of another layout was accepted"),
        Err(e) => e,
    };
    let CheckpointError::Incompatible { pipeline, problems } = &err else {
        panic!("expected Incompatible, got {err:?}");
    };
    assert_eq!(pipeline, "OrderStats");
    assert!(
        problems[0].starts_with("stage `customer_stats` changed its state layout"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("stage `per_5min` holds state in the checkpoint but is gone"),
        "{problems:?}"
    );
}

#[test]
fn future_format_version_is_unsupported() {
    // Binary: patch the version (u16 LE at 4..6); checked before the checksum.
    let (_, bytes) = sample(Codec::Binary);
    let mut bad = bytes.clone();
    bad[4..6].copy_from_slice(&3u16.to_le_bytes());
    let err = expect_err(envelope::decode::<OrderStats>(&bad), "binary v3");
    assert_eq!(
        err,
        CheckpointError::UnsupportedVersion {
            found: 3,
            supported: 2
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("format version 3 is not supported"), "{msg}");
    assert!(msg.contains("reads versions 1 to 2"), "{msg}");
    assert!(msg.contains("upgrade SimpleStream"), "{msg}");
    bad[4..6].copy_from_slice(&0xFFFFu16.to_le_bytes());
    assert_eq!(
        envelope::verify(&bad).unwrap_err(),
        CheckpointError::UnsupportedVersion {
            found: 0xFFFF,
            supported: 2
        }
    );

    // JSON: a well-formed version-2 document with a valid checksum.
    let (_, bytes) = sample(Codec::Json);
    let body = std::str::from_utf8(json_checksummed_part(&bytes)).unwrap();
    assert_eq!(body.matches("\"format_version\":2,").count(), 1, "{body}");
    let v3 = json_seal(
        body.replace("\"format_version\":2,", "\"format_version\":3,")
            .as_bytes(),
    );
    // Sanity: the local seal reproduces the writer's own trailer.
    assert_eq!(json_seal(body.as_bytes()), bytes);
    let err = expect_err(envelope::decode::<OrderStats>(&v3), "json v3");
    assert_eq!(
        err,
        CheckpointError::UnsupportedVersion {
            found: 3,
            supported: 2
        }
    );
    assert!(
        err.to_string()
            .contains("format version 3 is not supported"),
        "{err}"
    );
    assert_eq!(envelope::verify(&v3).unwrap_err(), err);
}

#[test]
fn empty_and_garbage_are_not_checkpoints() {
    let err = expect_err(envelope::decode::<OrderStats>(b""), "empty");
    let CheckpointError::NotACheckpoint { detail } = &err else {
        panic!("expected NotACheckpoint, got {err:?}");
    };
    assert!(detail.contains("empty"), "{detail}");
    let msg = err.to_string();
    assert!(msg.starts_with("not a SimpleStream checkpoint"), "{msg}");
    assert!(msg.contains("the file is empty"), "{msg}");

    // Pseudo-random bytes (not starting with `{` or `S`), text, another file format.
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut garbage: Vec<u8> = (0..256)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect();
    garbage[0] = 0x8F;
    for junk in [
        &garbage[..],
        b"hello, world\n",
        b"PK\x03\x04\x14\x00\x00\x00",
        b"\n{}",
    ] {
        let err = expect_err(envelope::decode::<OrderStats>(junk), "garbage");
        let CheckpointError::NotACheckpoint { detail } = &err else {
            panic!("expected NotACheckpoint for {junk:?}, got {err:?}");
        };
        assert!(detail.starts_with("starts with "), "{detail}");
        assert!(
            err.to_string()
                .starts_with("not a SimpleStream checkpoint (starts with"),
            "{err}"
        );
    }
    let err = envelope::verify(b"hello, world\n").unwrap_err();
    assert!(
        err.to_string().contains("hello, world"),
        "shows what it found: {err}"
    );

    // A JSON document that is not ours, with a valid-looking trailer.
    let other = json_seal(br#"{"format":"something-else","format_version":1,"pipeline":"x","fingerprint":"0","checkpoint_id":1,"timestamp":0,"max_event_time":0,"watermark":0,"positions":{}"#);
    let err = expect_err(envelope::decode::<OrderStats>(&other), "other format");
    assert_eq!(
        err,
        CheckpointError::NotACheckpoint {
            detail: "format is `something-else`".into()
        }
    );
}

#[test]
fn every_corruption_kind_is_a_distinct_variant() {
    for codec in CODECS {
        let (_, bytes) = sample(codec);
        let mut future = bytes.clone();
        match codec {
            Codec::Binary => future[4..6].copy_from_slice(&3u16.to_le_bytes()),
            Codec::Json => {
                let body = std::str::from_utf8(json_checksummed_part(&bytes)).unwrap();
                future = json_seal(
                    body.replace("\"format_version\":2,", "\"format_version\":3,")
                        .as_bytes(),
                );
            }
        }
        let mut other = SlidingStats::new();
        other.process(orders(1, 1, 1, 0).remove(0), &mut Vec::new());
        let foreign = envelope::encode(&other, codec, 7, T0, BTreeMap::new()).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("flipped", flipped(&bytes, bytes.len() / 2, 0xFF)),
            ("truncated", bytes[..bytes.len() / 2].to_vec()),
            ("foreign", foreign),
            ("future", future),
            ("empty", Vec::new()),
        ];
        let errs: Vec<CheckpointError> = cases
            .iter()
            .map(|(what, b)| expect_err(envelope::decode::<OrderStats>(b), what))
            .collect();
        use CheckpointError as E;
        let expected_kind = |what: &str, e: &CheckpointError| match what {
            "flipped" => matches!(e, E::ChecksumMismatch { .. }),
            "truncated" if codec == Codec::Binary => matches!(e, E::Truncated { .. }),
            // JSON has no length header: a cut-off document lacks its checksum trailer.
            "truncated" => matches!(e, E::Decode { .. }),
            "foreign" => matches!(e, E::ForeignPipeline { .. }),
            "future" => matches!(e, E::UnsupportedVersion { .. }),
            "empty" => matches!(e, E::NotACheckpoint { .. }),
            _ => unreachable!(),
        };
        for ((what, _), e) in cases.iter().zip(&errs) {
            assert!(expected_kind(what, e), "{codec} {what}: {e:?}");
        }
        let distinct: Vec<_> = errs.iter().map(discriminant).collect();
        for (i, d) in distinct.iter().enumerate() {
            assert!(!distinct[..i].contains(d), "{codec}: {errs:#?}");
        }
        let messages: BTreeSet<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), cases.len());
    }
}

#[test]
fn a_flipped_byte_anywhere_in_a_binary_checkpoint_is_detected() {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    for (c, a, ts) in [("A", 1.5, 1_000), ("B", 2.25, 2_000), ("A", 4.0, 9_000)] {
        p.process(
            Order {
                customer: c.into(),
                amount: a,
                ts,
            },
            &mut out,
        );
    }
    let bytes = envelope::encode(&p, Codec::Binary, 1, T0, positions(&[("events", 3)])).unwrap();
    assert!(
        bytes.len() < 400,
        "a small checkpoint: {} bytes",
        bytes.len()
    );
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for at in 0..bytes.len() {
        // The whole byte, and each bit alone.
        for mask in std::iter::once(0xFFu8).chain((0..8).map(|b| 1u8 << b)) {
            let bad = flipped(&bytes, at, mask);
            match envelope::decode::<OrderStats>(&bad) {
                Ok((h, q)) => panic!(
                    "byte {at} ^ {mask:#04x} went undetected: decoded id {} state {}",
                    h.checkpoint_id,
                    state(&q)
                ),
                Err(e) => {
                    let kind = format!("{e:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap()
                        .to_string();
                    // Where the change is decides what is reported.
                    match at {
                        0..=3 => assert!(
                            matches!(e, CheckpointError::NotACheckpoint { .. }),
                            "{at}: {e:?}"
                        ),
                        4..=5 => assert!(
                            matches!(e, CheckpointError::UnsupportedVersion { .. }),
                            "{at}: {e:?}"
                        ),
                        6..=13 => assert!(
                            matches!(
                                e,
                                CheckpointError::Truncated { .. } | CheckpointError::Decode { .. }
                            ),
                            "{at}: {e:?}"
                        ),
                        _ => assert!(
                            matches!(e, CheckpointError::ChecksumMismatch { .. }),
                            "{at}: {e:?}"
                        ),
                    }
                    *by_kind.entry(kind).or_default() += 1;
                }
            }
        }
    }
    assert_eq!(
        by_kind.values().sum::<usize>(),
        bytes.len() * 9,
        "{by_kind:?}"
    );
}

#[test]
fn a_flipped_byte_anywhere_in_a_json_checkpoint_never_gives_another_state() {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    for (c, a, ts) in [("A", 1.5, 1_000), ("B", 2.25, 2_000), ("A", 4.0, 9_000)] {
        p.process(
            Order {
                customer: c.into(),
                amount: a,
                ts,
            },
            &mut out,
        );
    }
    let bytes = envelope::encode(&p, Codec::Json, 1, T0, positions(&[("events", 3)])).unwrap();
    let original = state(&p);
    let trailer = json_checksummed_part(&bytes).len();
    let mut accepted = Vec::new();
    for at in 0..bytes.len() {
        for mask in std::iter::once(0xFFu8).chain((0..8).map(|b| 1u8 << b)) {
            let bad = flipped(&bytes, at, mask);
            if let Ok((h, q)) = envelope::decode::<OrderStats>(&bad) {
                // Only a change the checksum does not cover, which changes nothing:
                // the case of a hex digit of the checksum itself.
                assert_eq!(state(&q), original, "byte {at} ^ {mask:#04x}");
                assert_eq!(h.checkpoint_id, 1);
                assert_eq!(mask, 0x20, "byte {at} ^ {mask:#04x}");
                assert!(at >= trailer && bytes[at].is_ascii_hexdigit(), "byte {at}");
                accepted.push(at);
            }
        }
    }
    // Only `a`..`f` in the stored hex may change case.
    let hex = &bytes[trailer + ",\"checksum\":\"crc32:".len()..][..8];
    assert_eq!(
        accepted.len(),
        hex.iter().filter(|b| b.is_ascii_lowercase()).count()
    );
}

// A file starting with the binary magic and a huge length must be refused, not panic.
#[test]
fn binary_header_with_huge_length_is_truncated_not_a_panic() {
    let mut junk = b"SSCK".to_vec();
    junk.extend_from_slice(&1u16.to_le_bytes());
    junk.extend_from_slice(&u64::MAX.to_le_bytes());
    junk.extend_from_slice(&[0, 0, 0, 0]);
    junk.extend_from_slice(b"payload");
    let r = std::panic::catch_unwind(|| envelope::verify(&junk).map(|v| v.header));
    let err = r.expect("verify must not panic").unwrap_err();
    assert!(
        matches!(err, CheckpointError::Truncated { found: 25, .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Coordinator over a MemoryStore
// ---------------------------------------------------------------------------------------

/// 1000 events checkpointed every 100 with `keep`: checkpoints 1..=10 were taken.
fn build(codec: Codec, keep: usize) -> (Coordinator<MemoryStore>, OrderStats, Taken) {
    let mut c = Coordinator::new(MemoryStore::new(), mem_config(100, keep, codec));
    let (p, taken) = run_checkpointed(&mut c, &orders(21, 1_000, 8, 2_000));
    assert_eq!(taken.names.len(), 10);
    (c, p, taken)
}

/// A new coordinator (as after a restart) over a copy of `c`'s store.
fn restarted(c: &Coordinator<MemoryStore>) -> Coordinator<MemoryStore> {
    Coordinator::new(c.store().clone(), c.config().clone())
}

fn corrupt_mem(c: &mut Coordinator<MemoryStore>, name: &str, how: impl FnOnce(&mut Vec<u8>)) {
    how(c
        .store_mut()
        .bytes_mut(name)
        .expect("the checkpoint exists"));
}

#[allow(clippy::ptr_arg)] // passed where truncations (which need the Vec) are passed too
fn flip_middle(b: &mut Vec<u8>) {
    let mid = b.len() / 2;
    b[mid] ^= 0xFF;
}

#[test]
fn due_fires_after_every_n_events_only() {
    let mut c = Coordinator::new(MemoryStore::new(), mem_config(100, 3, Codec::Json));
    assert!(!c.due(T0), "no events, not due");
    c.note_events(99);
    assert!(!c.due(T0));
    c.note_events(1);
    assert!(c.due(T0));
    let p = OrderStats::new();
    let info = c.checkpoint(&p, BTreeMap::new(), T0).unwrap();
    assert_eq!(info.id, 1);
    assert!(!c.due(T0 + 1));
    c.note_events(250);
    assert!(c.due(T0 + 2), "more than N also fires");
}

#[test]
fn coordinator_checkpoints_every_n_events_and_keeps_the_last_k() {
    for codec in CODECS {
        let (c, _, taken) = build(codec, 3);
        // Ids 1..=10, one per 100 events, names in the same order as ids.
        assert_eq!(
            taken.names.keys().copied().collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        for (id, n) in &taken.events {
            assert_eq!(*n, id * 100);
        }
        let names: Vec<&String> = taken.names.values().collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        for (id, name) in &taken.names {
            assert!(
                name.ends_with(&format!("-{id:06}.{}", codec.extension())),
                "{name}"
            );
        }
        assert_eq!(c.next_id(), 11);

        // Retention: the last 3 stay, the 7 older ones were deleted, oldest first.
        assert_eq!(
            names_in(c.store()),
            vec![
                taken.names[&8].clone(),
                taken.names[&9].clone(),
                taken.names[&10].clone()
            ]
        );
        assert_eq!(
            taken.deleted,
            (1..=7)
                .map(|id| taken.names[&id].clone())
                .collect::<Vec<_>>()
        );

        // latest: the newest, with what it says about it.
        let meta = latest_of(&c);
        let bytes = c.store().get(&taken.names[&10]).unwrap();
        assert_eq!(meta.checkpoint_id, 10);
        assert_eq!(meta.file, taken.names[&10]);
        assert_eq!(meta.timestamp, T0 + 1000 * 999);
        assert_eq!(meta.codec, codec);
        assert_eq!(meta.size, bytes.len() as u64);
        assert_eq!(meta.checksum, format!("{:08x}", crc32(&bytes)));
        assert_eq!(meta.positions, positions(&[("events", 1000)]));

        // Each kept checkpoint holds the state of its moment.
        for id in 8..=10 {
            let (h, q) =
                envelope::decode::<OrderStats>(&c.store().get(&taken.names[&id]).unwrap()).unwrap();
            assert_eq!(h.checkpoint_id, id);
            assert_eq!(h.positions, positions(&[("events", id * 100)]));
            assert_eq!(state(&q), taken.states[&id], "{codec} {id}");
        }

        let listed = c.inspect().unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed.iter().filter(|l| l.is_latest).count(), 1);
        assert!(listed[2].is_latest);
        assert!(listed
            .iter()
            .all(|l| l.header.is_ok() && l.codec == Some(codec)));
    }
}

#[test]
fn retention_never_deletes_latest_or_anything_newer() {
    for keep in [0, 1] {
        let mut c = Coordinator::new(MemoryStore::new(), mem_config(10, keep, Codec::Binary));
        let mut p = OrderStats::new();
        let mut out = Vec::new();
        // A checkpoint newer than any this run takes (e.g. written by a run whose latest
        // update was lost): not to be deleted by retention.
        let newer = checkpoint_name(T0 + 10_000_000, 999, Codec::Binary);
        let newer_bytes =
            envelope::encode(&p, Codec::Binary, 999, T0 + 10_000_000, BTreeMap::new()).unwrap();
        c.store_mut().put(&newer, &newer_bytes).unwrap();
        for (i, e) in orders(4, 100, 3, 0).into_iter().enumerate() {
            p.process(e, &mut out);
            c.note_events(1);
            if c.due(0) {
                let info = c.checkpoint(&p, BTreeMap::new(), T0 + i as i64).unwrap();
                assert_eq!(latest_of(&c).file, info.name);
                assert_eq!(
                    names_in(c.store()),
                    vec![info.name.clone(), newer.clone()],
                    "keep {keep}"
                );
                envelope::decode::<OrderStats>(&c.store().get(&info.name).unwrap()).unwrap();
            }
        }
        assert_eq!(c.next_id(), 11);
    }
}

#[test]
fn recover_uses_latest() {
    for codec in CODECS {
        let (c, _, taken) = build(codec, 3);
        let mut c2 = restarted(&c);
        assert_eq!(c2.next_id(), 1);
        let r = recovered(c2.recover::<OrderStats>());
        assert_eq!(r.header.checkpoint_id, 10);
        assert_eq!(r.name, taken.names[&10]);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.header.positions, positions(&[("events", 1000)]));
        assert_eq!(state(&r.pipeline), taken.states[&10]);
        assert_eq!(c2.next_id(), 11);
        // The next checkpoint does not reuse an id.
        let info = c2
            .checkpoint(&r.pipeline, BTreeMap::new(), T0 + 5_000_000)
            .unwrap();
        assert_eq!(info.id, 11);
    }
}

#[test]
fn recover_falls_back_when_the_latest_checkpoint_is_corrupt() {
    for codec in CODECS {
        let (mut c, _, taken) = build(codec, 3);
        corrupt_mem(&mut c, &taken.names[&10], flip_middle);
        let mut c2 = restarted(&c);
        let r = recovered(c2.recover::<OrderStats>());
        assert_eq!(r.header.checkpoint_id, 9, "{codec}");
        assert_eq!(r.name, taken.names[&9]);
        assert_eq!(state(&r.pipeline), taken.states[&9]);
        assert_eq!(r.header.positions, positions(&[("events", 900)]));
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        let (bad, used) = (&r.warnings[0], &r.warnings[1]);
        assert!(
            bad.contains(&format!("latest points to {}", taken.names[&10])),
            "{bad}"
        );
        assert!(bad.contains("cannot be restored"), "{bad}");
        assert!(bad.contains("checksum mismatch"), "{bad}");
        assert!(
            used.contains(&format!("fell back to {}", taken.names[&9])),
            "{used}"
        );
        assert!(!used.contains(&taken.names[&10]), "{used}");
        // Id 10 exists (even if corrupt): never reused.
        assert_eq!(c2.next_id(), 11);
        // Recovery changed nothing in the store.
        assert_eq!(names_in(c2.store()), names_in(c.store()));
    }
}

#[test]
fn recover_falls_back_to_the_newest_valid_when_latest_is_garbled_or_missing() {
    for codec in CODECS {
        let (c, _, taken) = build(codec, 3);

        for garbled in [
            &b"{\"checkpoint_id\":10,\"fi"[..],
            b"\x00\x01garbage",
            b"",
            b"{}",
        ] {
            let mut c2 = restarted(&c);
            *c2.store_mut().latest_mut() = Some(garbled.to_vec());
            let r = recovered(c2.recover::<OrderStats>());
            assert_eq!(r.header.checkpoint_id, 10, "{garbled:?}");
            assert_eq!(state(&r.pipeline), taken.states[&10]);
            assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
            assert!(
                r.warnings[0].contains("latest record is corrupt"),
                "{:?}",
                r.warnings
            );
            assert!(
                r.warnings[1].contains(&format!("fell back to {}", taken.names[&10])),
                "{:?}",
                r.warnings
            );
            assert_eq!(c2.next_id(), 11);
        }

        let mut c2 = restarted(&c);
        *c2.store_mut().latest_mut() = None;
        let r = recovered(c2.recover::<OrderStats>());
        assert_eq!(r.header.checkpoint_id, 10);
        assert_eq!(
            r.warnings,
            vec![
                "the latest record is missing".to_string(),
                format!(
                    "fell back to {}, the newest checkpoint that verifies",
                    taken.names[&10]
                ),
            ]
        );

        // latest missing and the newest checkpoint cut off: the one before.
        let mut c2 = restarted(&c);
        *c2.store_mut().latest_mut() = None;
        corrupt_mem(&mut c2, &taken.names[&10], |b| b.truncate(b.len() / 3));
        let r = recovered(c2.recover::<OrderStats>());
        assert_eq!(r.header.checkpoint_id, 9);
        assert_eq!(state(&r.pipeline), taken.states[&9]);
        assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
        assert!(
            r.warnings[1].starts_with(&format!("skipped {}: ", taken.names[&10])),
            "{:?}",
            r.warnings
        );
        let why = match codec {
            Codec::Json => "cut off",
            Codec::Binary => "truncated",
        };
        assert!(r.warnings[1].contains(why), "{:?}", r.warnings);
        assert!(
            r.warnings[2].contains(&format!("fell back to {}", taken.names[&9])),
            "{:?}",
            r.warnings
        );
        assert_eq!(c2.next_id(), 11);

        // latest points to a checkpoint that is gone.
        let mut c2 = restarted(&c);
        c2.store_mut().delete(&taken.names[&10]).unwrap();
        let r = recovered(c2.recover::<OrderStats>());
        assert_eq!(r.header.checkpoint_id, 9);
        assert!(
            r.warnings[0].contains(&taken.names[&10]),
            "{:?}",
            r.warnings
        );
        assert!(
            r.warnings[0].contains("no such checkpoint"),
            "{:?}",
            r.warnings
        );
        assert!(
            r.warnings[1].contains(&format!("fell back to {}", taken.names[&9])),
            "{:?}",
            r.warnings
        );
        // Id 10 is gone everywhere but in `latest`: 10 may be reused, 9 may not.
        assert!(c2.next_id() >= 10);
    }
}

#[test]
fn recover_with_every_checkpoint_bad_loads_nothing_and_lists_each_file() {
    for codec in CODECS {
        let (mut c, _, taken) = build(codec, 4);
        let n = |id: u64| taken.names[&id].clone();
        assert_eq!(names_in(c.store()), (7..=10).map(n).collect::<Vec<_>>());
        let mut other = SlidingStats::new();
        other.process(orders(1, 1, 1, 0).remove(0), &mut Vec::new());
        let foreign = envelope::encode(&other, codec, 8, T0, BTreeMap::new()).unwrap();
        corrupt_mem(&mut c, &n(10), flip_middle);
        corrupt_mem(&mut c, &n(9), |b| b.truncate(b.len() - 7));
        corrupt_mem(&mut c, &n(8), |b| *b = foreign.clone());
        corrupt_mem(&mut c, &n(7), Vec::clear);
        let before = c.store().clone();

        let mut c2 = restarted(&c);
        let err = match c2.recover::<OrderStats>() {
            Err(e) => e,
            Ok(r) => panic!(
                "{codec}: restored {:?} from bad checkpoints",
                r.map(|r| r.name)
            ),
        };
        let CoordinatorError::NoValidCheckpoint { location, problems } = &err else {
            panic!("expected NoValidCheckpoint, got {err:?}");
        };
        assert_eq!(location, "memory");
        assert_eq!(problems.len(), 4, "{problems:#?}");
        // Newest first (latest's file), each with its own reason.
        let expect = [
            (n(10), "checksum mismatch"),
            (
                n(9),
                if codec == Codec::Json {
                    "cut off"
                } else {
                    "truncated"
                },
            ),
            (n(8), "belongs to pipeline `SlidingStats`"),
            (n(7), "the file is empty"),
        ];
        for (p, (name, why)) in problems.iter().zip(&expect) {
            assert!(p.starts_with(&format!("{name}: ")), "{p}");
            assert!(p.contains(why), "{p}");
        }
        let msg = err.to_string();
        assert!(
            msg.starts_with("no checkpoint in memory can be restored:"),
            "{msg}"
        );
        for (name, _) in &expect {
            assert!(msg.contains(&format!("\n  - {name}: ")), "{msg}");
        }
        assert!(msg.contains("nothing was loaded"), "{msg}");
        // Nothing was changed or removed.
        assert_eq!(c2.store().list().unwrap(), before.list().unwrap());
        for (name, _) in &expect {
            assert_eq!(c2.store().get(name).unwrap(), before.get(name).unwrap());
        }
        assert_eq!(
            c2.store().get_latest().unwrap(),
            before.get_latest().unwrap()
        );
        assert!(c2.next_id() > 10, "ids of existing files are not reused");
    }
}

#[test]
fn recover_with_no_checkpoints_is_none() {
    let mut c = Coordinator::new(MemoryStore::new(), CoordinatorConfig::default());
    assert!(c.recover::<OrderStats>().unwrap().is_none());
    assert_eq!(c.next_id(), 1);
    assert_eq!(c.latest(), Ok(None));
}

#[test]
fn next_id_after_recover_is_above_every_existing_id() {
    for codec in CODECS {
        let (c, p, taken) = build(codec, 3);
        // A crash after writing checkpoint 11 but before updating latest.
        let mut c2 = restarted(&c);
        let orphan = checkpoint_name(T0 + 2_000_000, 11, codec);
        let bytes = envelope::encode(&p, codec, 11, T0 + 2_000_000, BTreeMap::new()).unwrap();
        c2.store_mut().put(&orphan, &bytes).unwrap();
        let r = recovered(c2.recover::<OrderStats>());
        assert_eq!(r.header.checkpoint_id, 10, "latest is the committed one");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(c2.next_id(), 12);
        let info = c2
            .checkpoint(&r.pipeline, BTreeMap::new(), T0 + 3_000_000)
            .unwrap();
        assert_eq!(info.id, 12);
        assert_ne!(info.name, orphan);

        // A junk file with a large id counts too.
        let mut c3 = restarted(&c);
        let junk = checkpoint_name(T0 + 1, 57, codec);
        c3.store_mut().put(&junk, b"junk").unwrap();
        let r = recovered(c3.recover::<OrderStats>());
        assert_eq!(r.name, taken.names[&10]);
        assert_eq!(c3.next_id(), 58);
        // And when falling back.
        let mut c4 = restarted(&c);
        c4.store_mut().put(&junk, b"junk").unwrap();
        corrupt_mem(&mut c4, &taken.names[&10], flip_middle);
        let r = recovered(c4.recover::<OrderStats>());
        assert_eq!(r.header.checkpoint_id, 9);
        assert_eq!(c4.next_id(), 58);
    }
}

#[test]
fn recover_uses_an_intact_checkpoint_when_only_the_latest_checksum_is_wrong() {
    for codec in CODECS {
        let (c, _, taken) = build(codec, 1);
        let mut c2 = restarted(&c);
        let mut meta = latest_of(&c2);
        meta.checksum = "00000000".into();
        *c2.store_mut().latest_mut() = Some(serde_json::to_vec(&meta).unwrap());
        let r = match c2.recover::<OrderStats>() {
            Ok(Some(r)) => r,
            other => panic!("{codec}: {:?}", other.map(|o| o.map(|r| r.name))),
        };
        assert_eq!(r.header.checkpoint_id, 10);
        assert_eq!(state(&r.pipeline), taken.states[&10]);
        assert!(
            r.warnings[0].contains("the latest record says 00000000"),
            "{:?}",
            r.warnings
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Coordinator over a FileStore
// ---------------------------------------------------------------------------------------

fn open(dir: &Path, instance: &str) -> FileStore {
    FileStore::open(dir, instance, FileStoreOptions::default()).unwrap()
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn file_store_layout_latest_record_and_fallback_on_disk() {
    for codec in CODECS {
        let tmp = tempfile::tempdir().unwrap();
        let inst = tmp.path().join("checkpoints").join("orders-1");
        let events = orders(9, 500, 5, 1_000);
        let mut c = Coordinator::new(open(tmp.path(), "orders-1"), mem_config(100, 3, codec));
        let (_, taken) = run_checkpointed(&mut c, &events);
        assert_eq!(taken.names.len(), 5);

        // <dir>/checkpoints/<instance>/checkpoint_*.{json,bin} + latest.json (+ .lock).
        assert_eq!(
            dir_listing(&inst),
            vec![
                ".lock".to_string(),
                taken.names[&3].clone(),
                taken.names[&4].clone(),
                taken.names[&5].clone(),
                "latest.json".to_string(),
            ]
        );
        for id in 3..=5 {
            let name = &taken.names[&id];
            assert!(name.starts_with("checkpoint_"), "{name}");
            assert!(name.ends_with(&format!(".{}", codec.extension())), "{name}");
            let (h, q) =
                envelope::decode::<OrderStats>(&std::fs::read(inst.join(name)).unwrap()).unwrap();
            assert_eq!(h.checkpoint_id, id);
            assert_eq!(state(&q), taken.states[&id]);
        }

        // latest.json is plain JSON with the documented fields.
        let raw = std::fs::read(inst.join("latest.json")).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let keys: BTreeSet<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "checkpoint_id",
                "file",
                "timestamp",
                "codec",
                "size",
                "checksum",
                "positions"
            ])
        );
        let newest = std::fs::read(inst.join(&taken.names[&5])).unwrap();
        assert_eq!(doc["checkpoint_id"], 5);
        assert_eq!(doc["file"], taken.names[&5].as_str());
        assert_eq!(doc["timestamp"], T0 + 1000 * 499);
        assert_eq!(doc["codec"], codec.to_string());
        assert_eq!(doc["size"], newest.len() as u64);
        assert_eq!(doc["checksum"], format!("{:08x}", crc32(&newest)));
        assert_eq!(doc["positions"], serde_json::json!({"events": 500}));
        let meta: LatestMeta = serde_json::from_slice(&raw).unwrap();
        assert_eq!(meta, latest_of(&c));

        // Crash, then the newest file gets damaged on disk.
        drop(c);
        let mut bytes = std::fs::read(inst.join(&taken.names[&5])).unwrap();
        flip_middle(&mut bytes);
        std::fs::write(inst.join(&taken.names[&5]), &bytes).unwrap();

        let mut c = Coordinator::new(open(tmp.path(), "orders-1"), mem_config(100, 3, codec));
        let r = recovered(c.recover::<OrderStats>());
        assert_eq!(r.header.checkpoint_id, 4, "{codec}");
        assert_eq!(r.name, taken.names[&4]);
        assert_eq!(state(&r.pipeline), taken.states[&4]);
        assert_eq!(r.header.positions, positions(&[("events", 400)]));
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(
            r.warnings[0].contains(&format!("latest points to {}", taken.names[&5])),
            "{:?}",
            r.warnings
        );
        assert!(
            r.warnings[0].contains("checksum mismatch"),
            "{:?}",
            r.warnings
        );
        assert!(
            r.warnings[1].contains(&format!("fell back to {}", taken.names[&4])),
            "{:?}",
            r.warnings
        );
        assert_eq!(c.next_id(), 6);
        let info = c
            .checkpoint(&r.pipeline, positions(&[("events", 400)]), T0 + 1_000_000)
            .unwrap();
        assert_eq!(info.id, 6);
        assert!(inst.join(&info.name).is_file());
        assert_eq!(latest_of(&c).file, info.name);

        // Every file bad: the error names the directory and each file.
        drop(c);
        for e in dir_listing(&inst)
            .iter()
            .filter(|n| n.starts_with("checkpoint_"))
        {
            std::fs::write(inst.join(e), b"").unwrap();
        }
        let mut c = Coordinator::new(open(tmp.path(), "orders-1"), mem_config(100, 3, codec));
        let err = c.recover::<OrderStats>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "no checkpoint in {} can be restored",
                inst.display()
            )),
            "{msg}"
        );
        assert!(
            matches!(&err, CoordinatorError::NoValidCheckpoint { problems, .. } if problems.len() == 3),
            "{err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 5. Resume equals uninterrupted, through a FileStore
// ---------------------------------------------------------------------------------------

struct CrashRun {
    outputs: Vec<Out>,
    state: String,
    /// Outputs written after the last checkpoint before a crash, then truncated away.
    discarded: usize,
    /// The event count each (re)start resumed from.
    resumed_from: Vec<u64>,
}

/// Runs `events` through `OrderStats` with a coordinator checkpointing every 100 events
/// into a `FileStore`; before event index `c` of each crash point, everything in memory
/// (pipeline, coordinator, store) is dropped, the store reopened and the pipeline
/// recovered. The sink (a durable output) is truncated to the length saved in the
/// checkpoint, and the source replayed from the saved event count.
fn run_with_file_crashes(codec: Codec, events: &[Order], crashes: &[usize]) -> CrashRun {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink: Vec<Out> = Vec::new();
    let mut discarded = 0;
    let mut resumed_from = Vec::new();
    let mut wall = T0; // wall clock, always moving forward
    let mut crashes = crashes.iter().copied();
    loop {
        let mut c = Coordinator::new(open(tmp.path(), "resume"), mem_config(100, 3, codec));
        let (mut p, mut i) = match c.recover::<OrderStats>().unwrap() {
            Some(r) => {
                assert!(r.warnings.is_empty(), "{:?}", r.warnings);
                let n = r.header.positions["events"];
                let len = r.header.positions["output.len"] as usize;
                assert!(len <= sink.len());
                discarded += sink.len() - len;
                sink.truncate(len);
                resumed_from.push(n);
                (r.pipeline, n as usize)
            }
            None => {
                discarded += sink.len();
                sink.clear();
                resumed_from.push(0);
                (OrderStats::new(), 0)
            }
        };
        let stop = crashes.next();
        while i < stop.unwrap_or(events.len()) {
            p.process(events[i].clone(), &mut sink);
            i += 1;
            c.note_events(1);
            wall += 1000;
            if c.due(wall) {
                let pos = positions(&[("events", i as u64), ("output.len", sink.len() as u64)]);
                c.checkpoint(&p, pos, wall).unwrap();
            }
        }
        if stop.is_none() {
            p.finish(&mut sink);
            return CrashRun {
                outputs: sink,
                state: state(&p),
                discarded,
                resumed_from,
            };
        }
        // The crash: all in-memory state is gone, the lock is released.
        drop(p);
        drop(c);
    }
}

#[test]
fn resume_from_file_checkpoints_equals_uninterrupted_run() {
    let events = orders(17, 1_200, 12, 4_000);
    let (mut p, mut out) = (OrderStats::new(), Vec::new());
    let mut emitted_at = Vec::new(); // event indexes after which outputs appeared
    for (i, e) in events.iter().enumerate() {
        let before = out.len();
        p.process(e.clone(), &mut out);
        if out.len() > before {
            emitted_at.push(i);
        }
    }
    p.finish(&mut out);
    let (reference, reference_state) = (out, state(&p));
    assert!(reference.len() > 20, "{}", reference.len());
    // A crash right after outputs that come after a checkpoint: they must be discarded.
    let after_outputs = *emitted_at
        .iter()
        .find(|&&i| i >= 100 && (i + 1) % 100 != 0)
        .expect("outputs between two checkpoints");
    let crash = after_outputs + 1;

    let mut many = vec![150, 151, 777, crash, 1_150];
    many.sort_unstable();
    many.dedup();
    let plans: Vec<Vec<usize>> = vec![
        vec![50],    // before the first checkpoint: start from scratch
        vec![1_000], // right after a checkpoint: nothing to replay, nothing to discard
        vec![crash], // outputs written after the checkpoint are truncated away
        many,        // several crashes, two of them restoring the same checkpoint
    ];
    assert!(crash > 200 && crash < 1_100, "{crash}");
    for codec in CODECS {
        for plan in &plans {
            assert!(plan.windows(2).all(|w| w[0] < w[1]), "{plan:?}");
            let run = run_with_file_crashes(codec, &events, plan);
            assert_eq!(run.outputs.len(), reference.len(), "{codec} {plan:?}");
            if let Some(i) = run.outputs.iter().zip(&reference).position(|(a, b)| a != b) {
                panic!(
                    "{codec} {plan:?}: output {i} differs\n  restored:      {:?}\n  uninterrupted: {:?}",
                    run.outputs[i], reference[i]
                );
            }
            assert_eq!(run.state, reference_state, "{codec} {plan:?}");
            let expected_from: Vec<u64> = std::iter::once(0)
                .chain(plan.iter().map(|&c| (c as u64 / 100) * 100))
                .collect();
            assert_eq!(run.resumed_from, expected_from, "{codec} {plan:?}");
            if plan == &vec![crash] {
                assert!(
                    run.discarded > 0,
                    "{codec}: the crash at {crash} must discard outputs"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Failures while checkpointing, hostile files
// ---------------------------------------------------------------------------------------

/// A `MemoryStore` whose `put_latest` fails while `fail_latest` is set (a full disk).
#[derive(Debug, Clone, Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail_latest: bool,
}

impl CheckpointStore for FlakyStore {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.put(name, bytes)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.get(name)
    }
    fn list(&self) -> Result<Vec<simplestream::store::StoredEntry>, StoreError> {
        self.inner.list()
    }
    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        self.inner.delete(name)
    }
    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if self.fail_latest {
            return Err(StoreError::new(
                StoreErrorKind::Full,
                "writing latest record",
                "memory",
                "simulated: no space left on device",
            ));
        }
        self.inner.put_latest(bytes)
    }
    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_latest()
    }
}

/// Three checkpoints, then one whose `latest` update fails, then a successful retry.
fn with_failed_latest_write() -> (Coordinator<FlakyStore>, String) {
    let mut c = Coordinator::new(FlakyStore::default(), mem_config(10, 5, Codec::Json));
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    let events = orders(8, 50, 4, 0);
    let mut saved = String::new(); // state at the last successful checkpoint
    let mut now = T0;
    for (i, e) in events.iter().enumerate() {
        p.process(e.clone(), &mut out);
        c.note_events(1);
        now += 1000;
        if i == 39 {
            c.store_mut().fail_latest = true;
        }
        if c.due(now) {
            let pos = positions(&[("events", i as u64 + 1)]);
            match c.checkpoint(&p, pos, now) {
                Ok(info) => {
                    assert_eq!(latest_of(&c).file, info.name);
                    saved = state(&p);
                }
                Err(err) => {
                    assert_eq!(i, 39, "only the failing write fails");
                    let CoordinatorError::Store(e) = &err else {
                        panic!("expected a store error, got {err:?}");
                    };
                    assert_eq!(e.kind, StoreErrorKind::Full);
                    assert!(err.to_string().contains("no space left on device"), "{err}");
                    // latest still names the previous checkpoint, which still restores.
                    let meta = latest_of(&c);
                    assert_eq!(meta.checkpoint_id, 3);
                    let (h, _) =
                        envelope::decode::<OrderStats>(&c.store().get(&meta.file).unwrap())
                            .unwrap();
                    assert_eq!(h.positions, positions(&[("events", 30)]));
                    assert!(
                        c.due(now),
                        "the trigger stays due, so the next call retries"
                    );
                    c.store_mut().fail_latest = false;
                }
            }
        }
    }
    (c, saved)
}

#[test]
fn a_failed_latest_write_keeps_the_previous_checkpoint_and_is_retried() {
    let (c, saved) = with_failed_latest_write();
    // The retry came with the next event (the trigger stayed due).
    let meta = latest_of(&c);
    assert_eq!(meta.positions, positions(&[("events", 41)]));
    // Id 4 went to the file whose `latest` write failed; ids are never reused.
    assert_eq!(meta.checkpoint_id, 5);
    assert_eq!(c.next_id(), 6);
    let mut c2 = Coordinator::new(c.store().clone(), c.config().clone());
    let r = match c2.recover::<OrderStats>() {
        Ok(Some(r)) => r,
        other => panic!("{:?}", other.map(|o| o.map(|r| r.name))),
    };
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.name, meta.file);
    assert_eq!(state(&r.pipeline), saved);
}

#[test]
fn a_failed_latest_write_does_not_reuse_the_checkpoint_id() {
    let (c, _) = with_failed_latest_write();
    let ids: Vec<u64> = names_in(c.store())
        .iter()
        .map(|n| id_from_name(n).unwrap())
        .collect();
    let distinct: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        distinct.len(),
        "two checkpoint files share an id: {:?}",
        names_in(c.store())
    );
}

#[test]
fn a_checkpoint_file_named_with_the_largest_id_does_not_panic_recover() {
    let (c, _, taken) = build(Codec::Json, 3);
    let mut c2 = restarted(&c);
    c2.store_mut()
        .put(
            &format!("checkpoint_20241201_140000_000-{}.json", u64::MAX),
            b"junk",
        )
        .unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c2.recover::<OrderStats>().map(|r| r.map(|r| r.name))
    }))
    .expect("recover must not panic");
    assert_eq!(r.unwrap(), Some(taken.names[&10].clone()));
}
