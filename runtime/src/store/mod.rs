//! Where checkpoints are kept: the [`CheckpointStore`] trait and its implementations.
//!
//! A store holds the checkpoints of one instance: named blobs plus one small `latest`
//! record. It knows nothing of pipelines, codecs or retention; the
//! [`Coordinator`](crate::Coordinator) decides names, what `latest` says and what to
//! delete. The trait is synchronous and needs no threads, so a browser's localStorage can
//! implement it as well as a file system.

use std::fmt;

pub use crate::codec::StageSpan;

mod memory;
pub use memory::MemoryStore;

mod stream;
pub use stream::PutStream;
pub(crate) use stream::{past_end, read_chunks};

#[cfg(feature = "native")]
mod file;
#[cfg(feature = "native")]
pub(crate) mod safe_fs;
#[cfg(feature = "native")]
pub use file::{FileStore, FileStoreOptions};

#[cfg(feature = "object-store")]
mod object;
#[cfg(feature = "object-store")]
pub use object::ObjectStoreBackend;

#[cfg(feature = "kafka")]
pub(crate) mod kafka;
#[cfg(feature = "kafka")]
pub use kafka::{KafkaStats, KafkaStore, KafkaStoreOptions, Manifest, Segment};

/// One stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its name, e.g. `checkpoint_20241201_140000_123-000042.json`.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Storage for one instance's checkpoints.
///
/// ```
/// use simplestream_runtime::store::{CheckpointStore, MemoryStore};
/// let mut s = MemoryStore::new();
/// s.put("checkpoint_a.json", b"{}").unwrap();
/// s.put_latest(b"{\"file\":\"checkpoint_a.json\"}").unwrap();
/// assert_eq!(s.get("checkpoint_a.json").unwrap(), b"{}");
/// assert_eq!(s.list().unwrap().len(), 1);
/// ```
pub trait CheckpointStore {
    /// Where the checkpoints are, for messages (a path, a URL, a key prefix).
    fn location(&self) -> String;
    /// Stores a checkpoint durably and atomically: after `Ok`, it survives a crash; on
    /// `Err`, no partial checkpoint is visible under `name`.
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// [`put`](Self::put), told where each stage's state lies in `bytes` (in order, not
    /// overlapping). Stores that keep stages apart (a Kafka topic keyed by stage) use
    /// the spans; the others store `bytes` whole, which is the default. [`get`](Self::get)
    /// gives back exactly `bytes` either way.
    fn put_staged(
        &mut self,
        name: &str,
        bytes: &[u8],
        stages: &[StageSpan],
    ) -> Result<(), StoreError> {
        let _ = stages;
        self.put(name, bytes)
    }
    /// A checkpoint written in pieces: `name` holds what was written once the stream is
    /// committed, exactly as [`put_staged`](Self::put_staged) would store it. The
    /// default gathers the pieces in memory; the file store writes them to disk as
    /// they come.
    fn put_stream(&mut self, name: &str) -> Result<Box<dyn PutStream + '_>, StoreError> {
        validate_checkpoint_name(name, "writing checkpoint", self.location())?;
        Ok(Box::new(stream::Buffered {
            store: self,
            name: name.to_string(),
            bytes: Vec::new(),
        }))
    }
    /// Reads a checkpoint.
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError>;
    /// The length and CRC-32 of a checkpoint's bytes. The default reads them whole; the
    /// file store reads a chunk at a time (a checkpoint of a state larger than memory).
    fn checksum(&self, name: &str) -> Result<(u64, u32), StoreError> {
        let bytes = self.get(name)?;
        Ok((bytes.len() as u64, crc32fast::hash(&bytes)))
    }
    /// Every checkpoint (not `latest`), sorted by name, oldest first.
    fn list(&self) -> Result<Vec<StoredEntry>, StoreError>;
    /// Deletes a checkpoint; deleting a missing one is not an error.
    fn delete(&mut self, name: &str) -> Result<(), StoreError>;
    /// Replaces the `latest` record durably and atomically.
    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError>;
    /// Reads the `latest` record, `None` if there is none.
    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Checkpoints this store found but leaves alone (written in a layout a newer
    /// version uses), one message each: they are in no listing and never deleted.
    fn left_alone(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<S: CheckpointStore + ?Sized> CheckpointStore for Box<S> {
    fn location(&self) -> String {
        (**self).location()
    }
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        (**self).put(name, bytes)
    }
    fn put_staged(
        &mut self,
        name: &str,
        bytes: &[u8],
        stages: &[StageSpan],
    ) -> Result<(), StoreError> {
        (**self).put_staged(name, bytes, stages)
    }
    fn put_stream(&mut self, name: &str) -> Result<Box<dyn PutStream + '_>, StoreError> {
        (**self).put_stream(name)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        (**self).get(name)
    }
    fn checksum(&self, name: &str) -> Result<(u64, u32), StoreError> {
        (**self).checksum(name)
    }
    fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        (**self).list()
    }
    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        (**self).delete(name)
    }
    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        (**self).put_latest(bytes)
    }
    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get_latest()
    }
    fn left_alone(&self) -> Vec<String> {
        (**self).left_alone()
    }
}

/// What kind of failure a store had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// No such checkpoint.
    NotFound,
    /// The store is full (disk full, browser quota).
    Full,
    /// Not allowed (permissions, read-only).
    Denied,
    /// Another writer holds the instance.
    Locked,
    /// Bad configuration (instance name, path, URL).
    Invalid,
    /// Another writer changed the instance since this one last looked (a conditional
    /// write lost): two processes are writing one instance.
    Conflict,
    /// The store could not be reached (network, server down); retrying may help.
    Unavailable,
    /// Anything else.
    Other,
}

/// A store failure: what was being done, where, and the underlying error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// Kind of failure.
    pub kind: StoreErrorKind,
    /// What was being done, e.g. `writing checkpoint`.
    pub action: String,
    /// Path, key or URL.
    pub location: String,
    /// The underlying error's message (e.g. the OS error).
    pub detail: String,
}

impl StoreError {
    /// A new error.
    pub fn new(
        kind: StoreErrorKind,
        action: impl Into<String>,
        location: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        StoreError {
            kind,
            action: action.into(),
            location: redact_urls(&location.into()),
            detail: redact_urls(&detail.into()),
        }
    }

    /// From an I/O error, classifying it.
    pub fn io(action: impl Into<String>, location: impl Into<String>, e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => StoreErrorKind::NotFound,
            K::PermissionDenied | K::ReadOnlyFilesystem => StoreErrorKind::Denied,
            K::StorageFull | K::QuotaExceeded => StoreErrorKind::Full,
            _ => StoreErrorKind::Other,
        };
        StoreError::new(kind, action, location, e.to_string())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.action, self.location, self.detail)
    }
}

impl std::error::Error for StoreError {}

/// `text` with the credentials and query strings of the URLs in it replaced by `***`,
/// for messages and logs: `kafka://user:secret@host:9092/t` becomes
/// `kafka://***@host:9092/t`, `s3://b/p?token=x` becomes `s3://b/p?***`.
///
/// ```
/// use simplestream_runtime::store::redact_urls;
/// assert_eq!(redact_urls("at kafka://u:pw@h:1,v:pw2@g:2/t: refused"), "at kafka://***@h:1,***@g:2/t: refused");
/// assert_eq!(redact_urls("s3://b/p?sig=abc&x=1 failed"), "s3://b/p?*** failed");
/// assert_eq!(redact_urls("/plain/path?x"), "/plain/path?x");
/// ```
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest.find(url_end).unwrap_or(rest.len());
        let (url, after) = rest.split_at(end);
        let (authority, path) = url.split_at(url.find('/').unwrap_or(url.len()));
        let hosts: Vec<&str> = authority
            .split(',')
            .map(|h| h.rsplit_once('@').map_or(h, |(_, host)| host))
            .collect();
        let redacted = authority.split(',').map(|h| h.contains('@'));
        for (n, (host, had_user)) in hosts.iter().zip(redacted).enumerate() {
            if n > 0 {
                out.push(',');
            }
            if had_user {
                out.push_str("***@");
            }
            out.push_str(host);
        }
        match path.split_once('?') {
            Some((p, _)) => {
                out.push_str(p);
                out.push_str("?***");
            }
            None => out.push_str(path),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Where a URL ends inside a message.
fn url_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | ']')
}

/// Checks an instance name: it becomes a directory or key prefix, so it must not escape.
///
/// ```
/// use simplestream_runtime::store::validate_instance;
/// assert!(validate_instance("app-instance-1").is_ok());
/// for bad in ["", "..", "a/b", "a\\b", "x\n", &"a".repeat(200)] {
///     assert!(validate_instance(bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn validate_instance(name: &str) -> Result<(), StoreError> {
    let bad = |why: &str| {
        Err(StoreError::new(
            StoreErrorKind::Invalid,
            "checking instance name",
            format!("{name:?}"),
            format!("{why}; use letters, digits, `-`, `_` and `.` (e.g. `app-instance-1`)"),
        ))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 128 {
        return bad("it is longer than 128 bytes");
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return bad("it must not start with `.`");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return bad(&format!("it contains {c:?}"));
    }
    Ok(())
}

/// Checks a checkpoint name for every store: it becomes a file name, an object key or a
/// Kafka key segment, so it must be one plain component that names no store record.
/// `action` and `location` go into the error.
///
/// ```
/// use simplestream_runtime::store::validate_checkpoint_name;
/// assert!(validate_checkpoint_name("checkpoint_20241201_140000_123-000042.json", "writing", "x").is_ok());
/// for bad in ["", "a/b", "a\\b", "..", ".hidden", "latest", "latest.json", "x.tmp", "a\nb"] {
///     assert!(validate_checkpoint_name(bad, "writing", "x").is_err(), "{bad:?}");
/// }
/// ```
pub fn validate_checkpoint_name(
    name: &str,
    action: &str,
    location: impl fmt::Display,
) -> Result<(), StoreError> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_BYTES {
        "it is longer than 200 bytes"
    } else if name.contains(['/', '\\']) {
        "it contains a path separator"
    } else if name.starts_with('.') {
        "it starts with `.`"
    } else if name == "latest" || name == "latest.json" {
        "`latest` is the latest record, not a checkpoint"
    } else if name.ends_with(".tmp") {
        "names ending in `.tmp` are temporary files"
    } else if name.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(StoreError::new(
        StoreErrorKind::Invalid,
        action,
        format!("{name:?} in {location}"),
        format!("not a valid checkpoint name: {why}"),
    ))
}

/// Longest checkpoint name: a file name on every common file system, with room for the
/// file store's temporary prefix and suffix.
const MAX_NAME_BYTES: usize = 200;

/// Where checkpoints go, as given to `--checkpoint-store`.
///
/// ```
/// use simplestream_runtime::store::StoreUrl;
/// assert_eq!(StoreUrl::parse("file:///var/ckpt").unwrap(), StoreUrl::File("/var/ckpt".into()));
/// assert_eq!(StoreUrl::parse("./ckpt").unwrap(), StoreUrl::File("./ckpt".into()));
/// assert!(matches!(StoreUrl::parse("s3://bucket/app").unwrap(), StoreUrl::Object(_)));
/// assert_eq!(
///     StoreUrl::parse("kafka://127.0.0.1:9092/app-checkpoints").unwrap(),
///     StoreUrl::Kafka { brokers: "127.0.0.1:9092".into(), topic: "app-checkpoints".into() }
/// );
/// assert!(StoreUrl::parse("kafka://127.0.0.1:9092").is_err(), "the topic is required");
/// assert!(StoreUrl::parse("ftp://x/y").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `file:///path` or a plain path: a [`FileStore`] directory.
    File(std::path::PathBuf),
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// `memory:///prefix`: an object store.
    Object(String),
    /// `kafka://host:port[,host:port]/topic`: a compacted Kafka topic.
    Kafka {
        /// Bootstrap brokers, `host:port` separated by commas.
        brokers: String,
        /// The topic.
        topic: String,
    },
}

impl fmt::Display for StoreUrl {
    /// The URL for messages, credentials and query strings redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::File(p) => write!(f, "{}", p.display()),
            StoreUrl::Object(url) => f.write_str(&redact_urls(url)),
            StoreUrl::Kafka { brokers, topic } => {
                f.write_str(&redact_urls(&format!("kafka://{brokers}/{topic}")))
            }
        }
    }
}

impl StoreUrl {
    /// Parses a store URL (a string without `scheme://` is a file path).
    pub fn parse(s: &str) -> Result<StoreUrl, StoreError> {
        let bad =
            |why: String| StoreError::new(StoreErrorKind::Invalid, "parsing store URL", s, why);
        let Some((scheme, rest)) = s.split_once("://") else {
            if s.is_empty() {
                return Err(bad("it is empty".into()));
            }
            return Ok(StoreUrl::File(s.into()));
        };
        match scheme {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(bad("a file URL needs an absolute path: file:///path/to/dir".into()));
                }
                Ok(StoreUrl::File(rest.into()))
            }
            "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "memory" => {
                if scheme != "memory" && rest.split('/').next().unwrap_or("").is_empty() {
                    return Err(bad(format!("no bucket: use {scheme}://bucket/prefix")));
                }
                Ok(StoreUrl::Object(s.to_string()))
            }
            "kafka" => {
                let (brokers, topic) = rest.split_once('/').unwrap_or((rest, ""));
                if brokers.contains('@') {
                    return Err(bad("credentials in a kafka:// URL are not supported: this client connects without SASL or TLS; use kafka://host:port/topic".into()));
                }
                let topic = topic.trim_end_matches('/');
                if brokers.is_empty() || topic.is_empty() || topic.contains('/') {
                    return Err(bad("use kafka://host:port/topic (e.g. kafka://127.0.0.1:9092/app-checkpoints)".into()));
                }
                for b in brokers.split(',') {
                    let port = b.rsplit_once(':').map(|(_, p)| p);
                    if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                        return Err(bad(format!("broker `{b}` is not host:port")));
                    }
                }
                Ok(StoreUrl::Kafka {
                    brokers: brokers.to_string(),
                    topic: topic.to_string(),
                })
            }
            other => Err(bad(format!(
                "unknown scheme `{other}`: use file:///dir, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or kafka://host:port/topic"
            ))),
        }
    }

    /// Opens the checkpoints of `instance` here (file stores take the lock, unless
    /// `read_only`). Remote stores check at once that they can be reached. A read-only
    /// store creates nothing (no directory, topic or object) and refuses every write.
    #[cfg(feature = "native")]
    pub fn open(
        &self,
        instance: &str,
        read_only: bool,
    ) -> Result<Box<dyn CheckpointStore + Send>, StoreError> {
        match self {
            StoreUrl::File(dir) => Ok(Box::new(FileStore::open(
                dir,
                instance,
                FileStoreOptions { read_only },
            )?)),
            #[cfg(feature = "object-store")]
            StoreUrl::Object(url) => {
                let store = ObjectStoreBackend::open(url, instance)?;
                Ok(Box::new(if read_only { store.into_read_only() } else { store }))
            }
            #[cfg(feature = "kafka")]
            StoreUrl::Kafka { brokers, topic } => {
                let options = KafkaStoreOptions {
                    read_only,
                    ..KafkaStoreOptions::default()
                };
                Ok(Box::new(KafkaStore::open_with(brokers, topic, instance, options)?))
            }
            #[allow(unreachable_patterns)]
            other => Err(StoreError::new(
                StoreErrorKind::Invalid,
                "opening checkpoint store",
                other.to_string(),
                "this build has no support for it (enable the `object-store` or `kafka` feature of simplestream)",
            )),
        }
    }
}
