//! What the cache stores: a complete response (status, headers, body and the facts its
//! freshness and age are computed from), or a Vary marker naming the request headers
//! that select among a URL's variants. Encoded in a small binary format (bodies are
//! binary-safe; those above `compress_above` are LZ4-compressed).

use bytes::Bytes;

use super::policy::{AgeFacts, StoredFreshness};

/// Format version; records of another version read as misses.
const VERSION: u8 = 1;
const TAG_RESPONSE: u8 = 1;
const TAG_VARY: u8 = 2;
const BODY_RAW: u8 = 0;
const BODY_LZ4: u8 = 1;

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    /// Status code.
    pub status: u16,
    /// Headers as the upstream sent them (names lower-case), without hop-by-hop and
    /// node headers (`Via` of the filling node, `X-Gateway-Node`): the serving node adds its own.
    pub headers: Vec<(String, Bytes)>,
    /// The complete body.
    pub body: Bytes,
    /// Timing facts for `Age`.
    pub age: AgeFacts,
    /// Freshness facts.
    pub freshness: StoredFreshness,
    /// The request's values of the headers the response's `Vary` names.
    pub vary: Vec<(String, Option<Bytes>)>,
}

impl CachedResponse {
    /// First value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_ref())
    }

    /// First value of header `name` as text.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether it can be revalidated (has `ETag` or `Last-Modified`).
    pub fn has_validator(&self) -> bool {
        self.header("etag").is_some() || self.header("last-modified").is_some()
    }

    /// Approximate size in memory (for the L1 weigher).
    pub fn weight(&self) -> usize {
        self.body.len() + self.headers.iter().map(|(n, v)| n.len() + v.len() + 32).sum::<usize>() + 128
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A response.
    Response(CachedResponse),
    /// The URL's responses vary on these request headers (lower-case): look up the variant.
    Vary(Vec<String>),
}

impl Record {
    /// Approximate size in memory.
    pub fn weight(&self) -> usize {
        match self {
            Self::Response(r) => r.weight(),
            Self::Vary(names) => vary_weight(names),
        }
    }

    /// Binary form; bodies above `compress_above` bytes are compressed.
    pub fn encode(&self, compress_above: usize) -> Vec<u8> {
        match self {
            Self::Vary(names) => encode_vary(names),
            Self::Response(r) => encode_response(r, compress_above),
        }
    }

    /// Reads a record; `None` for anything malformed or of another version.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let mut r = Reader(data);
        if r.u8()? != VERSION {
            return None;
        }
        match r.u8()? {
            TAG_VARY => {
                let n = r.u32()? as usize;
                let mut names = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    names.push(r.string()?);
                }
                Some(Self::Vary(names))
            }
            TAG_RESPONSE => {
                let status = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
                let (request_ms, response_ms, date_ms, age_s) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
                let (lifetime_ms, swr_s, sie_s) = (r.u64()?, r.u64()?, r.u64()?);
                let flags = r.u8()?;
                let n = r.u32()? as usize;
                let mut headers = Vec::with_capacity(n.min(256));
                for _ in 0..n {
                    headers.push((r.string()?, Bytes::copy_from_slice(r.bytes()?)));
                }
                let n = r.u32()? as usize;
                let mut vary = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    let name = r.string()?;
                    let value = match r.u8()? {
                        1 => Some(Bytes::copy_from_slice(r.bytes()?)),
                        _ => None,
                    };
                    vary.push((name, value));
                }
                let body = match r.u8()? {
                    BODY_LZ4 => Bytes::from(lz4_flex::decompress_size_prepended(r.bytes()?).ok()?),
                    _ => Bytes::copy_from_slice(r.bytes()?),
                };
                Some(Self::Response(CachedResponse {
                    status,
                    headers,
                    body,
                    age: AgeFacts { request_ms, response_ms, date_ms: (date_ms != u64::MAX).then_some(date_ms), age_s },
                    freshness: StoredFreshness {
                        lifetime_ms,
                        no_cache: flags & 1 != 0,
                        must_revalidate: flags & 2 != 0,
                        swr_s,
                        sie_s,
                    },
                    vary,
                }))
            }
            _ => None,
        }
    }
}

/// Approximate in-memory size of a Vary marker naming `names`.
pub fn vary_weight(names: &[String]) -> usize {
    names.iter().map(|n| n.len() + 24).sum::<usize>() + 64
}

/// Binary form of a Vary marker.
pub fn encode_vary(names: &[String]) -> Vec<u8> {
    let mut w = Vec::with_capacity(vary_weight(names));
    w.push(VERSION);
    w.push(TAG_VARY);
    put_u32(&mut w, names.len() as u32);
    for n in names {
        put_bytes(&mut w, n.as_bytes());
    }
    w
}

/// Binary form of a response; a body above `compress_above` bytes is compressed.
pub fn encode_response(r: &CachedResponse, compress_above: usize) -> Vec<u8> {
    let mut w = Vec::with_capacity(r.weight());
    w.push(VERSION);
    w.push(TAG_RESPONSE);
    w.extend_from_slice(&r.status.to_le_bytes());
    for v in [r.age.request_ms, r.age.response_ms, r.age.date_ms.unwrap_or(u64::MAX), r.age.age_s] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    let f = &r.freshness;
    for v in [f.lifetime_ms, f.swr_s, f.sie_s] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    w.push(u8::from(f.no_cache) | (u8::from(f.must_revalidate) << 1));
    put_u32(&mut w, r.headers.len() as u32);
    for (n, v) in &r.headers {
        put_bytes(&mut w, n.as_bytes());
        put_bytes(&mut w, v);
    }
    put_u32(&mut w, r.vary.len() as u32);
    for (n, v) in &r.vary {
        put_bytes(&mut w, n.as_bytes());
        match v {
            Some(v) => {
                w.push(1);
                put_bytes(&mut w, v);
            }
            None => w.push(0),
        }
    }
    if r.body.len() > compress_above {
        w.push(BODY_LZ4);
        put_bytes(&mut w, &lz4_flex::compress_prepend_size(&r.body));
    } else {
        w.push(BODY_RAW);
        put_bytes(&mut w, &r.body);
    }
    w
}

fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_u32(w, b.len() as u32);
    w.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(body: &[u8]) -> CachedResponse {
        CachedResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), Bytes::from_static(b"application/json")),
                ("etag".into(), "\"v1\"".into()),
            ],
            body: Bytes::copy_from_slice(body),
            age: AgeFacts { request_ms: 1, response_ms: 2, date_ms: Some(3), age_s: 4 },
            freshness: StoredFreshness { lifetime_ms: 5, no_cache: false, must_revalidate: true, swr_s: 6, sie_s: 7 },
            vary: vec![("accept-language".into(), Some(Bytes::from_static(b"en"))), ("x-none".into(), None)],
        }
    }

    #[test]
    fn responses_round_trip_with_and_without_compression() {
        let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        for (body, threshold) in [(&b"small"[..], 4096), (&binary[..], 4096), (&binary[..], usize::MAX)] {
            let rec = Record::Response(sample(body));
            let bytes = rec.encode(threshold);
            assert_eq!(Record::decode(&bytes), Some(rec));
        }
        let compressed = Record::Response(sample(&vec![b'a'; 10_000])).encode(100);
        assert!(compressed.len() < 1_000, "a repetitive body compresses");
    }

    #[test]
    fn vary_markers_round_trip() {
        let rec = Record::Vary(vec!["accept".into(), "accept-language".into()]);
        assert_eq!(Record::decode(&rec.encode(0)), Some(rec));
    }

    #[test]
    fn garbage_and_other_versions_read_as_nothing() {
        assert_eq!(Record::decode(b""), None);
        assert_eq!(Record::decode(&[9, 1, 2]), None);
        let mut bytes = Record::Response(sample(b"x")).encode(0);
        bytes.truncate(bytes.len() - 1);
        assert_eq!(Record::decode(&bytes), None);
    }

    #[test]
    fn lookups_by_header_name() {
        let r = sample(b"");
        assert_eq!(r.header_str("etag"), Some("\"v1\""));
        assert!(r.has_validator());
        assert_eq!(r.header("missing"), None);
    }
}
