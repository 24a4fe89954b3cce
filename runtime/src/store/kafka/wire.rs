//! Just enough of the Kafka wire protocol for what rskafka lacks: CreateTopics with
//! configs (v4) and DescribeConfigs (v1), both in the non-flexible encoding.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const CREATE_TOPICS: i16 = 19;
const DESCRIBE_CONFIGS: i16 = 32;

fn string(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as i16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// Sends one request, returns the response body (after the correlation id).
fn call(
    addr: &str,
    api_key: i16,
    version: i16,
    body: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let a = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{addr} resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&a, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut req = Vec::new();
    req.extend_from_slice(&api_key.to_be_bytes());
    req.extend_from_slice(&version.to_be_bytes());
    req.extend_from_slice(&7i32.to_be_bytes());
    string(&mut req, "simplestream");
    req.extend_from_slice(body);
    let mut framed = (req.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&req);
    s.write_all(&framed).map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).map_err(|e| e.to_string())?;
    let len = i32::from_be_bytes(len);
    if !(4..=16 << 20).contains(&len) {
        return Err(format!("bad response length {len}"));
    }
    let mut resp = vec![0u8; len as usize];
    s.read_exact(&mut resp).map_err(|e| e.to_string())?;
    if resp[..4] != 7i32.to_be_bytes() {
        return Err("response to another request".into());
    }
    Ok(resp.split_off(4))
}

struct Parser<'a>(&'a [u8]);
impl Parser<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("truncated response".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn i8(&mut self) -> Result<i8, String> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn nullable_string(&mut self) -> Result<Option<String>, String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(self.take(n as usize)?).into_owned(),
        ))
    }
    fn string(&mut self) -> Result<String, String> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }
}

/// CreateTopics v4, one topic, one partition, replication 1: (error code, message).
pub(super) fn create_topic(
    addr: &str,
    topic: &str,
    configs: &[(&str, &str)],
    timeout: Duration,
) -> Result<(i16, Option<String>), String> {
    let mut b = Vec::new();
    b.extend_from_slice(&1i32.to_be_bytes());
    string(&mut b, topic);
    b.extend_from_slice(&1i32.to_be_bytes()); // partitions
    b.extend_from_slice(&1i16.to_be_bytes()); // replication factor
    b.extend_from_slice(&0i32.to_be_bytes()); // assignments
    b.extend_from_slice(&(configs.len() as i32).to_be_bytes());
    for (k, v) in configs {
        string(&mut b, k);
        string(&mut b, v);
    }
    b.extend_from_slice(&(timeout.as_millis().min(i32::MAX as u128) as i32).to_be_bytes());
    b.push(0); // validate_only
    let resp = call(addr, CREATE_TOPICS, 4, &b, timeout)?;
    let mut p = Parser(&resp);
    let _throttle = p.i32()?;
    let n = p.i32()?;
    for _ in 0..n {
        let name = p.string()?;
        let code = p.i16()?;
        let msg = p.nullable_string()?;
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
    let mut b = Vec::new();
    b.extend_from_slice(&1i32.to_be_bytes());
    b.push(2); // resource type: topic
    string(&mut b, topic);
    // All configs (-1): tansu fails on a list of names.
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(0); // include_synonyms
    let mut last = "no broker".to_string();
    for addr in brokers {
        let resp = match call(addr, DESCRIBE_CONFIGS, 1, &b, timeout) {
            Ok(r) => r,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let mut p = Parser(&resp);
        let _throttle = p.i32()?;
        let n = p.i32()?;
        for _ in 0..n {
            let code = p.i16()?;
            let msg = p.nullable_string()?;
            let _type = p.i8()?;
            let _name = p.string()?;
            if code != 0 {
                return Err(format!(
                    "error {code}{}",
                    msg.map(|m| format!(" ({m})")).unwrap_or_default()
                ));
            }
            let m = p.i32()?;
            for _ in 0..m {
                let name = p.string()?;
                let value = p.nullable_string()?;
                let _read_only = p.i8()?;
                let _source = p.i8()?;
                let _sensitive = p.i8()?;
                for _ in 0..p.i32()?.max(0) {
                    let _name = p.string()?;
                    let _value = p.nullable_string()?;
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
