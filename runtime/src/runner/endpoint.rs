//! What `--input`, `--output`, `--late-output` and `--dead-letter` name: a file, or a
//! Kafka topic (`kafka://host:port/topic`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::output::{Claimed, SinkFile};
use super::sink::Sink;
use super::{Args, OnBadInput, RunError};

/// A file or a topic.
///
/// ```
/// use simplestream_runtime::runner::endpoint::Endpoint;
/// assert!(matches!(Endpoint::parse("out.jsonl".as_ref()).unwrap(), Endpoint::File(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A JSON-lines file.
    File(PathBuf),
    /// A Kafka topic.
    #[cfg(feature = "kafka")]
    Kafka(super::kafka::TopicUrl),
}

impl Endpoint {
    /// `kafka://...` is a topic, anything else a path.
    pub fn parse(p: &Path) -> Result<Endpoint, String> {
        let Some(s) = p.to_str().filter(|s| s.starts_with("kafka://")) else {
            return Ok(Endpoint::File(p.to_path_buf()));
        };
        #[cfg(feature = "kafka")]
        {
            let url = super::kafka::TopicUrl::parse(s)?.expect("a kafka:// URL");
            Ok(Endpoint::Kafka(url))
        }
        #[cfg(not(feature = "kafka"))]
        Err(format!(
            "{}: this build has no Kafka support (enable the `kafka` feature of simplestream)",
            crate::store::redact_urls(s)
        ))
    }

    /// `OUTPUT.late`, `OUTPUT.dead`: the file, or the topic, with `suffix` appended.
    pub fn with_suffix(&self, suffix: &str) -> Endpoint {
        match self {
            Endpoint::File(p) => {
                let mut s = p.as_os_str().to_owned();
                s.push(suffix);
                Endpoint::File(PathBuf::from(s))
            }
            #[cfg(feature = "kafka")]
            Endpoint::Kafka(u) => Endpoint::Kafka(u.with_suffix(suffix)),
        }
    }
}

/// The run's input and outputs.
pub(crate) struct Endpoints {
    pub input: Endpoint,
    pub output: Endpoint,
    pub late: Endpoint,
    pub dead: Option<Endpoint>,
}

impl Endpoints {
    pub(crate) fn of(args: &Args) -> Result<Endpoints, RunError> {
        let input = Endpoint::parse(args.input.as_deref().ok_or("--input is required")?)?;
        let output = Endpoint::parse(args.output.as_deref().ok_or("--output is required")?)?;
        let late = match &args.late_output {
            Some(p) => Endpoint::parse(p)?,
            None => output.with_suffix(".late"),
        };
        let dead = match (args.on_bad_input, &args.dead_letter) {
            (OnBadInput::DeadLetter, Some(p)) => Some(Endpoint::parse(p)?),
            (OnBadInput::DeadLetter, None) => Some(output.with_suffix(".dead")),
            _ => None,
        };
        Ok(Endpoints {
            input,
            output,
            late,
            dead,
        })
    }

    fn named(&self) -> Vec<(&'static str, &Endpoint)> {
        let mut v = vec![
            ("--input", &self.input),
            ("--output", &self.output),
            ("--late-output", &self.late),
        ];
        if let Some(d) = &self.dead {
            v.push(("--dead-letter", d));
        }
        v
    }

    /// The files among them, with their flags.
    // Without Kafka every endpoint is a file, and clippy sees a filter that keeps all.
    #[cfg_attr(not(feature = "kafka"), allow(clippy::unnecessary_filter_map))]
    pub(crate) fn files(&self) -> Vec<(&'static str, &Path)> {
        self.named()
            .into_iter()
            .filter_map(|(flag, e)| match e {
                Endpoint::File(p) => Some((flag, p.as_path())),
                #[cfg(feature = "kafka")]
                Endpoint::Kafka(_) => None,
            })
            .collect()
    }

    /// Two flags naming one topic would read back what is written, or mix outputs.
    pub(crate) fn check_distinct(&self) -> Result<(), RunError> {
        let named = self.named();
        for (i, (a, x)) in named.iter().enumerate() {
            for (b, y) in &named[i + 1..] {
                #[cfg(feature = "kafka")]
                if let (Endpoint::Kafka(u), Endpoint::Kafka(v)) = (x, y) {
                    if u.topic == v.topic {
                        return Err(RunError::Fatal(format!(
                            "{a} and {b} both name topic `{}`: give each its own topic",
                            u.topic
                        )));
                    }
                }
                let _ = (a, x, b, y);
            }
        }
        Ok(())
    }
}

/// An output checked and not changed yet (see [`SinkFile::claim`]).
pub(crate) enum Claim {
    File(Claimed),
    #[cfg(feature = "kafka")]
    Kafka(Box<super::kafka::KafkaSink>),
}

impl Claim {
    pub(crate) fn open(self) -> Result<Box<dyn Sink>, String> {
        Ok(match self {
            Claim::File(c) => Box::new(c.open()?),
            #[cfg(feature = "kafka")]
            Claim::Kafka(k) => k,
        })
    }
}

/// Checks the output saved under `key`: a file as [`SinkFile::claim`] does; a topic is
/// connected to and its rows written after the checkpoint are read (nothing in Kafka is
/// ever removed).
pub(crate) fn claim(
    e: &Endpoint,
    key: &str,
    positions: &BTreeMap<String, u64>,
    args: &Args,
    #[cfg_attr(not(feature = "kafka"), allow(unused_variables))] task: Option<&super::tasks::Task>,
) -> Result<Claim, String> {
    match e {
        Endpoint::File(p) if args.from_scratch => SinkFile::claim_overwrite(p).map(Claim::File),
        Endpoint::File(p) => SinkFile::claim(p, key, positions).map(Claim::File),
        #[cfg(feature = "kafka")]
        Endpoint::Kafka(u) => {
            let target = match task {
                Some(t) => t.sink_target(),
                None => {
                    let mut t = super::kafka::sink::SinkTarget::single(&args.instance);
                    if key == "output" {
                        t.create_partitions = output_partitions(args)?;
                    }
                    t
                }
            };
            super::kafka::KafkaSink::open(u, key, positions, &target, task.is_none())
                .map(|k| Claim::Kafka(Box::new(k)))
        }
    }
}

/// Partitions a missing main output topic is created with: `--output-partitions`, else
/// as many as a Kafka input has (so rows spread as the input's records do), else 1. Late
/// events and dead letters have no key and get one partition.
#[cfg(feature = "kafka")]
fn output_partitions(args: &Args) -> Result<i32, String> {
    if let Some(n) = args.output_partitions {
        return Ok(n);
    }
    let input = args.input.as_deref().map(Endpoint::parse).transpose()?;
    if let Some(Endpoint::Kafka(u)) = input {
        return Ok(super::kafka::partition_count(&u)?.unwrap_or(1));
    }
    Ok(1)
}
