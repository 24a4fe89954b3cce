//! Base64 (standard alphabet, with padding), to keep binary checkpoints in localStorage,
//! which holds only text.
//!
//! ```
//! use simplestream_playground::b64;
//! assert_eq!(b64::encode(b"SSCK\x01"), "U1NDSwE=");
//! assert_eq!(b64::decode("U1NDSwE=").unwrap(), b"SSCK\x01");
//! assert!(b64::decode("U1N*").is_err());
//! ```

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes bytes as base64 text.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes base64 text; says where it is not base64.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let s = text.as_bytes();
    if !s.len().is_multiple_of(4) {
        return Err(format!(
            "not base64: its length {} is not a multiple of 4",
            s.len()
        ));
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (ci, chunk) in s.chunks(4).enumerate() {
        let last = ci == s.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(format!(
                "not base64: misplaced `=` near character {}",
                ci * 4
            ));
        }
        let mut n = 0u32;
        for (i, &c) in chunk[..4 - pad].iter().enumerate() {
            let v = value(c).ok_or_else(|| {
                format!(
                    "not base64: character {:?} at position {}",
                    c as char,
                    ci * 4 + i
                )
            })?;
            n |= v << (18 - 6 * i as u32);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_and_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        for len in 0..all.len() {
            let e = encode(&all[..len]);
            assert_eq!(e.len() % 4, 0);
            assert_eq!(decode(&e).unwrap(), &all[..len], "len {len}");
        }
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"f"), "Zg==");
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["abc", "a===", "ab=c", "Zg==Zg==", "Zm9v YmFy"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
