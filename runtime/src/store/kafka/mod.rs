//! [`KafkaStore`]: checkpoints in a compacted Kafka topic, records keyed per stage.
//!
//! See [`KafkaStore`] for the record layout, the guarantees and their limits.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::{Record, RecordAndOffset};

use super::{
    redact_urls, validate_checkpoint_name, validate_instance, CheckpointStore, StageSpan,
    StoreError, StoreErrorKind, StoredEntry,
};

mod index;
mod manifest;
pub(crate) mod topic;
mod wire;

use index::Index;
use manifest::{assemble, hex, parse_manifest, segments, ManifestError, MAX_RECORD_BYTES};
pub use manifest::{Manifest, Segment, MANIFEST_FORMAT};
use topic::{create_compacted_topic, parse_brokers, preflight, validate_topic};

/// The topic of the article's example.
pub const DEFAULT_TOPIC: &str = "app-checkpoints";
/// Name of the header that tells which writer wrote a record.
pub const WRITER_HEADER: &str = "simplestream-writer";
/// Key suffix of the `latest` record.
const LATEST_KEY: &str = "latest";
/// Largest record value (Kafka's default `message.max.bytes` is about 1 MB).
pub const DEFAULT_CHUNK_BYTES: usize = 512 * 1024;
/// Largest produce batch, about: one chunk, or several small records.
const BATCH_BYTES: usize = 768 * 1024;
/// Bytes asked for by one fetch (more when a record is bigger).
const FETCH_BYTES: usize = 4 * 1024 * 1024;
/// How long a fetch may wait for data. Fetches only ask for offsets below the end, so
/// data is there at once; some brokers (tansu) answer nothing at all to a wait of 0.
const FETCH_WAIT_MS: i32 = 500;
/// Largest fetch tried when the broker returns nothing for a smaller one.
const MAX_FETCH_BYTES: usize = 64 * 1024 * 1024;

/// How a [`KafkaStore`] talks to the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaStoreOptions {
    /// Longest one request may take, reconnects included (default 5 s).
    pub timeout: Duration,
    /// Retries of a request after a transient failure, with a pause of 200 ms, 400 ms, …
    /// (default 2).
    pub retries: u32,
    /// Largest record value (default 512 KiB); bigger segments are cut into several
    /// records.
    pub chunk_bytes: usize,
    /// For inspection: create no topic (a missing one is [`StoreErrorKind::NotFound`])
    /// and refuse every write with [`StoreErrorKind::Denied`] (default false).
    pub read_only: bool,
}

impl Default for KafkaStoreOptions {
    fn default() -> Self {
        KafkaStoreOptions {
            timeout: Duration::from_secs(5),
            retries: 2,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            read_only: false,
        }
    }
}

/// Counters of what this store did, for measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KafkaStats {
    /// Records produced (data, manifests, `latest`, tombstones).
    pub records_written: u64,
    /// Value bytes produced.
    pub bytes_written: u64,
    /// Produce requests.
    pub produce_requests: u64,
    /// Records fetched (scan, catch-up and reads).
    pub records_read: u64,
    /// Fetch requests.
    pub fetch_requests: u64,
}

/// Checkpoints in a compacted Kafka topic: one record per stage (cut into 512 KiB chunks),
/// then a manifest record.
///
/// # Record layout
///
/// One topic (e.g. `app-checkpoints`, `cleanup.policy=compact`, partition 0) holds the
/// checkpoints of any number of instances; every key starts with `{instance}/`, and a
/// store skips the keys of other instances. For checkpoint
/// `checkpoint_20241201_140000_123-000042.json` of instance `app-instance-1`:
///
/// ```text
/// key                                                               value
/// app-instance-1/checkpoint_…-000042.json/_envelope/0               header bytes: `{"format":…,"positions":{…},"customer_stats":`
/// app-instance-1/checkpoint_…-000042.json/customer_stats/0          that stage's bytes (≤ 512 KiB a record)
/// app-instance-1/checkpoint_…-000042.json/customer_stats/1          …its next 512 KiB
/// app-instance-1/checkpoint_…-000042.json/_envelope/1               `,"per_5min":`
/// app-instance-1/checkpoint_…-000042.json/per_5min/0                that stage's bytes
/// app-instance-1/checkpoint_…-000042.json/_envelope/2               trailer: `,"checksum":"crc32:…"}`
/// app-instance-1/checkpoint_…-000042.json                           the manifest (JSON, below)
/// app-instance-1/latest                                             the `latest` record, as given
/// ```
///
/// [`put_staged`](CheckpointStore::put_staged) cuts the bytes at the stage spans into
/// consecutive segments (stage parts labelled by the stage name, the envelope parts
/// between and around them labelled `_envelope`), cuts each segment into records of at
/// most 512 KiB (Kafka refuses messages over ~1 MB by default), and numbers the records of
/// each label from 0. Only then does it write the **manifest**, one small record keyed
/// `{instance}/{checkpoint name}`:
///
/// ```text
/// {"format":"simplestream-kafka-manifest","version":1,"checkpoint":"checkpoint_…-000042.json",
///  "size":1234567,"crc32":"8d1f03aa","writer":"3f9c…-4242@host",
///  "segments":[{"key":"app-instance-1/checkpoint_…/_envelope/0","label":"_envelope",
///               "offset":1007,"start":0,"len":212,"crc32":"0b7e21c4"}, …]}
/// ```
///
/// listing every record in order with its Kafka offset, its place in the checkpoint
/// (`start`, `len`) and its CRC-32. [`put`](CheckpointStore::put) is `put_staged` with no
/// spans: one segment.
///
/// # Guarantees
///
/// - **A checkpoint exists only once its manifest is written.** A crash after some stage
///   records of checkpoint 8 but before its manifest leaves no visible checkpoint 8 (its
///   records are orphans, tombstoned by the next writer on the instance); the previous
///   checkpoints are untouched.
/// - **Reads never mix checkpoints.** [`get`](CheckpointStore::get) reads the manifest,
///   then each record *by its offset*, checks its key, length and CRC-32, and the CRC-32
///   of the whole; a missing or changed record is an error naming the checkpoint, the
///   key and the offset (the [`Coordinator`](crate::Coordinator) then falls back to an
///   older checkpoint).
/// - **Compaction never removes what a checkpoint needs.** Keys are unique per checkpoint
///   (the checkpoint name is in every key), so each record a manifest points at is the
///   newest value of its key, which compaction keeps (compaction keeps offsets too).
///   [`delete`](CheckpointStore::delete) writes tombstones (null values) for the manifest
///   and every record of the checkpoint, so compaction reclaims the space.
/// - **`latest` is the newest value of `{instance}/latest`**; the coordinator writes it
///   only after the checkpoint's manifest is acknowledged.
/// - **Durability** is the broker's: a write returns once the broker acknowledged it
///   (rskafka asks for acks from all in-sync replicas).
///
/// # One writer per instance
///
/// Kafka has no compare-and-set. Every record carries a `simplestream-writer` header
/// (random id, pid and host of the writing store). Before each write, the store asks for
/// the partition's end offset; if records arrived since the last offset it knows, it
/// reads them, and if any belongs to its instance but another writer, it fails with
/// [`StoreErrorKind::Conflict`] and refuses every later write. After each produce it
/// checks that its records landed right at the end it knew; if not, it reads the gap the
/// same way. **Race window:** two writers that produce at the same moment both get their
/// records in before either sees the other's: at most one write of each lands
/// interleaved (a partial checkpoint of one cannot be mixed into the other, since
/// manifests point at offsets, but both may have written a manifest or a `latest`), and
/// each detects the conflict at its next write at the latest, then stops. Also inside
/// the window: records that arrive while [`open`](Self::open) scans the topic are taken
/// as history, unchecked; and a store's first write tombstones the records that no
/// manifest lists, which, if another writer is in the middle of a checkpoint at that
/// moment, breaks that checkpoint (its `get` then fails on the CRC or key check, and the
/// coordinator falls back). Records of other instances on the topic are fine. A Kafka transactional producer with a fenced
/// `transactional.id` per instance would close the window; rskafka does not offer one.
///
/// # Costs
///
/// [`open`](Self::open) reads the partition once from its earliest offset to its end
/// (payloads included: Kafka cannot fetch keys alone), keeping only an index of this
/// instance's manifests and the `latest` value; compaction keeps that scan proportional
/// to the live checkpoints of all instances on the topic. [`list`](CheckpointStore::list)
/// and [`get_latest`](CheckpointStore::get_latest) then read the index, with no request;
/// writes keep it up to date. [`get`](CheckpointStore::get) fetches the checkpoint's
/// records, 4 MiB or more a request.
///
/// # Retries and timeouts
///
/// Each request is bounded by [`KafkaStoreOptions::timeout`] (reconnects with backoff
/// inside it), and retried [`KafkaStoreOptions::retries`] times with a growing pause on a
/// transient failure (connection refused or reset, broker not available, timeout). A
/// write that fails leaves the previous checkpoint valid: without its manifest a new
/// checkpoint does not exist.
///
/// # Example
///
/// ```no_run
/// use simplestream_runtime::store::{CheckpointStore, KafkaStore};
///
/// let mut store = KafkaStore::open("127.0.0.1:9092", "app-checkpoints", "app-instance-1")?;
/// store.put("checkpoint_20241201_140000_123-000042.json", b"{}")?;
/// store.put_latest(br#"{"file":"checkpoint_20241201_140000_123-000042.json"}"#)?;
/// assert_eq!(store.get("checkpoint_20241201_140000_123-000042.json")?, b"{}");
///
/// // Another machine: a new store on the same topic and instance sees the same.
/// let other = KafkaStore::open("127.0.0.1:9092", "app-checkpoints", "app-instance-1")?;
/// assert_eq!(other.list()?.len(), 1);
/// # Ok::<(), simplestream_runtime::StoreError>(())
/// ```
pub struct KafkaStore {
    rt: tokio::runtime::Runtime,
    partition: PartitionClient,
    brokers: String,
    topic: String,
    instance: String,
    writer: String,
    options: KafkaStoreOptions,
    /// Every record below this offset is in the index.
    next_offset: i64,
    index: Index,
    /// Set once another writer was seen: every later write fails with it.
    conflict: Option<StoreError>,
    /// Orphan records (of checkpoints without a manifest) are tombstoned before the first
    /// write; true once done.
    swept: bool,
    /// Test hook: the next `put_staged` writes its records but no manifest, then fails.
    fail_before_manifest: bool,
    stats: Cell<KafkaStats>,
}

impl std::fmt::Debug for KafkaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStore")
            .field("location", &self.location())
            .field("writer", &self.writer)
            .field("next_offset", &self.next_offset)
            .field("checkpoints", &self.index.manifests.len())
            .finish_non_exhaustive()
    }
}

// The coordinator moves the store to its upload thread.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<KafkaStore>();
};

impl KafkaStore {
    /// Opens the checkpoints of `instance` in `topic` on the brokers `brokers`
    /// (`host:port`, several separated by commas), with default
    /// [options](KafkaStoreOptions).
    ///
    /// Creates the topic (compacted, one partition, replication 1) when it is missing,
    /// then reads it once to index this instance's checkpoints. Fails with
    /// [`StoreErrorKind::Invalid`] for a bad instance or topic name, or a topic whose
    /// cleanup policy deletes records by age; with [`StoreErrorKind::Unavailable`] when no
    /// broker can be reached (within a few seconds, never hanging).
    pub fn open(brokers: &str, topic: &str, instance: &str) -> Result<KafkaStore, StoreError> {
        Self::open_with(brokers, topic, instance, KafkaStoreOptions::default())
    }

    /// [`open`](Self::open) with options.
    pub fn open_with(
        brokers: &str,
        topic: &str,
        instance: &str,
        options: KafkaStoreOptions,
    ) -> Result<KafkaStore, StoreError> {
        validate_instance(instance)?;
        validate_topic(topic)?;
        let location = format!("kafka://{brokers}/{topic}/{instance}");
        let list = parse_brokers(brokers).map_err(|why| {
            StoreError::new(
                StoreErrorKind::Invalid,
                "parsing broker list",
                &location,
                why,
            )
        })?;
        if options.chunk_bytes == 0 || options.chunk_bytes as u64 > MAX_RECORD_BYTES {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                "opening checkpoints",
                &location,
                format!("chunk_bytes must be 1 to {MAX_RECORD_BYTES}"),
            ));
        }
        // Fail fast and clearly when nothing listens, before the client's retries.
        preflight(&list, options.timeout).map_err(|why| {
            StoreError::new(
                StoreErrorKind::Unavailable,
                "connecting to Kafka",
                &location,
                why,
            )
        })?;

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::io("starting the Kafka client", &location, &e))?;
        let backoff = rskafka::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            deadline: Some(options.timeout),
        };
        let builder = ClientBuilder::new(list.clone())
            .client_id("simplestream")
            .backoff_config(backoff);
        let unavailable = |action: &str, e: String| {
            StoreError::new(StoreErrorKind::Unavailable, action, &location, e)
        };
        let client = rt
            .block_on(with_timeout(options.timeout, builder.build()))
            .map_err(|e| unavailable("connecting to Kafka", e))?;

        // The topic: create it compacted when missing; refuse one that expires records.
        let topics = rt
            .block_on(with_timeout(options.timeout, client.list_topics()))
            .map_err(|e| unavailable("listing topics", e))?;
        if !topics.iter().any(|t| t.name == topic) {
            if options.read_only {
                return Err(StoreError::new(
                    StoreErrorKind::NotFound,
                    "opening checkpoints (read-only)",
                    &location,
                    format!("there is no topic `{topic}` on the brokers (nothing was created)"),
                ));
            }
            create_compacted_topic(&list, topic, options.timeout)
                .map_err(|(kind, why)| StoreError::new(kind, "creating topic", &location, why))?;
        } else if let Ok(Some(policy)) =
            wire::describe_cleanup_policy(&list, topic, options.timeout)
        {
            if !policy.split(',').any(|p| p.trim() == "compact") {
                return Err(StoreError::new(
                    StoreErrorKind::Invalid,
                    "checking topic",
                    &location,
                    format!(
                        "topic `{topic}` has cleanup.policy={policy}: Kafka deletes its records after \
                         retention.ms, so checkpoints would vanish; use a compacted topic \
                         (cleanup.policy=compact) or a new topic name"
                    ),
                ));
            }
        }
        let partition = rt
            .block_on(with_timeout(
                options.timeout,
                client.partition_client(topic, 0, UnknownTopicHandling::Retry),
            ))
            .map_err(|e| unavailable("opening partition 0", e))?;

        let mut store = KafkaStore {
            rt,
            partition,
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            instance: instance.to_string(),
            writer: writer_id(),
            options,
            next_offset: 0,
            index: Index::new(instance),
            conflict: None,
            swept: false,
            fail_before_manifest: false,
            stats: Cell::new(KafkaStats::default()),
        };
        let earliest = store.offset(OffsetAt::Earliest, "reading the topic")?;
        let end = store.offset(OffsetAt::Latest, "reading the topic")?;
        store.next_offset = earliest;
        // Records before `open` are history, whoever wrote them.
        store.ingest_until(end, false, "reading the topic")?;
        Ok(store)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The instance name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// This store's writer id (the `simplestream-writer` header of its records):
    /// random, then `-{pid}@{host}`.
    pub fn writer_id(&self) -> &str {
        &self.writer
    }

    /// The partition offset up to which this store has read or written.
    pub fn known_end(&self) -> i64 {
        self.next_offset
    }

    /// What this store did so far (records, bytes, requests).
    pub fn stats(&self) -> KafkaStats {
        self.stats.get()
    }

    fn count(&self, f: impl FnOnce(&mut KafkaStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// The manifest of checkpoint `name` as indexed (`None` if there is none, or if it
    /// does not parse).
    pub fn manifest(&self, name: &str) -> Option<&Manifest> {
        self.index.manifest(name)
    }

    /// Keys of records of this instance that belong to no checkpoint (left by a write
    /// that failed or crashed before its manifest); the next write tombstones them.
    /// Records of a checkpoint whose manifest is corrupt or in a layout this build does
    /// not know are never orphans.
    pub fn orphan_keys(&self) -> Vec<String> {
        self.index.orphan_keys()
    }

    /// The topic's `cleanup.policy` as the broker reports it (`None` if it does not say).
    pub fn cleanup_policy(&self) -> Result<Option<String>, StoreError> {
        let list = parse_brokers(&self.brokers).unwrap_or_default();
        wire::describe_cleanup_policy(&list, &self.topic, self.options.timeout).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Unavailable,
                "describing topic",
                self.location(),
                e,
            )
        })
    }

    /// Test hook (not a stable interface): the next `put`/`put_staged` writes the
    /// checkpoint's records but not its manifest, then fails, as a crash there would.
    #[doc(hidden)]
    pub fn fail_before_manifest(&mut self) {
        self.fail_before_manifest = true;
    }

    // -----------------------------------------------------------------------------------
    // Requests, each bounded and retried
    // -----------------------------------------------------------------------------------

    /// Runs `op` with the timeout, retrying transient failures with a growing pause.
    fn request<T, F, Fut>(&self, action: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, KafkaError>>,
    {
        let mut attempt = 0;
        loop {
            let result = self
                .rt
                .block_on(async { tokio::time::timeout(self.options.timeout, op()).await });
            let err = match result {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => self.error(action, &e),
                Err(_) => StoreError::new(
                    StoreErrorKind::Unavailable,
                    action,
                    self.location(),
                    format!(
                        "no answer from the broker within {:?} (is it running?)",
                        self.options.timeout
                    ),
                ),
            };
            if err.kind != StoreErrorKind::Unavailable || attempt >= self.options.retries {
                if attempt > 0 {
                    let mut err = err;
                    err.detail = format!("{} (after {} attempts)", err.detail, attempt + 1);
                    return Err(err);
                }
                return Err(err);
            }
            std::thread::sleep(Duration::from_millis(200 << attempt.min(5)));
            attempt += 1;
        }
    }

    /// A client error as a store error, classified.
    fn error(&self, action: &str, e: &KafkaError) -> StoreError {
        use ProtocolError as P;
        let kind = match e {
            KafkaError::Connection(_) | KafkaError::Request(_) | KafkaError::RetryFailed(_) => {
                StoreErrorKind::Unavailable
            }
            KafkaError::Timeout => StoreErrorKind::Unavailable,
            KafkaError::ServerError { protocol_error, .. } => match protocol_error {
                P::LeaderNotAvailable
                | P::NotLeaderOrFollower
                | P::RequestTimedOut
                | P::BrokerNotAvailable
                | P::ReplicaNotAvailable
                | P::NetworkException
                | P::NotEnoughReplicas
                | P::NotEnoughReplicasAfterAppend
                | P::KafkaStorageError
                | P::ThrottlingQuotaExceeded => StoreErrorKind::Unavailable,
                P::TopicAuthorizationFailed | P::ClusterAuthorizationFailed => {
                    StoreErrorKind::Denied
                }
                P::UnknownTopicOrPartition => StoreErrorKind::NotFound,
                P::InvalidTopicException | P::InvalidConfig => StoreErrorKind::Invalid,
                _ => StoreErrorKind::Other,
            },
            _ => StoreErrorKind::Other,
        };
        StoreError::new(kind, action, self.location(), one_line(&e.to_string()))
    }

    fn offset(&self, at: OffsetAt, action: &str) -> Result<i64, StoreError> {
        self.request(action, || self.partition.get_offset(at))
    }

    /// Fetches records from `offset` on (at least `min_bytes` of them, when there are);
    /// returns them and the partition's end offset.
    fn fetch(
        &self,
        offset: i64,
        min_bytes: usize,
        action: &str,
    ) -> Result<(Vec<RecordAndOffset>, i64), StoreError> {
        let mut max = FETCH_BYTES.max(min_bytes.saturating_add(64 * 1024));
        loop {
            let bytes = 1..i32::try_from(max).unwrap_or(i32::MAX);
            let (records, high) = self.request(action, || {
                self.partition
                    .fetch_records(offset, bytes.clone(), FETCH_WAIT_MS)
            })?;
            self.count(|s| {
                s.fetch_requests += 1;
                s.records_read += records.len() as u64;
            });
            // A broker that does not return a first batch larger than the maximum: ask for more.
            if records.is_empty() && offset < high && max < MAX_FETCH_BYTES {
                max = (max * 2).min(MAX_FETCH_BYTES);
                continue;
            }
            return Ok((records, high));
        }
    }

    // -----------------------------------------------------------------------------------
    // The index
    // -----------------------------------------------------------------------------------

    /// Reads every record from `next_offset` to `end` into the index. With
    /// `check_writers`, a record of this instance by another writer is a conflict.
    fn ingest_until(
        &mut self,
        end: i64,
        check_writers: bool,
        action: &str,
    ) -> Result<(), StoreError> {
        while self.next_offset < end {
            let (records, high) = self.fetch(self.next_offset, 0, action)?;
            let Some(last) = records.iter().map(|r| r.offset).max() else {
                if high <= self.next_offset {
                    break;
                }
                return Err(StoreError::new(
                    StoreErrorKind::Other,
                    action,
                    self.location(),
                    format!(
                        "the broker returned no records between offsets {} and {high}",
                        self.next_offset
                    ),
                ));
            };
            // Whole batches come back, possibly past `end` (and tansu reports the end of a
            // batch of several records as its first offset + 1): apply them all.
            for r in &records {
                self.apply(&r.record, r.offset, check_writers)?;
            }
            self.next_offset = last + 1;
        }
        Ok(())
    }

    /// Applies one record to the index.
    fn apply(
        &mut self,
        record: &Record,
        offset: i64,
        check_writers: bool,
    ) -> Result<(), StoreError> {
        let Some(key) = record.key.as_deref() else {
            return Ok(());
        };
        if !self.index.owns(key) || std::str::from_utf8(key).is_err() {
            return Ok(());
        }
        if check_writers {
            let writer = record
                .headers
                .get(WRITER_HEADER)
                .map(|w| String::from_utf8_lossy(w).into_owned());
            if writer.as_deref() != Some(self.writer.as_str()) {
                let err = StoreError::new(
                    StoreErrorKind::Conflict,
                    "checking for other writers",
                    self.location(),
                    format!(
                        "instance {} is being written by another process (writer {}) since offset {}; \
                         stopping so the two do not interleave (this store is writer {}; stop one of them)",
                        self.instance,
                        writer.as_deref().unwrap_or("without a writer header"),
                        offset,
                        self.writer
                    ),
                );
                self.conflict = Some(err.clone());
                return Err(err);
            }
        }
        self.index.apply(Some(key), record.value.as_deref(), offset);
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // Writes
    // -----------------------------------------------------------------------------------

    fn record(&self, key: String, value: Option<Vec<u8>>) -> Record {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        use rskafka::chrono::TimeZone;
        Record {
            key: Some(key.into_bytes()),
            value,
            headers: BTreeMap::from([(
                WRITER_HEADER.to_string(),
                self.writer.clone().into_bytes(),
            )]),
            timestamp: rskafka::chrono::Utc
                .timestamp_millis_opt(ms)
                .single()
                .unwrap_or_default(),
        }
    }

    /// Produces `records` in order (in batches under ~1 MB), after checking that no
    /// other writer wrote this instance; returns their offsets and updates the index.
    fn write(&mut self, records: Vec<Record>, action: &str) -> Result<Vec<i64>, StoreError> {
        self.deny_read_only(action)?;
        if let Some(e) = &self.conflict {
            return Err(e.clone());
        }
        let end = self.offset(OffsetAt::Latest, action)?;
        if end > self.next_offset {
            self.ingest_until(end, true, action)?;
        }
        let mut offsets = Vec::with_capacity(records.len());
        let mut batch: Vec<Record> = Vec::new();
        let mut size = 0;
        let mut batches = Vec::new();
        for r in records {
            let n = r.approximate_size() + 64;
            if !batch.is_empty() && size + n > BATCH_BYTES {
                batches.push(std::mem::take(&mut batch));
                size = 0;
            }
            size += n;
            batch.push(r);
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        for batch in batches {
            let got = self.request(action, || {
                self.partition
                    .produce(batch.clone(), Compression::NoCompression)
            })?;
            self.count(|s| {
                s.produce_requests += 1;
                s.records_written += batch.len() as u64;
                s.bytes_written += batch
                    .iter()
                    .map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64)
                    .sum::<u64>();
            });
            let (Some(&first), Some(&last)) = (got.first(), got.last()) else {
                return Err(StoreError::new(
                    StoreErrorKind::Other,
                    action,
                    self.location(),
                    "the broker acknowledged no offsets",
                ));
            };
            // Something landed between our last known offset and this batch: read it (a
            // copy of our own batch from a retried request is fine, another writer not).
            if first > self.next_offset {
                self.ingest_until(first, true, action)?;
            }
            for (r, &off) in batch.iter().zip(&got) {
                self.apply(r, off, false)?;
            }
            self.next_offset = self.next_offset.max(last + 1);
            offsets.extend(got);
        }
        Ok(offsets)
    }

    /// Tombstones orphan records once, before the first write of this store.
    fn sweep(&mut self, action: &str) -> Result<(), StoreError> {
        if self.swept {
            return Ok(());
        }
        let orphans = self.orphan_keys();
        if !orphans.is_empty() {
            let tombstones = orphans.into_iter().map(|k| self.record(k, None)).collect();
            self.write(tombstones, action)?;
        }
        self.swept = true;
        Ok(())
    }

    fn deny_read_only(&self, action: &str) -> Result<(), StoreError> {
        if self.options.read_only {
            return Err(StoreError::new(
                StoreErrorKind::Denied,
                action,
                self.location(),
                "the store was opened read-only (for inspection)",
            ));
        }
        Ok(())
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.index.prefix())
    }
}

impl CheckpointStore for KafkaStore {
    fn location(&self) -> String {
        redact_urls(&format!(
            "kafka://{}/{}/{}",
            self.brokers, self.topic, self.instance
        ))
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_staged(name, bytes, &[])
    }

    fn put_staged(
        &mut self,
        name: &str,
        bytes: &[u8],
        stages: &[StageSpan],
    ) -> Result<(), StoreError> {
        let action = "writing checkpoint";
        validate_checkpoint_name(name, action, self.location())?;
        self.deny_read_only(action)?;
        let pieces = segments(bytes.len(), stages, self.options.chunk_bytes)
            .map_err(|why| StoreError::new(StoreErrorKind::Invalid, action, self.key(name), why))?;
        self.sweep(action)?;
        let records: Vec<Record> = pieces
            .iter()
            .map(|p| {
                self.record(
                    self.key(&format!("{name}/{}/{}", p.label, p.n)),
                    Some(bytes[p.range.clone()].to_vec()),
                )
            })
            .collect();
        let offsets = self.write(records, action)?;
        if std::mem::take(&mut self.fail_before_manifest) {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                action,
                self.key(name),
                "test hook: stopped before the manifest",
            ));
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_string(),
            version: 1,
            checkpoint: name.to_string(),
            size: bytes.len() as u64,
            crc32: hex(crc32fast::hash(bytes)),
            writer: self.writer.clone(),
            segments: pieces
                .iter()
                .zip(&offsets)
                .map(|(p, &offset)| Segment {
                    key: self.key(&format!("{name}/{}/{}", p.label, p.n)),
                    label: p.label.to_string(),
                    offset,
                    start: p.range.start as u64,
                    len: p.range.len() as u64,
                    crc32: hex(crc32fast::hash(&bytes[p.range.clone()])),
                })
                .collect(),
        };
        let value = serde_json::to_vec(&manifest).map_err(|e| {
            StoreError::new(StoreErrorKind::Other, action, self.key(name), e.to_string())
        })?;
        let record = self.record(self.key(name), Some(value));
        self.write(vec![record], action)?;
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        validate_checkpoint_name(name, "reading checkpoint", self.location())?;
        let key = self.key(name);
        let Some(entry) = self.index.manifests.get(name) else {
            return Err(StoreError::new(
                StoreErrorKind::NotFound,
                "reading checkpoint",
                &key,
                "no such checkpoint",
            ));
        };
        let bad = |why: String| {
            Err(StoreError::new(
                StoreErrorKind::Other,
                "reading checkpoint",
                format!("{}/{key}", self.location_base()),
                format!("checkpoint {name}: {why}"),
            ))
        };
        let m = match &entry.manifest {
            Ok(m) => m,
            Err(ManifestError::Corrupt(why)) => {
                return bad(format!(
                    "its manifest record {key} at offset {} is corrupt: {why}",
                    entry.offset
                ))
            }
            Err(ManifestError::UnknownVersion(why)) => {
                return bad(format!(
                    "its manifest record {key} at offset {}: {why}; left alone",
                    entry.offset
                ))
            }
        };
        // Every record it needs (the manifest too, to see it is still there), by offset.
        let mut wanted: BTreeMap<i64, (&str, Option<usize>)> = BTreeMap::new();
        wanted.insert(entry.offset, (key.as_str(), None));
        for (i, s) in m.segments.iter().enumerate() {
            if wanted.insert(s.offset, (s.key.as_str(), Some(i))).is_some() {
                return bad(format!(
                    "its manifest is inconsistent: offset {} is listed twice (record {})",
                    s.offset, s.key
                ));
            }
        }
        let mut values: Vec<Option<Vec<u8>>> = vec![None; m.segments.len()];
        let mut found: HashSet<i64> = HashSet::new();
        let mut next = wanted.keys().next().copied();
        while let Some(off) = next {
            // Bounded by the manifest's check (MAX_RECORD_BYTES).
            let need = wanted[&off].1.map_or(0, |i| m.segments[i].len as usize);
            let (records, _) = self.fetch(off, need, "reading checkpoint")?;
            if records.first().map(|r| r.offset) != Some(off) {
                return bad(format!(
                    "record {} at offset {off} is missing (deleted or compacted away)",
                    wanted[&off].0
                ));
            }
            for r in records {
                let Some(&(want_key, seg)) = wanted.get(&r.offset) else {
                    continue;
                };
                let got_key = r.record.key.as_deref().map(String::from_utf8_lossy);
                if got_key.as_deref() != Some(want_key) {
                    return bad(format!(
                        "the record at offset {} has key {:?}, not {want_key} (the topic was rewritten?)",
                        r.offset,
                        got_key.as_deref().unwrap_or("(none)")
                    ));
                }
                let Some(value) = r.record.value else {
                    return bad(format!(
                        "record {want_key} at offset {} is a tombstone (deleted)",
                        r.offset
                    ));
                };
                match seg {
                    None => {
                        if parse_manifest(&value, self.index.prefix(), name).as_ref() != Ok(m) {
                            return bad(format!(
                                "its manifest record {want_key} at offset {} changed since it was indexed",
                                r.offset
                            ));
                        }
                    }
                    Some(i) => {
                        let s = &m.segments[i];
                        let crc = hex(crc32fast::hash(&value));
                        if value.len() as u64 != s.len || crc != s.crc32 {
                            return bad(format!(
                                "record {want_key} at offset {} is corrupt: {} bytes with crc32 {crc}, \
                                 the manifest says {} bytes with crc32 {}",
                                r.offset,
                                value.len(),
                                s.len,
                                s.crc32
                            ));
                        }
                        values[i] = Some(value);
                    }
                }
                found.insert(r.offset);
            }
            next = wanted.keys().find(|o| !found.contains(o)).copied();
        }
        assemble(m, values.into_iter().flatten().collect()).or_else(bad)
    }

    fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        Ok(self.index.list())
    }

    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        validate_checkpoint_name(name, "deleting checkpoint", self.location())?;
        if self.index.is_foreign(name) {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                "deleting checkpoint",
                self.key(name),
                "its manifest is in a layout a newer version wrote; it is left alone",
            ));
        }
        let keys = self.index.keys_of(name);
        if keys.is_empty() {
            return Ok(());
        }
        // The manifest's tombstone comes first, in the same batch as the others.
        let tombstones = keys.into_iter().map(|k| self.record(k, None)).collect();
        self.write(tombstones, "deleting checkpoint")?;
        Ok(())
    }

    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let record = self.record(self.key(LATEST_KEY), Some(bytes.to_vec()));
        self.write(vec![record], "writing latest")?;
        Ok(())
    }

    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.index.latest.clone())
    }

    fn left_alone(&self) -> Vec<String> {
        self.index.left_alone()
    }
}

impl KafkaStore {
    fn location_base(&self) -> String {
        redact_urls(&format!("kafka://{}/{}", self.brokers, self.topic))
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn with_timeout<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, KafkaError>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(one_line(&e.to_string())),
        Err(_) => Err(format!(
            "no answer from the broker within {timeout:?} (is it running?)"
        )),
    }
}

/// A random writer id, then `-{pid}@{host}`.
fn writer_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{:016x}-{}@{host}", h.finish(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_broker_is_unavailable_quickly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = std::time::Instant::now();
        let e = KafkaStore::open(&format!("127.0.0.1:{port}"), "t", "i").unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Unavailable);
        assert!(
            e.to_string()
                .contains(&format!("127.0.0.1:{port}: connection refused")),
            "{e}"
        );
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
