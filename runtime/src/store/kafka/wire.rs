//! Just enough of the Kafka wire protocol for what rskafka lacks: CreateTopics with
//! configs (v4) and DescribeConfigs (v1), both in the non-flexible encoding.

use std::time::Duration;

use crate::kafka_wire::{Buf, Conn, Cursor};

const CREATE_TOPICS: i16 = 19;
const DESCRIBE_CONFIGS: i16 = 32;

/// Sends one request on a connection of its own, returns the answer's body.
fn call(
    addr: &str,
    api_key: i16,
    version: i16,
    body: &Buf,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    Conn::connect(addr, timeout)?.call(api_key, version, &body.0)
}

/// CreateTopics v4, one topic, one partition, replication 1: (error code, message).
pub(super) fn create_topic(
    addr: &str,
    topic: &str,
    configs: &[(&str, &str)],
    timeout: Duration,
) -> Result<(i16, Option<String>), String> {
    let mut b = Buf::default();
    b.i32(1).str(topic);
    b.i32(1); // partitions
    b.i16(1); // replication factor
    b.i32(0); // assignments
    b.i32(configs.len() as i32);
    for (k, v) in configs {
        b.str(k).str(v);
    }
    b.i32(timeout.as_millis().min(i32::MAX as u128) as i32);
    b.i8(0); // validate_only
    let resp = call(addr, CREATE_TOPICS, 4, &b, timeout)?;
    let mut p = Cursor(&resp);
    let _throttle = p.i32()?;
    let n = p.i32()?;
    for _ in 0..n {
        let name = p.nullable_str()?.unwrap_or_default();
        let code = p.i16()?;
        let msg = p.nullable_str()?;
        if name == topic {
            return Ok((code, msg));
        }
    }
    Err(format!("no answer about topic `{topic}`"))
}

/// DescribeConfigs v1 for `cleanup.policy` of `topic`, asking each broker in turn.
pub(super) fn describe_cleanup_policy(
    brokers: &[String],
    topic: &str,
    timeout: Duration,
) -> Result<Option<String>, String> {
    let mut b = Buf::default();
    b.i32(1);
    b.i8(2); // resource type: topic
    b.str(topic);
    // All configs (-1): tansu fails on a list of names.
    b.i32(-1);
    b.i8(0); // include_synonyms
    let mut last = "no broker".to_string();
    for addr in brokers {
        let resp = match call(addr, DESCRIBE_CONFIGS, 1, &b, timeout) {
            Ok(r) => r,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let mut p = Cursor(&resp);
        let _throttle = p.i32()?;
        let n = p.i32()?;
        for _ in 0..n {
            let code = p.i16()?;
            let msg = p.nullable_str()?;
            let _type = p.i8()?;
            let _name = p.nullable_str()?.unwrap_or_default();
            if code != 0 {
                return Err(format!(
                    "error {code}{}",
                    msg.map(|m| format!(" ({m})")).unwrap_or_default()
                ));
            }
            let m = p.i32()?;
            for _ in 0..m {
                let name = p.nullable_str()?.unwrap_or_default();
                let value = p.nullable_str()?;
                let _read_only = p.i8()?;
                let _source = p.i8()?;
                let _sensitive = p.i8()?;
                for _ in 0..p.i32()?.max(0) {
                    let _name = p.nullable_str()?.unwrap_or_default();
                    let _value = p.nullable_str()?;
                    let _source = p.i8()?;
                }
                if name == "cleanup.policy" {
                    return Ok(value);
                }
            }
        }
        return Ok(None);
    }
    Err(last)
}
