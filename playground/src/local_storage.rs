//! [`LocalStorageStore`]: the runtime's [`CheckpointStore`] over the browser's
//! `window.localStorage`.
//!
//! Keys mirror the file store's layout:
//!
//! ```text
//! simplestream/checkpoints/<instance>/checkpoint_20241201_140000_123-000042.json
//! simplestream/checkpoints/<instance>/latest.json
//! ```
//!
//! localStorage holds text only. A JSON checkpoint is stored as its text, readable in the
//! browser's developer tools; anything else (binary checkpoints) is stored as `base64:`
//! followed by standard base64 with padding.
//!
//! One `setItem` replaces a value whole or not at all, so a write is atomic. Browsers
//! allow about 5 MB per origin; when a write fails with `QuotaExceededError`, the store
//! deletes older checkpoints (never the one `latest.json` points to, nor the one being
//! written, nor the newest checkpoint that verifies) and retries once. If it still does not fit, the write fails with
//! [`StoreErrorKind::Full`] and a message saying so; the previous checkpoint and
//! `latest.json` are untouched, so they stay valid.

use simplestream::store::{
    validate_checkpoint_name, validate_instance, StoreError, StoreErrorKind, StoredEntry,
};
use simplestream::{CheckpointStore, Codec};
use wasm_bindgen::JsCast;
use web_sys::Storage;

use crate::b64;
use crate::lab::PlayStore;
use crate::prune::{self, Checkpoints};

/// Prefix of values stored as base64.
pub const BASE64_PREFIX: &str = "base64:";
const LATEST: &str = "latest.json";

/// A checkpoint store in `window.localStorage` (see the module docs for the layout).
#[derive(Clone)]
pub struct LocalStorageStore {
    instance: String,
    storage: Storage,
    notes: Vec<String>,
}

impl std::fmt::Debug for LocalStorageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStorageStore")
            .field("instance", &self.instance)
            .finish()
    }
}

/// Why a `setItem` failed.
enum SetError {
    Quota(String),
    Other(String),
}

fn js_detail(e: &wasm_bindgen::JsValue) -> (bool, String) {
    if let Some(d) = e.dyn_ref::<web_sys::DomException>() {
        let quota = d.name() == "QuotaExceededError" || d.code() == 22;
        return (quota, format!("{}: {}", d.name(), d.message()));
    }
    (false, format!("{e:?}"))
}

/// How bytes are kept as text: JSON (any UTF-8 not starting with the prefix) as itself,
/// everything else as `base64:...`.
///
/// (`tests/web.rs` checks both ways in the browser.)
pub fn to_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.starts_with(BASE64_PREFIX) && !s.contains('\0') => s.to_string(),
        _ => format!("{BASE64_PREFIX}{}", b64::encode(bytes)),
    }
}

/// The bytes a stored text stands for.
pub fn from_text(text: &str) -> Result<Vec<u8>, String> {
    match text.strip_prefix(BASE64_PREFIX) {
        Some(b) => b64::decode(b),
        None => Ok(text.as_bytes().to_vec()),
    }
}

/// The byte length of a stored text's value, without decoding it.
fn stored_len(text: &str) -> u64 {
    match text.strip_prefix(BASE64_PREFIX) {
        Some(b) => {
            let pad = b.bytes().rev().take_while(|&c| c == b'=').count();
            (b.len() / 4 * 3).saturating_sub(pad) as u64
        }
        None => text.len() as u64,
    }
}

impl LocalStorageStore {
    /// The store of `instance` in this page's localStorage.
    pub fn new(instance: &str) -> Result<Self, StoreError> {
        let storage = web_sys::window()
            .ok_or("no window (not in a browser page)".to_string())
            .and_then(|w| {
                w.local_storage()
                    .map_err(|e| js_detail(&e).1)
                    .and_then(|s| s.ok_or_else(|| "localStorage is disabled".to_string()))
            })
            .map_err(|detail| {
                StoreError::new(
                    StoreErrorKind::Denied,
                    "opening localStorage",
                    format!("instance {instance}"),
                    detail,
                )
            })?;
        Self::with_storage(instance, storage)
    }

    /// The store of `instance` in `storage` (e.g. `sessionStorage`).
    pub fn with_storage(instance: &str, storage: Storage) -> Result<Self, StoreError> {
        validate_instance(instance)?;
        Ok(LocalStorageStore {
            instance: instance.to_string(),
            storage,
            notes: Vec::new(),
        })
    }

    /// `simplestream/checkpoints/<instance>/`.
    pub fn prefix(&self) -> String {
        format!("simplestream/checkpoints/{}/", self.instance)
    }

    /// The key of checkpoint `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix())
    }

    /// The key of the `latest` record.
    pub fn latest_key(&self) -> String {
        self.key(LATEST)
    }

    /// The key of a side record (the playground's source and sink):
    /// `simplestream/playground/<instance>/<name>`.
    pub fn extra_key(&self, name: &str) -> String {
        format!("simplestream/playground/{}/{name}", self.instance)
    }

    /// Every key of this origin's localStorage.
    fn keys(&self) -> Vec<String> {
        let n = self.storage.length().unwrap_or(0);
        (0..n)
            .filter_map(|i| self.storage.key(i).ok().flatten())
            .collect()
    }

    /// Characters used by all keys and values of this origin (what the quota counts).
    pub fn used_chars(&self) -> u64 {
        self.keys()
            .iter()
            .map(|k| {
                let v = self.storage.get_item(k).ok().flatten().unwrap_or_default();
                (k.encode_utf16().count() + v.encode_utf16().count()) as u64
            })
            .sum()
    }

    fn check_name(&self, action: &str, name: &str) -> Result<(), StoreError> {
        validate_checkpoint_name(name, action, self.prefix())
    }

    fn set(&self, key: &str, value: &str) -> Result<(), SetError> {
        self.storage
            .set_item(key, value)
            .map_err(|e| match js_detail(&e) {
                (true, d) => SetError::Quota(d),
                (false, d) => SetError::Other(d),
            })
    }

    /// The checkpoint `latest.json` points to, if it can be read.
    fn latest_file(&self) -> Option<String> {
        let text = self.storage.get_item(&self.latest_key()).ok().flatten()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.get("file")?.as_str().map(str::to_string)
    }

    /// Deletes older checkpoints to make room (see [`prune::prune`] for which stay).
    fn prune(&mut self, keep: &[Option<String>]) -> Vec<String> {
        prune::prune(self, keep)
    }

    /// `setItem`, and on `QuotaExceededError` prune older checkpoints (keeping `keep`)
    /// and retry once.
    fn set_or_prune(
        &mut self,
        action: &str,
        key: &str,
        value: &str,
        keep: &[Option<String>],
    ) -> Result<(), StoreError> {
        let first = match self.set(key, value) {
            Ok(()) => return Ok(()),
            Err(SetError::Other(d)) => {
                return Err(StoreError::new(StoreErrorKind::Other, action, key, d))
            }
            Err(SetError::Quota(d)) => d,
        };
        let pruned = self.prune(keep);
        match self.set(key, value) {
            Ok(()) => {
                self.notes.push(format!(
                    "localStorage was full ({first}): deleted {} older checkpoint{} ({}) and wrote {key}",
                    pruned.len(),
                    if pruned.len() == 1 { "" } else { "s" },
                    pruned.join(", ")
                ));
                Ok(())
            }
            Err(SetError::Quota(d)) => Err(StoreError::new(
                StoreErrorKind::Full,
                action,
                key,
                format!(
                    "localStorage quota exceeded ({d}); browsers allow about 5 MB per origin. \
                     The value needs {} characters and this origin already uses {}; {} older checkpoint{} deleted and retried once",
                    value.len(),
                    self.used_chars(),
                    pruned.len(),
                    if pruned.len() == 1 { " was" } else { "s were" },
                ),
            )),
            Err(SetError::Other(d)) => Err(StoreError::new(StoreErrorKind::Other, action, key, d)),
        }
    }
}

impl Checkpoints for LocalStorageStore {
    fn names(&self) -> Vec<String> {
        self.list()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.name)
            .collect()
    }
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        self.get(name).ok()
    }
    fn remove(&mut self, name: &str) {
        let _ = self.storage.remove_item(&self.key(name));
    }
}

impl CheckpointStore for LocalStorageStore {
    fn location(&self) -> String {
        format!("localStorage {}", self.prefix())
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        const ACTION: &str = "writing checkpoint";
        self.check_name(ACTION, name)?;
        let keep = [self.latest_file(), Some(name.to_string())];
        self.set_or_prune(ACTION, &self.key(name), &to_text(bytes), &keep)
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        const ACTION: &str = "reading checkpoint";
        self.check_name(ACTION, name)?;
        let key = self.key(name);
        match self.storage.get_item(&key) {
            Ok(Some(text)) => from_text(&text).map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Other,
                    ACTION,
                    &key,
                    format!("the stored value is damaged: {e}"),
                )
            }),
            Ok(None) => Err(StoreError::new(
                StoreErrorKind::NotFound,
                ACTION,
                key,
                "no such checkpoint",
            )),
            Err(e) => Err(StoreError::new(
                StoreErrorKind::Other,
                ACTION,
                key,
                js_detail(&e).1,
            )),
        }
    }

    fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        let prefix = self.prefix();
        let mut out: Vec<StoredEntry> = self
            .keys()
            .into_iter()
            .filter_map(|k| {
                let name = k.strip_prefix(&prefix)?.to_string();
                let ok = name.starts_with("checkpoint_")
                    && (name.ends_with(".json") || name.ends_with(".bin"))
                    && !name.contains('/');
                if !ok {
                    return None;
                }
                let text = self.storage.get_item(&k).ok().flatten()?;
                Some(StoredEntry {
                    size: stored_len(&text),
                    name,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        const ACTION: &str = "deleting checkpoint";
        self.check_name(ACTION, name)?;
        let key = self.key(name);
        self.storage
            .remove_item(&key)
            .map_err(|e| StoreError::new(StoreErrorKind::Other, ACTION, key, js_detail(&e).1))
    }

    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let new_file = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v.get("file")?.as_str().map(str::to_string));
        let keep = [self.latest_file(), new_file];
        let key = self.latest_key();
        self.set_or_prune("writing latest record", &key, &to_text(bytes), &keep)
    }

    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.latest_key();
        match self.storage.get_item(&key) {
            Ok(Some(text)) => from_text(&text).map(Some).map_err(|e| {
                StoreError::new(StoreErrorKind::Other, "reading latest record", key, e)
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(StoreError::new(
                StoreErrorKind::Other,
                "reading latest record",
                key,
                js_detail(&e).1,
            )),
        }
    }
}

impl PlayStore for LocalStorageStore {
    fn get_extra(&self, key: &str) -> Option<String> {
        self.storage.get_item(&self.extra_key(key)).ok().flatten()
    }

    fn put_extra(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        let k = self.extra_key(key);
        match self.set(&k, value) {
            Ok(()) => Ok(()),
            Err(SetError::Quota(d)) => Err(StoreError::new(
                StoreErrorKind::Full,
                "writing",
                k,
                format!("localStorage quota exceeded ({d}); browsers allow about 5 MB per origin"),
            )),
            Err(SetError::Other(d)) => Err(StoreError::new(StoreErrorKind::Other, "writing", k, d)),
        }
    }

    fn clear_checkpoints(&mut self) -> Result<(), StoreError> {
        let prefix = self.prefix();
        for k in self.keys() {
            if k.starts_with(&prefix) {
                self.storage.remove_item(&k).map_err(|e| {
                    StoreError::new(StoreErrorKind::Other, "deleting", &k, js_detail(&e).1)
                })?;
            }
        }
        Ok(())
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn stored_as(&self, codec: Codec) -> &'static str {
        match codec {
            Codec::Json => "text",
            Codec::Binary => "base64 text",
        }
    }

    fn usage(&self) -> Option<String> {
        let chars = self.used_chars();
        let used = if chars < 100_000 {
            format!("{:.1} KB", chars as f64 / 1000.0)
        } else {
            format!("{:.2} MB", chars as f64 / 1_000_000.0)
        };
        Some(format!(
            "{used} of about 5 MB used by this site's localStorage"
        ))
    }
}
