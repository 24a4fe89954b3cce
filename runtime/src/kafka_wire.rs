//! The Kafka wire protocol's primitives, for the requests not made through rskafka
//! (topic configs for the checkpoint store, group membership for the runner, the
//! output's produce requests, built without a copy per record): big-endian
//! fields, length-prefixed strings and bytes, and one blocking connection that frames a
//! request and reads its answer. Non-flexible encodings, and the flexible headers of
//! requests whose answers are read field by field ([`Conn::call_flexible`]).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The largest answer read; a longer length prefix is a broken or foreign peer.
const MAX_RESPONSE: usize = 16 << 20;

/// Request bytes being built.
#[derive(Default)]
pub(crate) struct Buf(pub Vec<u8>);

impl Buf {
    pub fn i8(&mut self, v: i8) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.i16(s.len() as i16);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    /// An unsigned varint (flexible versions' lengths and counts).
    pub fn uvarint(&mut self, mut n: u64) -> &mut Self {
        while n >= 0x80 {
            self.0.push(n as u8 | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
        self
    }
    /// A compact string of a flexible version: its length + 1, then its bytes.
    pub fn compact_str(&mut self, s: &str) -> &mut Self {
        self.uvarint(s.len() as u64 + 1);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn bytes(&mut self, b: Option<&[u8]>) -> &mut Self {
        match b {
            None => self.i32(-1),
            Some(b) => {
                self.i32(b.len() as i32);
                self.0.extend_from_slice(b);
                self
            }
        }
    }
}

/// Why an answer was not read.
#[derive(Debug, PartialEq)]
pub(crate) enum Unread {
    /// The connection failed, closed or timed out: worth trying again.
    Io(String),
    /// The answer's length prefix is out of bounds: a broken or foreign peer.
    BadLength { len: i32, max: usize },
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Io(e) => f.write_str(e),
            Unread::BadLength { len, max } => {
                write!(f, "bad response length {len} (4 to {max} expected)")
            }
        }
    }
}

/// Response bytes being read; a short or malformed response is an error, never a panic.
pub(crate) struct Cursor<'a>(pub &'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("a response ended early".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub fn i8(&mut self) -> Result<i8, String> {
        Ok(self.take(1)?[0] as i8)
    }
    pub fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    pub fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    pub fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    /// A string that must be there and be UTF-8 (names the protocol relies on).
    pub fn str(&mut self) -> Result<String, String> {
        let n = self.i16()?;
        let b = self.take(n.max(0) as usize)?;
        String::from_utf8(b.to_vec()).map_err(|_| "a response string is not UTF-8".into())
    }
    /// A string that may be null; shown lossily (broker messages, config values).
    pub fn nullable_str(&mut self) -> Result<Option<String>, String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(self.take(n as usize)?).into_owned(),
        ))
    }
    pub fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.i32()?;
        Ok(self.take(n.max(0) as usize)?.to_vec())
    }
    /// An unsigned varint (flexible versions' lengths and counts).
    pub fn uvarint(&mut self) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.i8()? as u8;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }
    /// A flexible version's tagged fields, skipped.
    pub fn tagged_fields(&mut self) -> Result<(), String> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?; // tag
            let n = self.uvarint()?;
            self.take(usize::try_from(n).map_err(|e| e.to_string())?)?;
        }
        Ok(())
    }
    /// An array's length (a null array counts as empty).
    pub fn count(&mut self) -> Result<usize, String> {
        let n = self.i32()?;
        usize::try_from(n.max(0)).map_err(|e| e.to_string())
    }
}

/// A blocking connection to one broker.
pub(crate) struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    /// Connects to `addr` (`host:port`); `wait` bounds the connect and every answer.
    pub fn connect(addr: &str, wait: Duration) -> Result<Conn, String> {
        let a = addr
            .to_socket_addrs()
            .map_err(|e| format!("{addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&a, wait)
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(wait))
            .and_then(|()| stream.set_write_timeout(Some(wait)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| format!("{addr}: {e}"))?;
        Ok(Conn {
            stream,
            correlation: 0,
        })
    }

    /// Cuts the connection: every later call fails (a test hook's broken network).
    pub fn cut(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Sends request `key` at `version`; returns the answer after its correlation id.
    pub fn call(&mut self, key: i16, version: i16, body: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(body.len() + 32);
        self.start(&mut out, key, version);
        out.extend_from_slice(body);
        self.finish(&mut out)
    }

    /// [`call`](Self::call) of a flexible version: request header v2 and response header
    /// v1 (both with tagged fields, none sent; those answered are skipped).
    pub fn call_flexible(
        &mut self,
        key: i16,
        version: i16,
        body: &[u8],
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(body.len() + 32);
        self.start(&mut out, key, version);
        out.push(0);
        out.extend_from_slice(body);
        let answer = self.finish(&mut out)?;
        let mut c = Cursor(&answer);
        c.tagged_fields()?;
        let skip = answer.len() - c.0.len();
        Ok(answer[skip..].to_vec())
    }

    /// The peer's address, for messages.
    pub fn peer(&self) -> String {
        self.stream
            .peer_addr()
            .map_or_else(|_| "a broker".into(), |a| a.to_string())
    }

    /// Starts request `key` at `version` in `out` (cleared): a room for its size and
    /// the header. The caller appends the body, then calls [`finish`](Self::finish).
    /// Large requests are written in place this way, without a copy.
    pub fn start(&mut self, out: &mut Vec<u8>, key: i16, version: i16) {
        self.correlation += 1;
        out.clear();
        out.extend_from_slice(&[0; 4]);
        let mut head = Buf(std::mem::take(out));
        head.i16(key)
            .i16(version)
            .i32(self.correlation)
            .str("simplestream");
        *out = head.0;
    }

    /// Sends the request built in `out` since [`start`](Self::start); returns the
    /// answer after its correlation id.
    pub fn finish(&mut self, out: &mut [u8]) -> Result<Vec<u8>, String> {
        let mut resp = Vec::new();
        self.finish_into(out, &mut resp, MAX_RESPONSE)
            .map_err(|e| e.to_string())?;
        Ok(resp)
    }

    /// [`finish`](Self::finish) into `resp` (cleared), whose room is reused: large
    /// answers (fetches) read without a fresh buffer each. `max` bounds the answer.
    pub fn finish_into(
        &mut self,
        out: &mut [u8],
        resp: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), Unread> {
        let len =
            i32::try_from(out.len() - 4).map_err(|_| Unread::Io("a request over 2 GiB".into()))?;
        out[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(out).map_err(io_text)?;
        let mut head = [0u8; 8];
        self.stream.read_exact(&mut head).map_err(io_text)?;
        let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| (4..=max).contains(&n))
            .ok_or(Unread::BadLength { len, max })?;
        if Cursor(&head[4..]).i32().map_err(Unread::Io)? != self.correlation {
            return Err(Unread::Io("an answer to another request".into()));
        }
        resp.clear();
        let body = (len - 4) as u64;
        let got = (&mut self.stream)
            .take(body)
            .read_to_end(resp)
            .map_err(io_text)?;
        if got as u64 != body {
            return Err(Unread::Io(
                "the connection closed in the middle of an answer".into(),
            ));
        }
        Ok(())
    }
}

/// An I/O error; a socket timeout (reported as "would block") as what it means.
fn io_text(e: std::io::Error) -> Unread {
    Unread::Io(match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "no answer in time (timeout)".into()
        }
        _ => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_a_short_response_is_an_error() {
        let mut b = Buf::default();
        b.i8(-2)
            .i16(7)
            .i32(-9)
            .str("topic")
            .bytes(Some(b"xy"))
            .bytes(None);
        let mut c = Cursor(&b.0);
        assert_eq!(c.i8().unwrap(), -2);
        assert_eq!(c.i16().unwrap(), 7);
        assert_eq!(c.i32().unwrap(), -9);
        assert_eq!(c.str().unwrap(), "topic");
        assert_eq!(c.bytes().unwrap(), b"xy");
        assert_eq!(c.count().unwrap(), 0);
        assert!(c.i8().is_err());
        let mut n = Buf::default();
        n.i16(-1);
        assert_eq!(Cursor(&n.0).nullable_str().unwrap(), None);
        // A string whose length says 5 but only 2 bytes follow.
        assert!(Cursor(&[0, 5, b't', b'o']).str().is_err());
        // Flexible versions: 300 as an unsigned varint; two tagged fields then a byte.
        assert_eq!(Cursor(&[0xac, 0x02]).uvarint().unwrap(), 300);
        let mut w = Buf::default();
        w.uvarint(300).compact_str("ab");
        assert_eq!(w.0, [0xac, 0x02, 3, b'a', b'b']);
        let mut c = Cursor(&[2, 0, 1, 9, 5, 2, 7, 7, 42]);
        c.tagged_fields().unwrap();
        assert_eq!(c.i8().unwrap(), 42);
        assert!(
            Cursor(&[1, 0, 3, 9]).tagged_fields().is_err(),
            "a field cut short"
        );
    }
}
