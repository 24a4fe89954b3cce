//! Kafka topics as the runner's input and outputs: `--input kafka://host:port/topic`
//! reads every partition, `--output kafka://host:port/topic` appends with exactly-once
//! effect across crashes. Positions live in the runner's checkpoints, never in Kafka.

mod batch;
mod conn;
mod decode;
mod epoch;
mod fetch;
mod leader;
pub mod partitioner;
mod producer;
mod record_batch;
pub mod sink;
pub mod source;
mod writer;

use std::fmt;

pub use sink::KafkaSink;
pub use source::{KafkaSource, Polled};

use crate::store::kafka::topic::{parse_brokers, validate_topic};

/// `kafka://host:port[,host:port]/topic`.
///
/// ```
/// use simplestream_runtime::runner::kafka::TopicUrl;
/// let u = TopicUrl::parse("kafka://127.0.0.1:9092/orders").unwrap().unwrap();
/// assert_eq!(u.topic, "orders");
/// assert!(TopicUrl::parse("orders.jsonl").unwrap().is_none(), "a file");
/// assert!(TopicUrl::parse("kafka://127.0.0.1:9092").is_err(), "the topic is required");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicUrl {
    /// `host:port` of each bootstrap broker.
    pub brokers: Vec<String>,
    /// The topic.
    pub topic: String,
}

impl TopicUrl {
    /// `Ok(None)` for anything that is not a `kafka://` URL (a file path).
    pub fn parse(s: &str) -> Result<Option<TopicUrl>, String> {
        let Some(rest) = s.strip_prefix("kafka://") else {
            return Ok(None);
        };
        let bad = |why: String| Err(format!("{}: {why}", crate::store::redact_urls(s)));
        let Some((brokers, topic)) = rest.split_once('/') else {
            return bad("use kafka://host:port/topic (e.g. kafka://127.0.0.1:9092/orders)".into());
        };
        let brokers = match parse_brokers(brokers) {
            Ok(b) => b,
            Err(e) => return bad(e),
        };
        if let Err(e) = validate_topic(topic) {
            return bad(e.detail);
        }
        Ok(Some(TopicUrl {
            brokers,
            topic: topic.to_string(),
        }))
    }

    /// The same brokers, topic `{topic}{suffix}` (late events, dead letters).
    pub fn with_suffix(&self, suffix: &str) -> TopicUrl {
        TopicUrl {
            brokers: self.brokers.clone(),
            topic: format!("{}{suffix}", self.topic),
        }
    }
}

impl fmt::Display for TopicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kafka://{}/{}", self.brokers.join(","), self.topic)
    }
}

/// How many partitions the topic has; `None` if there is no such topic.
pub(crate) fn partition_count(url: &TopicUrl) -> Result<Option<i32>, String> {
    let conn = conn::Conn::connect(url)?;
    Ok(conn.partitions(&url.topic)?.map(|p| p.len() as i32))
}

/// The offset each of `parts` of the topic reports as its end. On tansu that is the
/// start of the last batch + 1, short of the true end, but still past every offset a
/// reader got to before a later append: enough to tell whether records were appended.
pub(crate) fn latest_offsets(url: &TopicUrl, parts: &[i32]) -> Result<Vec<i64>, String> {
    let conn = conn::Conn::connect(url)?;
    parts
        .iter()
        .map(|&p| {
            let part = conn.partition(&url.topic, p)?;
            conn.offset(&part, rskafka::client::partition::OffsetAt::Latest)
        })
        .collect()
}
