//! Topic and broker checks, and topic creation, before a [`KafkaStore`](super::KafkaStore) opens.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{wire, DEFAULT_TOPIC};
use crate::store::{StoreError, StoreErrorKind};

/// Checks a topic name as Kafka does: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_topic(topic: &str) -> Result<(), StoreError> {
    let bad = |why: String| {
        Err(StoreError::new(
            StoreErrorKind::Invalid,
            "checking topic name",
            format!("{topic:?}"),
            format!("{why}; Kafka topic names are 1 to 249 of letters, digits, `.`, `_` and `-` (e.g. `{DEFAULT_TOPIC}`)"),
        ))
    };
    if topic.is_empty() {
        return bad("it is empty".into());
    }
    if topic.len() > 249 {
        return bad("it is longer than 249 bytes".into());
    }
    if topic == "." || topic == ".." {
        return bad("it must not be `.` or `..`".into());
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(format!("it contains {c:?}"));
    }
    Ok(())
}

/// `host:port,host:port` as a list.
pub(crate) fn parse_brokers(brokers: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = brokers
        .split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if list.is_empty() {
        return Err("no broker given: use host:port, several separated by commas".into());
    }
    if brokers.contains('@') {
        // Never echoed: what precedes `@` is a credential.
        return Err("credentials in the broker list are not supported: this client connects without SASL or TLS".into());
    }
    for b in &list {
        match b.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(format!("{b:?} is not host:port (e.g. 127.0.0.1:9092)")),
        }
    }
    Ok(list)
}

/// Connects to each broker once: `Ok` when one accepts, else why none did.
pub(crate) fn preflight(brokers: &[String], timeout: Duration) -> Result<(), String> {
    let mut why = Vec::new();
    for b in brokers {
        let addrs = match b.to_socket_addrs() {
            Ok(a) => a.collect::<Vec<_>>(),
            Err(e) => {
                why.push(format!("{b}: cannot resolve the host ({e})"));
                continue;
            }
        };
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => why.push(format!(
                    "{b}: connection refused, nothing is listening there"
                )),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => why.push(format!(
                    "{b}: no answer within {timeout:?} (timeout; host down or port filtered)"
                )),
                Err(e) => why.push(format!("{b}: {e}")),
            }
        }
    }
    Err(format!("no Kafka broker reachable: {}", why.join("; ")))
}

/// Creates `topic` compacted (one partition, replication 1). rskafka's `create_topic`
/// sends no configs, hence a CreateTopics request of our own.
pub(super) fn create_compacted_topic(
    brokers: &[String],
    topic: &str,
    timeout: Duration,
) -> Result<(), (StoreErrorKind, String)> {
    let mut last = String::new();
    for b in brokers {
        match wire::create_topic(b, topic, &[("cleanup.policy", "compact")], timeout) {
            // 36: TOPIC_ALREADY_EXISTS (another process was first).
            Ok((0 | 36, _)) => return Ok(()),
            // 41: NOT_CONTROLLER: try the next broker.
            Ok((41, _)) => last = format!("{b} is not the controller"),
            Ok((code, msg)) => {
                let kind = match code {
                    17 | 40 | 37 | 38 => StoreErrorKind::Invalid,
                    29 | 31 => StoreErrorKind::Denied,
                    _ => StoreErrorKind::Other,
                };
                return Err((
                    kind,
                    format!(
                        "the broker refused to create topic `{topic}`: error {code}{}",
                        msg.map(|m| format!(" ({m})")).unwrap_or_default()
                    ),
                ));
            }
            Err(e) => last = format!("{b}: {e}"),
        }
    }
    Err((StoreErrorKind::Unavailable, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_brokers_are_checked() {
        assert!(validate_topic("app-checkpoints").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"t".repeat(250)] {
            assert_eq!(
                validate_topic(bad).unwrap_err().kind,
                StoreErrorKind::Invalid,
                "{bad:?}"
            );
        }
        assert_eq!(parse_brokers("a:1, b:2").unwrap(), vec!["a:1", "b:2"]);
        assert!(parse_brokers("").is_err());
        assert!(parse_brokers("localhost").is_err());
        assert!(parse_brokers("localhost:x").is_err());
    }
}
