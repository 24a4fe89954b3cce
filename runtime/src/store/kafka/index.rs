//! What a [`KafkaStore`](super::KafkaStore) knows of its instance's records: manifests,
//! the `latest` value and the live record keys of each checkpoint, built from the
//! records read or written, with no I/O (so it can be tested on any bytes).

use std::collections::{BTreeMap, BTreeSet};

use super::manifest::{parse_manifest, Manifest, ManifestError};
use super::LATEST_KEY;
use crate::store::StoredEntry;

/// A manifest as the index knows it.
#[derive(Debug, Clone)]
pub(super) struct Indexed {
    /// Offset of the manifest record.
    pub(super) offset: i64,
    /// The manifest, or why it cannot be used.
    pub(super) manifest: Result<Manifest, ManifestError>,
}

/// The index of one instance's records.
#[derive(Debug, Clone)]
pub(super) struct Index {
    /// `{instance}/`.
    prefix: String,
    pub(super) manifests: BTreeMap<String, Indexed>,
    pub(super) latest: Option<Vec<u8>>,
    /// Live segment keys (not tombstoned) of this instance, by checkpoint name.
    pub(super) segment_keys: BTreeMap<String, BTreeSet<String>>,
}

impl Index {
    pub(super) fn new(instance: &str) -> Index {
        Index {
            prefix: format!("{instance}/"),
            manifests: BTreeMap::new(),
            latest: None,
            segment_keys: BTreeMap::new(),
        }
    }

    /// `{instance}/`.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `key` is one of this instance's keys.
    pub(super) fn owns(&self, key: &[u8]) -> bool {
        key.starts_with(self.prefix.as_bytes())
    }

    /// Applies one record (a `None` value is a tombstone); keys of other instances and
    /// keys that are not UTF-8 are ignored.
    pub(super) fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, offset: i64) {
        let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        let Some(rest) = key.strip_prefix(&self.prefix) else {
            return;
        };
        if rest == LATEST_KEY {
            self.latest = value.map(<[u8]>::to_vec);
        } else if let Some((name, _)) = rest.split_once('/') {
            let keys = self.segment_keys.entry(name.to_string()).or_default();
            if value.is_some() {
                keys.insert(key.to_string());
            } else {
                keys.remove(key);
                if keys.is_empty() {
                    self.segment_keys.remove(name);
                }
            }
        } else {
            match value {
                None => {
                    self.manifests.remove(rest);
                }
                Some(v) => {
                    let manifest = parse_manifest(v, &self.prefix, rest);
                    self.manifests
                        .insert(rest.to_string(), Indexed { offset, manifest });
                }
            }
        }
    }

    /// The usable manifest of checkpoint `name`.
    pub(super) fn manifest(&self, name: &str) -> Option<&Manifest> {
        self.manifests.get(name)?.manifest.as_ref().ok()
    }

    /// True if `name` has a manifest in a layout this build does not know: its records
    /// are left alone.
    pub(super) fn is_foreign(&self, name: &str) -> bool {
        self.manifests
            .get(name)
            .is_some_and(|e| matches!(e.manifest, Err(ManifestError::UnknownVersion(_))))
    }

    /// The checkpoints, oldest name first; those in an unknown layout are not listed.
    pub(super) fn list(&self) -> Vec<StoredEntry> {
        self.manifests
            .iter()
            .filter(|(name, _)| !self.is_foreign(name))
            .map(|(name, e)| StoredEntry {
                name: name.clone(),
                size: e.manifest.as_ref().map_or(0, |m| m.size),
            })
            .collect()
    }

    /// One message per checkpoint left alone because a newer version wrote it.
    pub(super) fn left_alone(&self) -> Vec<String> {
        self.manifests
            .iter()
            .filter_map(|(name, e)| match &e.manifest {
                Err(ManifestError::UnknownVersion(why)) => Some(format!(
                    "checkpoint {name} (manifest {}{name} at offset {}) is left alone: {why}",
                    self.prefix, e.offset
                )),
                _ => None,
            })
            .collect()
    }

    /// Keys of this instance's records that belong to no checkpoint: those of a name
    /// without any manifest record (a write that failed or crashed before its manifest),
    /// and those a usable manifest does not list. Records of a name whose manifest is
    /// corrupt or in an unknown layout are never orphans.
    pub(super) fn orphan_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, keys) in &self.segment_keys {
            let listed: BTreeSet<&str> = match self.manifests.get(name) {
                None => BTreeSet::new(),
                Some(Indexed {
                    manifest: Ok(m), ..
                }) => m.segments.iter().map(|s| s.key.as_str()).collect(),
                Some(_) => continue,
            };
            out.extend(
                keys.iter()
                    .filter(|k| !listed.contains(k.as_str()))
                    .cloned(),
            );
        }
        out
    }

    /// The keys to tombstone to delete checkpoint `name`: its manifest first, then its
    /// records, all under this instance's `{instance}/{name}` and nothing else.
    pub(super) fn keys_of(&self, name: &str) -> Vec<String> {
        let own = format!("{}{name}/", self.prefix);
        let mut keys = Vec::new();
        if self.manifests.contains_key(name) {
            keys.push(format!("{}{name}", self.prefix));
        }
        let mut seen = BTreeSet::new();
        let listed = self.manifest(name).map(|m| m.segments.as_slice());
        for s in listed.unwrap_or_default() {
            if s.key.starts_with(&own) && seen.insert(s.key.clone()) {
                keys.push(s.key.clone());
            }
        }
        if let Some(loose) = self.segment_keys.get(name) {
            keys.extend(loose.iter().filter(|k| !seen.contains(*k)).cloned());
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::super::manifest::{hex, MANIFEST_FORMAT};
    use super::super::Segment;
    use super::*;

    const A: &str = "checkpoint_20241201_140000_123-000001.json";
    const B: &str = "checkpoint_20241201_140000_123-000002.json";

    fn manifest(name: &str, version: u32, keys: &[String]) -> Vec<u8> {
        let m = Manifest {
            format: MANIFEST_FORMAT.into(),
            version,
            checkpoint: name.into(),
            size: keys.len() as u64,
            crc32: hex(crc32fast::hash(&vec![b'x'; keys.len()])),
            writer: "w".into(),
            segments: keys
                .iter()
                .enumerate()
                .map(|(i, k)| Segment {
                    key: k.clone(),
                    label: "_envelope".into(),
                    offset: i as i64,
                    start: i as u64,
                    len: 1,
                    crc32: hex(crc32fast::hash(b"x")),
                })
                .collect(),
        };
        serde_json::to_vec(&m).unwrap()
    }

    fn put(ix: &mut Index, key: &str, value: &[u8]) {
        ix.apply(Some(key.as_bytes()), Some(value), 0);
    }

    #[test]
    fn records_of_a_newer_layout_are_left_alone_and_reported() {
        let mut ix = Index::new("app");
        let b_keys = [format!("app/{B}/_envelope/0"), format!("app/{B}/s/0")];
        for k in &b_keys {
            put(&mut ix, k, b"x");
        }
        // A version-2 manifest whose body this build cannot read at all.
        put(
            &mut ix,
            &format!("app/{B}"),
            br#"{"format":"simplestream-kafka-manifest","version":2,"chunks":[]}"#,
        );
        // A checkpoint without a manifest: its record is an orphan.
        put(&mut ix, &format!("app/{A}/_envelope/0"), b"x");
        assert_eq!(ix.orphan_keys(), vec![format!("app/{A}/_envelope/0")]);
        assert!(ix.is_foreign(B));
        assert!(ix.list().is_empty(), "{:?}", ix.list());
        let notes = ix.left_alone();
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains(B) && notes[0].contains("version 2"),
            "{notes:?}"
        );
    }

    #[test]
    fn records_of_a_corrupt_manifest_are_not_orphans() {
        let mut ix = Index::new("app");
        put(&mut ix, &format!("app/{A}/_envelope/0"), b"x");
        put(&mut ix, &format!("app/{A}"), b"{not json");
        assert!(ix.orphan_keys().is_empty());
        assert_eq!(ix.list().len(), 1, "listed, so the tools report it");
    }

    #[test]
    fn deletion_keys_stay_under_the_checkpoints_own_prefix() {
        let mut ix = Index::new("app");
        let own = format!("app/{A}/_envelope/0");
        put(&mut ix, &own, b"x");
        put(
            &mut ix,
            &format!("app/{A}"),
            &manifest(A, 1, std::slice::from_ref(&own)),
        );
        assert_eq!(ix.keys_of(A), vec![format!("app/{A}"), own.clone()]);
        // A manifest that lists another instance's (or checkpoint's) records is corrupt,
        // and deleting it touches only its own keys.
        let foreign = [
            format!("other/{B}/_envelope/0"),
            format!("app/{A}/_envelope/0"),
        ];
        put(&mut ix, &format!("app/{B}"), &manifest(B, 1, &foreign));
        assert!(ix.manifest(B).is_none());
        assert_eq!(ix.keys_of(B), vec![format!("app/{B}")]);
    }

    #[test]
    fn other_instances_and_odd_keys_are_ignored() {
        let mut ix = Index::new("app");
        put(&mut ix, "application/latest", b"no");
        put(&mut ix, "other/latest", b"no");
        ix.apply(Some(&[b'a', b'p', b'p', b'/', 0xff]), Some(b"x"), 0);
        ix.apply(None, Some(b"x"), 0);
        assert!(ix.latest.is_none() && ix.manifests.is_empty() && ix.segment_keys.is_empty());
        put(&mut ix, "app/latest", b"yes");
        assert_eq!(ix.latest.as_deref(), Some(&b"yes"[..]));
    }

    proptest::proptest! {
        #[test]
        fn any_records_are_indexed_without_panic(
            records in proptest::collection::vec(
                (
                    proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)),
                    proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)),
                ),
                0..40,
            ),
        ) {
            let mut ix = Index::new("app");
            for (i, (k, v)) in records.iter().enumerate() {
                // Half the keys under the instance, so they reach the parsers.
                let key = k.as_ref().map(|k| {
                    if i % 2 == 0 { [b"app/".as_slice(), k].concat() } else { k.clone() }
                });
                ix.apply(key.as_deref(), v.as_deref(), i as i64);
            }
            for k in ix.orphan_keys() {
                proptest::prop_assert!(k.starts_with("app/"));
            }
            for name in ix.manifests.keys() {
                for k in ix.keys_of(name) {
                    proptest::prop_assert!(k.starts_with(&format!("app/{name}")), "{}", k);
                }
            }
            let _ = (ix.list(), ix.left_alone());
        }
    }
}
