//! Hooks for the fuzz targets (`fuzz/`) and the property tests (`gateway/tests/`): the
//! response-head reader and the chunked decoder driven over bytes that arrive in given
//! pieces, exactly as a connection's reads would deliver them. Not an API.

use actix_web::http::Method;
use bytes::BytesMut;

use super::chunked::{Decoder, Step};
use super::{BodyFraming, next_head};

/// How a response body is delimited, as the head reader decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closes.
    UntilClose,
}

/// What the head reader made of a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadSummary {
    /// Bytes taken off the connection (interim heads included).
    pub consumed: usize,
    /// Status code.
    pub status: u16,
    /// Kept headers in order: lowercase name, raw value.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Declared `Content-Length` (absent with a transfer coding).
    pub length: Option<u64>,
    /// Body framing.
    pub framing: Framing,
    /// Whether the connection may be reused after the body.
    pub keep_alive: bool,
}

/// Feeds `wire` to the head reader in pieces of the given sizes (the rest in one piece
/// once they run out; a size of 0 counts as 1), then ends the input. `Err` is the
/// reader's error, or `"closed inside the head"` when the input ends first.
pub fn read_head(wire: &[u8], pieces: &[usize], method: &Method) -> Result<HeadSummary, String> {
    let mut buf = BytesMut::new();
    let mut scanned = 0;
    let mut fed = 0;
    let mut sizes = pieces.iter();
    loop {
        if let Some((head, parsed)) = next_head(&mut buf, &mut scanned, method).map_err(|e| e.to_string())? {
            let consumed = fed - buf.len();
            let headers =
                parsed.headers.iter().map(|(n, r)| (n.as_str().to_string(), head[r.clone()].to_vec())).collect();
            let framing = match parsed.framing {
                BodyFraming::None => Framing::None,
                BodyFraming::Length(n) => Framing::Length(n),
                BodyFraming::Chunked => Framing::Chunked,
                BodyFraming::UntilClose => Framing::UntilClose,
            };
            return Ok(HeadSummary {
                consumed,
                status: parsed.status.as_u16(),
                headers,
                length: parsed.length,
                framing,
                keep_alive: parsed.keep_alive,
            });
        }
        if fed == wire.len() {
            return Err("closed inside the head".into());
        }
        let n = sizes.next().map_or(wire.len() - fed, |&n| n.max(1)).min(wire.len() - fed);
        buf.extend_from_slice(&wire[fed..fed + n]);
        fed += n;
    }
}

/// Feeds `wire` to the chunked decoder in pieces of the given sizes (as `read_head`).
/// Returns the body and how many bytes followed the last chunk, or the decoder's error
/// (`"truncated"` when the input ends first).
pub fn decode_chunked(wire: &[u8], pieces: &[usize]) -> Result<(Vec<u8>, usize), &'static str> {
    let mut d = Decoder::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    let mut sizes = pieces.iter();
    loop {
        match d.step(&mut buf)? {
            Step::Data(b) => {
                if b.is_empty() {
                    return Err("empty data step");
                }
                body.extend_from_slice(&b);
            }
            Step::End => return Ok((body, buf.len() + (wire.len() - fed))),
            Step::NeedMore if fed == wire.len() => return Err("truncated"),
            Step::NeedMore => {
                let n = sizes.next().map_or(wire.len() - fed, |&n| n.max(1)).min(wire.len() - fed);
                buf.extend_from_slice(&wire[fed..fed + n]);
                fed += n;
            }
        }
    }
}
