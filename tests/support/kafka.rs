//! A Kafka client for tests, as another program would use the topics: create, fill,
//! read back every record of a partition with its key and headers.

use std::collections::BTreeMap;

use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

use super::servers::Server;

/// A client of the test's broker.
pub struct Kafka {
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
}

/// One record of an output topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: Option<Vec<u8>>,
    pub value: String,
    /// `simplestream-instance`.
    pub writer: String,
    /// `simplestream-seq`.
    pub seq: u64,
}

/// `kafka://host:port/topic` of the test's broker.
pub fn kafka_url(server: &Server, topic: &str) -> String {
    format!("kafka://{}/{topic}", server.addr())
}

impl Kafka {
    pub fn new(server: &Server) -> Kafka {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(ClientBuilder::new(vec![server.addr()]).build())
            .expect("connect to tansu");
        Kafka { rt, client }
    }

    pub fn partition(&self, topic: &str, p: i32) -> PartitionClient {
        self.rt
            .block_on(
                self.client
                    .partition_client(topic, p, UnknownTopicHandling::Retry),
            )
            .unwrap()
    }

    pub fn create(&self, topic: &str, partitions: i32) {
        let c = self.client.controller_client().unwrap();
        self.rt
            .block_on(c.create_topic(topic, partitions, 1, 5_000))
            .unwrap();
    }

    pub fn delete(&self, topic: &str) {
        let c = self.client.controller_client().unwrap();
        self.rt.block_on(c.delete_topic(topic, 5_000)).unwrap();
    }

    /// Creates `topic` with `partitions` partitions and writes `lines[i]` to partition
    /// `i % partitions`, in order, in batches.
    pub fn fill(&self, topic: &str, partitions: i32, lines: &[&str]) {
        self.create(topic, partitions);
        self.append(topic, partitions, lines);
    }

    /// Writes `lines[i]` to partition `i % partitions` of the existing `topic`.
    pub fn append(&self, topic: &str, partitions: i32, lines: &[&str]) {
        for p in 0..partitions {
            let mine: Vec<&str> = lines
                .iter()
                .skip(p as usize)
                .step_by(partitions as usize)
                .copied()
                .collect();
            self.append_to(topic, p, &mine);
        }
    }

    /// Writes `lines` to partition `p` of the existing `topic`, in order, unkeyed.
    pub fn append_to(&self, topic: &str, p: i32, lines: &[&str]) {
        let keyed: Vec<(Option<&str>, &str)> = lines.iter().map(|l| (None, *l)).collect();
        self.produce(topic, p, &keyed);
    }

    /// Writes `(key, value)` records to partition `p` of `topic`, in order, in batches.
    pub fn produce(&self, topic: &str, p: i32, records: &[(Option<&str>, &str)]) {
        let pc = self.partition(topic, p);
        for chunk in records.chunks(500) {
            let recs = chunk
                .iter()
                .map(|(k, v)| Record {
                    key: k.map(|k| k.as_bytes().to_vec()),
                    value: Some(v.as_bytes().to_vec()),
                    headers: BTreeMap::new(),
                    timestamp: Default::default(),
                })
                .collect();
            self.rt
                .block_on(pc.produce(recs, Compression::NoCompression))
                .unwrap();
        }
    }

    /// Creates `topic` with `parts` partitions and writes each order to the partition
    /// of its customer (`C007` -> 7 % parts), keyed by the customer, as a producer
    /// partitioning by customer would. Returns each partition's lines.
    pub fn fill_by_customer(&self, topic: &str, parts: i32, text: &str) -> Vec<String> {
        self.create(topic, parts);
        self.append_by_customer(topic, parts, text)
    }

    /// As [`fill_by_customer`](Self::fill_by_customer), to the existing `topic`.
    pub fn append_by_customer(&self, topic: &str, parts: i32, text: &str) -> Vec<String> {
        let mut per: Vec<String> = vec![String::new(); parts as usize];
        for line in text.lines() {
            let n: i32 = customer(line)[1..].parse().unwrap();
            per[(n % parts) as usize].push_str(line);
            per[(n % parts) as usize].push('\n');
        }
        for (p, lines) in per.iter().enumerate() {
            let keys: Vec<String> = lines.lines().map(customer).collect();
            let recs: Vec<(Option<&str>, &str)> = keys
                .iter()
                .zip(lines.lines())
                .map(|(k, l)| (Some(k.as_str()), l))
                .collect();
            self.produce(topic, p as i32, &recs);
        }
        per
    }

    /// How many partitions `topic` has (0: no such topic).
    pub fn partitions(&self, topic: &str) -> usize {
        let topics = self.rt.block_on(self.client.list_topics()).unwrap();
        topics
            .into_iter()
            .find(|t| t.name == topic)
            .map_or(0, |t| t.partitions.len())
    }

    /// The offset after the last record of partition `p`, as the broker reports it.
    pub fn end(&self, topic: &str, p: i32) -> i64 {
        let pc = self.partition(topic, p);
        self.rt.block_on(pc.get_offset(OffsetAt::Latest)).unwrap()
    }

    /// Every record of partition `p` of `topic`, in offset order.
    pub fn records(&self, topic: &str, p: i32) -> Vec<Row> {
        let pc = self.partition(topic, p);
        let end = self.rt.block_on(pc.get_offset(OffsetAt::Latest)).unwrap();
        let (mut at, mut rows) = (0, Vec::new());
        while at < end {
            let (recs, _) = self
                .rt
                .block_on(pc.fetch_records(at, 1..64 << 20, 500))
                .unwrap();
            let Some(last) = recs.iter().map(|r| r.offset).max() else {
                break;
            };
            for r in recs.into_iter().filter(|r| r.offset >= at) {
                let h = &r.record.headers;
                let text = |name: &str| String::from_utf8(h[name].clone()).unwrap();
                rows.push(Row {
                    key: r.record.key,
                    value: String::from_utf8(r.record.value.unwrap()).unwrap(),
                    writer: text("simplestream-instance"),
                    seq: text("simplestream-seq").parse().unwrap(),
                });
            }
            at = last + 1;
        }
        rows
    }

    /// The values of partition `p`, checked to be `writer`'s rows numbered 0, 1, 2, ...
    /// (each once, none missing).
    pub fn values(&self, topic: &str, p: i32, writer: &str) -> Vec<String> {
        let rows = self.records(topic, p);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.writer, writer, "{topic} partition {p}: row {i}'s writer");
            assert_eq!(
                r.seq, i as u64,
                "{topic} partition {p}: row {i} is doubled or missing"
            );
        }
        rows.into_iter().map(|r| r.value).collect()
    }
}

/// The `customer` of an order line.
pub fn customer(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["customer"].as_str().unwrap().to_string()
}
