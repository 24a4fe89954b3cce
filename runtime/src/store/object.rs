//! [`ObjectStoreBackend`]: checkpoints in S3-compatible object storage, Google Cloud
//! Storage or Azure Blob Storage, through the `object_store` crate.
//!
//! Layout, as in the article, under the URL's prefix:
//!
//! ```text
//! s3://bucket/prefix/checkpoints/app-instance-1/checkpoint_20241201_140000_123-000042.json
//! s3://bucket/prefix/checkpoints/app-instance-1/latest.json
//! ```
//!
//! Guarantees:
//! - a checkpoint object is written with one PUT, so it is complete or absent, and
//!   create-only (`If-None-Match: *`): a second writer can never overwrite it;
//! - `latest.json` is replaced only if it is still the version this store last read or
//!   wrote (`If-Match: <ETag>`, or create-only when there was none). If another process
//!   wrote it in between, the write fails with [`StoreErrorKind::Conflict`] and changes
//!   nothing: of two writers on one instance, the one that writes second loses, loudly;
//! - transient failures (connection refused or reset, 5xx, throttling) are retried with
//!   exponential backoff for up to [`RETRY_TIMEOUT`]; a write that still fails leaves the
//!   previous checkpoint and `latest.json` as they were.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig,
    UpdateVersion,
};

use super::{
    validate_checkpoint_name, validate_instance, CheckpointStore, StoreError, StoreErrorKind,
    StoredEntry,
};

/// How long a request is retried before the error is reported.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: &str = "5s";
const REQUEST_TIMEOUT: &str = "120s";

/// Checkpoints of one instance in an object store (`s3://`, `gs://`, `az://`, `memory://`).
///
/// ```
/// use simplestream_runtime::store::{CheckpointStore, ObjectStoreBackend};
/// // `memory://` is an in-process object store: the same code path as S3, for tests.
/// let mut s = ObjectStoreBackend::open("memory:///demo", "app-instance-1").unwrap();
/// s.put("checkpoint_a.json", b"{}").unwrap();
/// s.put_latest(br#"{"file":"checkpoint_a.json"}"#).unwrap();
/// assert_eq!(s.location(), "memory:///demo/checkpoints/app-instance-1");
/// assert_eq!(s.list().unwrap()[0].name, "checkpoint_a.json");
/// // Create-only: a name cannot be written again with other bytes (the same bytes
/// // again are a retried request that had succeeded, and are accepted).
/// assert!(s.put("checkpoint_a.json", b"{\"other\":1}").is_err());
/// assert!(s.put("checkpoint_a.json", b"{}").is_ok());
/// ```
pub struct ObjectStoreBackend {
    rt: tokio::runtime::Runtime,
    store: Arc<dyn ObjectStore>,
    /// `prefix/checkpoints/instance`.
    dir: Path,
    /// The URL of `dir`, for messages.
    location: String,
    /// The version of `latest.json` this writer started from (read at open) or last
    /// wrote itself; `None`: there was none. Reads never change it: a version another
    /// process wrote is never adopted, so its update can never be overwritten.
    latest_version: Option<UpdateVersion>,
    /// Set once another writer was detected: every later write fails.
    fenced: bool,
    /// Opened for inspection: every write fails.
    read_only: bool,
    /// The bytes this store last wrote to `latest.json` (to recognise its own write when
    /// a retried request already succeeded).
    latest_written: Option<Vec<u8>>,
}

impl std::fmt::Debug for ObjectStoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreBackend")
            .field("location", &self.location)
            .finish()
    }
}

impl ObjectStoreBackend {
    /// Opens the checkpoints of `instance` under `url` and checks that the store can be
    /// reached (the bucket exists, the credentials work) with one listing request.
    ///
    /// S3 settings come from the standard `AWS_*` variables (`AWS_ENDPOINT_URL`,
    /// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP=true`
    /// for a plain-HTTP server on loopback), GCS from `GOOGLE_*` (and
    /// `SERVICE_ACCOUNT`), Azure from `AZURE_*`.
    pub fn open(url: &str, instance: &str) -> Result<Self, StoreError> {
        Self::open_with(url, instance, &[])
    }

    /// [`open`](Self::open) with settings given in code, applied after the environment's:
    /// `object_store` configuration keys such as `aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `allow_http`, `timeout`.
    ///
    /// ```
    /// use simplestream_runtime::store::ObjectStoreBackend;
    /// let err = ObjectStoreBackend::open_with("s3://bucket/app", "i1", &[("no_such_key", "1")]).unwrap_err();
    /// assert!(err.to_string().contains("no_such_key"), "{err}");
    /// ```
    pub fn open_with(
        url: &str,
        instance: &str,
        options: &[(&str, &str)],
    ) -> Result<Self, StoreError> {
        validate_instance(instance)?;
        let invalid = |detail: String| {
            StoreError::new(
                StoreErrorKind::Invalid,
                "opening checkpoint store",
                url,
                detail,
            )
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(format!("not a URL ({e})")))?;
        let prefix = parsed.path().trim_matches('/').to_string();
        let (store, scheme): (Arc<dyn ObjectStore>, &str) = match parsed.scheme() {
            "s3" | "s3a" => (
                Arc::new(build_s3(url, options).map_err(|e| invalid(one_line(&e)))?),
                "s3",
            ),
            "gs" => (
                Arc::new(build_gcs(url, options).map_err(|e| invalid(one_line(&e)))?),
                "gs",
            ),
            "az" | "azure" | "abfs" | "abfss" => (
                Arc::new(build_azure(url, options).map_err(|e| invalid(one_line(&e)))?),
                "az",
            ),
            "memory" => (Arc::new(object_store::memory::InMemory::new()), "memory"),
            other => {
                return Err(invalid(format!(
                    "unknown scheme `{other}`: use s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or memory:///prefix"
                )))
            }
        };
        let host = parsed.host_str().unwrap_or("");
        let mut parts: Vec<&str> = Vec::new();
        if !prefix.is_empty() {
            parts.push(&prefix);
        }
        parts.extend(["checkpoints", instance]);
        let dir = Path::parse(parts.join("/"))
            .map_err(|e| invalid(format!("bad prefix {prefix:?}: {e}")))?;
        let location = format!("{scheme}://{host}/{dir}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Other,
                    "starting I/O runtime",
                    url,
                    e.to_string(),
                )
            })?;
        let mut s = ObjectStoreBackend {
            rt,
            store,
            dir,
            location,
            latest_version: None,
            latest_written: None,
            fenced: false,
            read_only: false,
        };
        // One request now, so a bad bucket, endpoint or credential is reported at start
        // and not at the first checkpoint.
        s.list_names().map_err(|e| StoreError {
            action: "opening checkpoint store".into(),
            ..e
        })?;
        // The version of latest.json this writer starts from: if another process moves
        // it from now on, this one's next update fails instead of overwriting it.
        s.latest_version = s.read_latest()?.1;
        Ok(s)
    }

    fn path(&self, name: &str) -> Path {
        self.dir.child(name)
    }

    fn err(&self, action: &str, name: &str, e: &object_store::Error) -> StoreError {
        let kind = match e {
            object_store::Error::NotFound { .. } => StoreErrorKind::NotFound,
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => StoreErrorKind::Conflict,
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => StoreErrorKind::Denied,
            _ if is_unreachable(e) => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Other,
        };
        let at = if name.is_empty() {
            self.location.clone()
        } else {
            format!("{}/{name}", self.location)
        };
        StoreError::new(kind, action, at, one_line(e))
    }

    fn list_names(&self) -> Result<Vec<StoredEntry>, StoreError> {
        use futures_util::TryStreamExt;
        let store = Arc::clone(&self.store);
        let dir = self.dir.clone();
        let metas: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(async move { store.list(Some(&dir)).try_collect().await })
            .map_err(|e| self.err("listing checkpoints in", "", &e))?;
        let mut out: Vec<StoredEntry> = metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                // Only direct children named like checkpoints.
                (m.location.prefix_match(&self.dir)?.count() == 1
                    && name.starts_with("checkpoint_"))
                .then_some(StoredEntry { name, size: m.size })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn put_opts(
        &self,
        path: &Path,
        bytes: &[u8],
        mode: PutMode,
    ) -> Result<object_store::PutResult, object_store::Error> {
        let store = Arc::clone(&self.store);
        let payload = PutPayload::from(bytes.to_vec());
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        let path = path.clone();
        self.rt
            .block_on(async move { store.put_opts(&path, payload, opts).await })
    }

    /// Reads an object of at most `limit` bytes (a bigger one is an error, not read).
    fn get_bytes(
        &self,
        path: &Path,
        limit: u64,
    ) -> Result<(Vec<u8>, UpdateVersion), object_store::Error> {
        let store = Arc::clone(&self.store);
        let path = path.clone();
        self.rt.block_on(async move {
            let r = store.get(&path).await?;
            if r.meta.size > limit {
                return Err(object_store::Error::Generic {
                    store: "simplestream",
                    source: format!(
                        "{} is {} bytes, more than the {limit} it may hold",
                        r.meta.location, r.meta.size
                    )
                    .into(),
                });
            }
            let version = UpdateVersion {
                e_tag: r.meta.e_tag.clone(),
                version: r.meta.version.clone(),
            };
            Ok((r.bytes().await?.to_vec(), version))
        })
    }

    /// Reads `latest.json` and its version.
    fn read_latest(&self) -> Result<(Option<Vec<u8>>, Option<UpdateVersion>), StoreError> {
        match self.get_bytes(&self.path(LATEST), MAX_LATEST_BYTES) {
            Ok((bytes, v)) => Ok((Some(bytes), Some(v))),
            Err(object_store::Error::NotFound { .. }) => Ok((None, None)),
            Err(e) => Err(self.err("reading", LATEST, &e)),
        }
    }

    /// This store, refusing every write with [`StoreErrorKind::Denied`] (for inspection).
    pub fn into_read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    fn check_fenced(&self, action: &str) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::new(
                StoreErrorKind::Denied,
                action,
                &self.location,
                "the store was opened read-only (for inspection)",
            ));
        }
        if self.fenced {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                action,
                &self.location,
                "another process took over this instance; this one writes nothing more",
            ));
        }
        Ok(())
    }
}

const LATEST: &str = "latest.json";
/// Largest `latest.json` read: the record is a few hundred bytes.
const MAX_LATEST_BYTES: u64 = 1 << 20;

impl CheckpointStore for ObjectStoreBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        validate_checkpoint_name(name, "writing checkpoint", &self.location)?;
        self.check_fenced("writing checkpoint to")?;
        let path = self.path(name);
        match self.put_opts(&path, bytes, PutMode::Create) {
            Ok(_) => Ok(()),
            Err(e @ object_store::Error::AlreadyExists { .. }) => {
                // A retried request may have succeeded the first time: then the object
                // holds exactly these bytes and all is well.
                match self.get_bytes(&path, bytes.len() as u64) {
                    Ok((existing, _)) if existing == bytes => Ok(()),
                    _ => Err(StoreError {
                        detail: format!(
                            "{} already exists and holds other bytes: another process is writing this instance (create-only write refused)",
                            name
                        ),
                        ..self.err("writing checkpoint", name, &e)
                    }),
                }
            }
            Err(e) => Err(self.err("writing checkpoint", name, &e)),
        }
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        validate_checkpoint_name(name, "reading checkpoint", &self.location)?;
        self.get_bytes(&self.path(name), u64::MAX)
            .map(|(b, _)| b)
            .map_err(|e| self.err("reading checkpoint", name, &e))
    }

    fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        self.list_names()
    }

    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        validate_checkpoint_name(name, "deleting checkpoint", &self.location)?;
        self.check_fenced("deleting checkpoint in")?;
        let store = Arc::clone(&self.store);
        let path = self.path(name);
        match self.rt.block_on(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("deleting checkpoint", name, &e)),
        }
    }

    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.check_fenced("updating latest.json in")?;
        let mode = match self.latest_version.clone() {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        let path = self.path(LATEST);
        match self.put_opts(&path, bytes, mode) {
            Ok(r) => {
                self.latest_version = Some(UpdateVersion {
                    e_tag: r.e_tag,
                    version: r.version,
                });
                self.latest_written = Some(bytes.to_vec());
                Ok(())
            }
            Err(
                e @ (object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }),
            ) => {
                // latest.json changed since this writer last saw it. If it holds what we
                // just wrote, our own retried request did it; otherwise another writer.
                let (now, version) = self.read_latest()?;
                if now.as_deref() == Some(bytes) {
                    self.latest_version = version;
                    self.latest_written = Some(bytes.to_vec());
                    return Ok(());
                }
                self.fenced = true;
                Err(StoreError {
                    detail: "latest.json was changed by another process since this one last wrote it: two processes are writing this instance; this one stops writing so they do not interleave".into(),
                    ..self.err("updating", LATEST, &e)
                })
            }
            Err(e) => Err(self.err("updating", LATEST, &e)),
        }
    }

    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_latest().map(|(b, _)| b)
    }
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 6,
        retry_timeout: RETRY_TIMEOUT,
    }
}

/// Settings from the environment variables starting with `prefix` that the builder
/// knows (as the builders' own `from_env` do), then `options`; both after our timeouts,
/// so the user's win. An unknown key in `options` is an error.
fn config<K: std::str::FromStr<Err = object_store::Error>>(
    prefix: &str,
    options: &[(&str, &str)],
) -> object_store::Result<Vec<(K, String)>> {
    let mut out: Vec<(K, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with(prefix))
        .filter_map(|(k, v)| Some((k.to_ascii_lowercase().parse().ok()?, v)))
        .collect();
    for (k, v) in options {
        out.push((k.to_ascii_lowercase().parse()?, v.to_string()));
    }
    Ok(out)
}

fn build_s3(
    url: &str,
    options: &[(&str, &str)],
) -> object_store::Result<object_store::aws::AmazonS3> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as K};
    let mut b = AmazonS3Builder::new()
        .with_config(K::Client(ClientConfigKey::ConnectTimeout), CONNECT_TIMEOUT)
        .with_config(K::Client(ClientConfigKey::Timeout), REQUEST_TIMEOUT)
        .with_retry(retry());
    for (k, v) in config::<K>("AWS_", options)? {
        b = b.with_config(k, v);
    }
    b.with_url(url).build()
}

fn build_gcs(
    url: &str,
    options: &[(&str, &str)],
) -> object_store::Result<object_store::gcp::GoogleCloudStorage> {
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey as K};
    let mut b = GoogleCloudStorageBuilder::new()
        .with_config(K::Client(ClientConfigKey::ConnectTimeout), CONNECT_TIMEOUT)
        .with_config(K::Client(ClientConfigKey::Timeout), REQUEST_TIMEOUT)
        .with_retry(retry());
    if let Ok(p) = std::env::var("SERVICE_ACCOUNT") {
        b = b.with_service_account_path(p);
    }
    for (k, v) in config::<K>("GOOGLE_", options)? {
        b = b.with_config(k, v);
    }
    b.with_url(url).build()
}

fn build_azure(
    url: &str,
    options: &[(&str, &str)],
) -> object_store::Result<object_store::azure::MicrosoftAzure> {
    use object_store::azure::{AzureConfigKey as K, MicrosoftAzureBuilder};
    let mut b = MicrosoftAzureBuilder::new()
        .with_config(K::Client(ClientConfigKey::ConnectTimeout), CONNECT_TIMEOUT)
        .with_config(K::Client(ClientConfigKey::Timeout), REQUEST_TIMEOUT)
        .with_retry(retry());
    for (k, v) in config::<K>("AZURE_", options)? {
        b = b.with_config(k, v);
    }
    b.with_url(url).build()
}

/// True if the error chain says the server could not be reached at all.
fn is_unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::TimedOut
                    | K::HostUnreachable
                    | K::NetworkUnreachable
            ) {
                return true;
            }
        }
        let s = c.to_string();
        if s.contains("error sending request")
            || s.contains("operation timed out")
            || s.contains("dns error")
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// One readable line from an `object_store` error: the innermost message that says what
/// happened, without the stack of wrappers (`Generic S3 error: ... Error after 6 retries
/// in 15s, max_retries:6, retry_timeout:15s, source: ...`).
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msgs = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        msgs.push(c.to_string());
        cur = c.source();
    }
    let text = msgs.join(": ");
    // S3 error bodies carry a code and message: the most useful part.
    if let Some(code) = between(&text, "<Code>", "</Code>") {
        let msg = between(&text, "<Message>", "</Message>").unwrap_or_default();
        let hint = match code.as_str() {
            "NoSuchBucket" => " (create the bucket, or fix the URL)",
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                " (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            }
            "AccessDenied" => " (the credentials lack permission for this bucket or prefix)",
            _ => "",
        };
        return format!("{code}: {msg}{hint}");
    }
    if text.contains("169.254.169.254") || text.contains("metadata") && text.contains("credential")
    {
        return "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (no instance metadata service answered either)".into();
    }
    if text.contains("builder error") {
        return format!(
            "the request could not be built ({}); a plain http:// endpoint needs AWS_ALLOW_HTTP=true",
            msgs.last().cloned().unwrap_or_default()
        );
    }
    if is_unreachable(e) {
        let innermost = msgs.last().cloned().unwrap_or_default();
        return format!(
            "cannot reach the server ({innermost}); check the endpoint (AWS_ENDPOINT_URL for S3) and that the server is running"
        );
    }
    // Otherwise the outermost message, trimmed of its repeated sources.
    let first = msgs.first().cloned().unwrap_or_default();
    match msgs.get(1) {
        Some(src) if !first.contains(src.as_str()) => format!("{first}: {src}"),
        _ => first,
    }
}

fn between(s: &str, a: &str, b: &str) -> Option<String> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(s[i..j].to_string())
}
