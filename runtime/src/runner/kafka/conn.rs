//! One connection to the brokers of a `kafka://` input or output, with requests that
//! wait out a broker that stopped answering.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use tracing::{info, warn};

use super::TopicUrl;
use crate::runner::sink::STOPPED;
use crate::store::kafka::topic::preflight;

/// Longest one request may take before it counts as "the broker does not answer".
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the brokers named by a [`TopicUrl`].
pub(crate) struct Conn {
    rt: tokio::runtime::Runtime,
    client: Client,
    url: String,
    topic: String,
    /// Since when the broker does not answer, and when that was last said.
    down: Cell<Option<(Instant, Instant)>>,
}

/// Why [`Conn::wait_once`] gave up.
pub(crate) enum Once {
    /// The broker does not answer (reported): try again.
    Transient,
    /// Any other error, as a message.
    Fatal(String),
}

impl Conn {
    /// Connects; nothing listening is one line naming every broker tried.
    pub(crate) fn connect(url: &TopicUrl) -> Result<Conn, String> {
        let text = url.to_string();
        preflight(&url.brokers, REQUEST_TIMEOUT).map_err(|e| format!("{text}: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("{text}: starting the Kafka client: {e}"))?;
        let backoff = rskafka::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            deadline: Some(REQUEST_TIMEOUT),
        };
        let builder = ClientBuilder::new(url.brokers.clone())
            .client_id("simplestream")
            .backoff_config(backoff);
        let client = rt
            .block_on(timeout(builder.build()))
            .map_err(|e| format!("{text}: connecting to Kafka: {}", e.text()))?;
        Ok(Conn {
            rt,
            client,
            url: text,
            topic: url.topic.clone(),
            down: Cell::new(None),
        })
    }

    /// The topic's partitions, sorted; `None` if the topic does not exist.
    pub(crate) fn partitions(&self, topic: &str) -> Result<Option<Vec<i32>>, String> {
        let topics = self.wait("listing topics", || self.client.list_topics())?;
        Ok(topics
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.into_iter().collect()))
    }

    /// Creates `topic` with `partitions` partitions.
    pub(crate) fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), String> {
        let controller = self
            .client
            .controller_client()
            .map_err(|e| format!("{}: {e}", self.url))?;
        let r = self.wait("creating the topic", || {
            controller.create_topic(topic, partitions, 1, 5_000)
        });
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.contains("TopicAlreadyExists") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A client of one partition; a topic deleted later is an error, not a wait.
    pub(crate) fn partition(&self, topic: &str, p: i32) -> Result<PartitionClient, String> {
        self.wait("opening a partition", || {
            self.client
                .partition_client(topic, p, UnknownTopicHandling::Error)
        })
    }

    /// The partition's earliest or next offset.
    pub(crate) fn offset(&self, part: &PartitionClient, at: OffsetAt) -> Result<i64, String> {
        self.wait("reading offsets", || part.get_offset(at))
    }

    /// The partition's end: the offset after its last record. Found by fetching from
    /// the offset the broker reports (tansu reports the start of a batch of several
    /// records + 1 there).
    pub(crate) fn end_of(&self, part: &PartitionClient, what: &str) -> Result<i64, String> {
        let mut at = self.offset(part, OffsetAt::Latest)?;
        loop {
            let (records, _) = self.wait(what, || part.fetch_records(at, 1..(16 << 20), 200))?;
            match records.iter().map(|r| r.offset).max() {
                Some(last) if last >= at => at = last + 1,
                _ => return Ok(at),
            }
        }
    }

    /// An error if the topic is no longer listed (some brokers answer fetches and
    /// produces to a deleted topic as if it were empty).
    pub(crate) fn check_exists(&self, what: &str) -> Result<(), String> {
        match self.partitions(&self.topic)? {
            Some(_) => Ok(()),
            None => Err(self.deleted(what)),
        }
    }

    /// The URL, for messages.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The message for a topic deleted while this program ran.
    pub(crate) fn deleted(&self, what: &str) -> String {
        format!(
            "{}: topic `{}` no longer exists ({what}): it was deleted while this program ran{STOPPED}",
            self.url, self.topic
        )
    }

    /// Runs `op` until it succeeds. While the broker does not answer (refused, reset,
    /// timed out, not available) it waits and retries, saying so once and again every
    /// 30 s, and says when the broker answers again; any other error is returned.
    pub(crate) fn wait<T, F, Fut>(&self, what: &str, op: F) -> Result<T, String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, KafkaError>>,
    {
        loop {
            match self.wait_once(what, &op) {
                Ok(v) => return Ok(v),
                Err(Once::Fatal(e)) => return Err(e),
                Err(Once::Transient) => {}
            }
        }
    }

    /// Runs `op` once. A broker that does not answer is reported as in
    /// [`wait`](Self::wait), and the call returns [`Once::Transient`] after a short
    /// pause: the caller decides how to try again.
    pub(crate) fn wait_once<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Once>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, KafkaError>>,
    {
        let e = match self.rt.block_on(timeout(op())) {
            Ok(v) => {
                self.answering(what);
                return Ok(v);
            }
            Err(e) => e,
        };
        if gone(&e) {
            return Err(Once::Fatal(self.deleted(what)));
        }
        if !transient(&e) {
            return Err(Once::Fatal(format!("{}: {what}: {}", self.url, e.text())));
        }
        self.not_answering(what, &e.text());
        Err(Once::Transient)
    }

    /// Says that the broker answers again, if it did not.
    pub(crate) fn answering(&self, what: &str) {
        if let Some((since, _)) = self.down.take() {
            info!(
                "Kafka at {} answers again ({what}) after {:.1}s: going on",
                self.url,
                since.elapsed().as_secs_f64()
            );
        }
    }

    /// Says that the broker does not answer (`why`), once and again every 30 s, and
    /// pauses briefly before the caller tries again.
    pub(crate) fn not_answering(&self, what: &str, why: &str) {
        let now = Instant::now();
        match self.down.get() {
            None => {
                warn!(
                    "Kafka at {} does not answer ({what}: {why}): waiting for it, nothing is lost",
                    self.url
                );
                self.down.set(Some((now, now)));
            }
            Some((since, told)) if now.duration_since(told) >= Duration::from_secs(30) => {
                warn!(
                    "Kafka at {} still does not answer after {:.0}s ({what}): still waiting",
                    self.url,
                    since.elapsed().as_secs_f64()
                );
                self.down.set(Some((since, now)));
            }
            Some(_) => {}
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A request error, or the request took longer than [`REQUEST_TIMEOUT`].
pub(crate) enum Failed {
    Kafka(KafkaError),
    Timeout,
}

impl Failed {
    fn text(&self) -> String {
        match self {
            Failed::Kafka(e) => one_line(&e.to_string()),
            Failed::Timeout => format!("no answer within {REQUEST_TIMEOUT:?}"),
        }
    }
}

async fn timeout<T>(f: impl Future<Output = Result<T, KafkaError>>) -> Result<T, Failed> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failed::Kafka(e)),
        Err(_) => Err(Failed::Timeout),
    }
}

/// Worth waiting for: the broker is down, frozen or busy, not refusing.
fn transient(e: &Failed) -> bool {
    use ProtocolError as P;
    match e {
        Failed::Timeout => true,
        Failed::Kafka(e) => match e {
            KafkaError::Connection(_)
            | KafkaError::Request(_)
            | KafkaError::RetryFailed(_)
            | KafkaError::Timeout => true,
            KafkaError::ServerError { protocol_error, .. } => matches!(
                protocol_error,
                P::LeaderNotAvailable
                    | P::NotLeaderOrFollower
                    | P::RequestTimedOut
                    | P::BrokerNotAvailable
                    | P::NetworkException
                    | P::NotEnoughReplicas
                    | P::KafkaStorageError
            ),
            _ => false,
        },
    }
}

/// The topic (or partition) is not there: deleted since it was opened.
fn gone(e: &Failed) -> bool {
    matches!(
        e,
        Failed::Kafka(KafkaError::ServerError {
            protocol_error: ProtocolError::UnknownTopicOrPartition,
            ..
        })
    )
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
