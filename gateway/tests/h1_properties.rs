//! Property tests of the plain-HTTP upstream client's parsers (`proxy/h1`): the response
//! head reader and the chunked decoder give the same answer however the bytes are split
//! across reads, and that answer is the one a simple reference model gives.

use actix_web::http::Method;
use gateway::fuzzing::{Framing, HeadSummary, decode_chunked, read_head};
use proptest::prelude::*;

/// Longest chunk-size or trailer line the decoder accepts (`chunked.rs`).
const MAX_LINE: usize = 4096;
/// Most trailer bytes the decoder accepts (`chunked.rs`).
const MAX_TRAILERS: usize = 16 * 1024;

/// 512 cases per property (`PROPTEST_CASES` changes it); failures are reported, not
/// saved to a file next to the test.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn pieces() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..48, 0..24)
}

// ---------------------------------------------------------------------------------------
// Chunked bodies
// ---------------------------------------------------------------------------------------

/// The reference: RFC 9112 §7.1 read top to bottom from one complete buffer. Lines end
/// in `\n` (a `\r` before it is dropped) and hold at most `MAX_LINE` bytes before it; a
/// size is 1-15 hex digits, optionally padded with spaces or tabs, before any `;ext`.
fn reference_chunked(wire: &[u8]) -> Result<(Vec<u8>, usize), ()> {
    fn line<'a>(wire: &'a [u8], pos: &mut usize) -> Result<&'a [u8], ()> {
        let rest = &wire[*pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or(())?;
        if end > MAX_LINE {
            return Err(());
        }
        *pos += end + 1;
        let l = &rest[..end];
        Ok(l.strip_suffix(b"\r").unwrap_or(l))
    }
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let l = line(wire, &mut pos)?;
        let digits = l.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
        if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(());
        }
        let size = usize::from_str_radix(std::str::from_utf8(digits).map_err(drop)?, 16).map_err(drop)?;
        if size == 0 {
            break;
        }
        let data = wire.get(pos..pos.checked_add(size).ok_or(())?).ok_or(())?;
        body.extend_from_slice(data);
        pos += size;
        if wire[pos..].starts_with(b"\r\n") {
            pos += 2;
        } else if wire[pos..].starts_with(b"\n") {
            pos += 1;
        } else {
            return Err(());
        }
    }
    let mut seen = 0;
    loop {
        let l = line(wire, &mut pos)?;
        if l.is_empty() {
            return Ok((body, wire.len() - pos));
        }
        seen += l.len() + 2;
        if seen > MAX_TRAILERS {
            return Err(());
        }
    }
}

/// How one chunk-size line is written.
#[derive(Debug, Clone)]
struct SizeStyle {
    upper: bool,
    zeros: usize,
    pad: bool,
    ext: Option<String>,
    crlf: bool,
}

fn size_style() -> impl Strategy<Value = SizeStyle> {
    let ext = prop_oneof![
        6 => Just(None),
        3 => "[a-z]{1,8}(=[a-z0-9]{0,8})?".prop_map(Some),
        // Around the line limit: accepted up to MAX_LINE bytes, refused past it.
        1 => (MAX_LINE - 16..MAX_LINE + 16).prop_map(|n| Some("x".repeat(n))),
    ];
    (any::<bool>(), 0usize..3, prop::bool::weighted(0.1), ext, prop::bool::weighted(0.9))
        .prop_map(|(upper, zeros, pad, ext, crlf)| SizeStyle { upper, zeros, pad, ext, crlf })
}

fn size_line(out: &mut Vec<u8>, size: usize, s: &SizeStyle) {
    let hex = if s.upper { format!("{size:X}") } else { format!("{size:x}") };
    out.extend(std::iter::repeat_n(b'0', s.zeros));
    out.extend_from_slice(hex.as_bytes());
    if s.pad {
        out.extend_from_slice(b" \t");
    }
    if let Some(e) = &s.ext {
        out.push(b';');
        out.extend_from_slice(e.as_bytes());
    }
    out.extend_from_slice(if s.crlf { b"\r\n" } else { b"\n" });
}

/// A chunked body, mostly well formed: chunks, the last chunk, trailers, then whatever
/// follows on the connection; sometimes with one byte changed, dropped or added.
fn chunked_wire() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (prop::collection::vec(any::<u8>(), 1..40), size_style(), prop::bool::weighted(0.9));
    let trailer = prop_oneof![
        8 => "[A-Za-z-]{1,12}: [ -~]{0,20}".prop_map(String::into_bytes),
        1 => (MAX_LINE - 8..MAX_LINE + 8).prop_map(|n| format!("X: {}", "t".repeat(n - 3)).into_bytes()),
    ];
    let edit = prop_oneof![
        4 => Just(None),
        1 => (any::<prop::sample::Index>(), any::<u8>(), 0u8..3).prop_map(Some),
    ];
    (
        prop::collection::vec(chunk, 0..6),
        size_style(),
        prop::collection::vec(trailer, 0..3),
        prop::collection::vec(any::<u8>(), 0..8),
        edit,
    )
        .prop_map(|(chunks, last, trailers, after, edit)| {
            let mut w = Vec::new();
            for (data, style, crlf) in &chunks {
                size_line(&mut w, data.len(), style);
                w.extend_from_slice(data);
                w.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
            size_line(&mut w, 0, &last);
            for t in &trailers {
                w.extend_from_slice(t);
                w.extend_from_slice(b"\r\n");
            }
            w.extend_from_slice(b"\r\n");
            w.extend_from_slice(&after);
            if let Some((at, byte, op)) = edit {
                let i = at.index(w.len());
                match op {
                    0 => w[i] = byte,
                    1 => {
                        w.remove(i);
                    }
                    _ => w.insert(i, byte),
                }
            }
            w
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn chunked_decoding_ignores_split_points_and_matches_the_reference(wire in chunked_wire(), split in pieces()) {
        let whole = decode_chunked(&wire, &[]);
        let split = decode_chunked(&wire, &split);
        prop_assert_eq!(&split, &whole, "split vs one-shot");
        let reference = reference_chunked(&wire);
        match (&whole, &reference) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
            (Err(_), Err(())) => {}
            _ => prop_assert!(false, "decoder {:?} vs reference {:?}", whole, reference),
        }
    }

    #[test]
    fn chunked_decoding_of_arbitrary_bytes_ignores_split_points(
        wire in prop::collection::vec(any::<u8>(), 0..256), split in pieces()
    ) {
        prop_assert_eq!(decode_chunked(&wire, &split), decode_chunked(&wire, &[]));
    }
}

#[test]
fn chunk_lines_over_the_limit_are_refused_whether_or_not_they_arrive_whole() {
    let mut wire = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(MAX_LINE)).into_bytes();
    assert!(decode_chunked(&wire, &[]).is_err());
    assert!(decode_chunked(&wire, &[100; 64]).is_err());
    wire = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(MAX_LINE - 3)).into_bytes();
    assert_eq!(decode_chunked(&wire, &[]), Ok((b"a".to_vec(), 0)));
    assert_eq!(decode_chunked(&wire, &[100; 64]), Ok((b"a".to_vec(), 0)));
}

// ---------------------------------------------------------------------------------------
// Response heads
// ---------------------------------------------------------------------------------------

/// Longest response head the reader accepts (`h1/mod.rs`).
const MAX_HEAD: usize = 64 * 1024;

/// One generated header line.
#[derive(Debug, Clone)]
enum Field {
    /// An end-to-end header (`x-<name>`).
    Plain(String, String),
    /// `Content-Length` with this value (as written).
    Length(String),
    /// `Transfer-Encoding` with these codings.
    Coding(Vec<&'static str>),
    /// `Connection` with these tokens.
    Connection(Vec<String>),
    /// A hop-by-hop header that is never kept.
    Hop(&'static str),
}

/// A generated response: interim heads, then the final one, then body bytes.
#[derive(Debug, Clone)]
struct Resp {
    interim: Vec<u16>,
    http10: bool,
    status: u16,
    fields: Vec<Field>,
    lf_only: bool,
    body: Vec<u8>,
    method: Method,
    /// Padding header bytes to reach near the head size limit.
    pad: usize,
}

fn field() -> impl Strategy<Value = Field> {
    let name = "[a-z]{1,6}";
    prop_oneof![
        5 => (name, "[ -~&&[^ ]]([ -~]{0,14}[!-~])?").prop_map(|(n, v)| Field::Plain(format!("x-{n}"), v)),
        2 => prop_oneof![Just("0".to_string()), Just("5".to_string()), Just("12".to_string()), Just("007".to_string()),
                         Just("-1".to_string()), Just("1 2".to_string()), Just("99999999999999999999".to_string())]
            .prop_map(Field::Length),
        1 => prop::collection::vec(prop_oneof![Just("chunked"), Just("gzip"), Just("Chunked")], 1..3).prop_map(Field::Coding),
        1 => prop::collection::vec(prop_oneof![Just("close".to_string()), Just("keep-alive".to_string()),
                                               Just("Close".to_string()), "x-[a-z]{1,6}"], 1..3).prop_map(Field::Connection),
        1 => prop_oneof![Just("keep-alive"), Just("proxy-connection"), Just("te"), Just("trailer"), Just("upgrade"),
                         Just("proxy-authenticate")].prop_map(Field::Hop),
    ]
}

fn response() -> impl Strategy<Value = Resp> {
    let status = prop_oneof![
        Just(200u16),
        Just(201),
        Just(204),
        Just(206),
        Just(301),
        Just(304),
        Just(404),
        Just(500),
        Just(503),
        Just(599)
    ];
    let method = prop_oneof![Just(Method::GET), Just(Method::HEAD), Just(Method::POST), Just(Method::CONNECT)];
    let pad = prop_oneof![8 => Just(0usize), 1 => MAX_HEAD - 300..MAX_HEAD + 300];
    (
        prop::collection::vec(prop_oneof![Just(100u16), Just(102), Just(103)], 0..3),
        prop::bool::weighted(0.2),
        status,
        prop::collection::vec(field(), 0..8),
        prop::bool::weighted(0.1),
        prop::collection::vec(any::<u8>(), 0..16),
        method,
        pad,
    )
        .prop_map(|(interim, http10, status, fields, lf_only, body, method, pad)| Resp {
            interim,
            http10,
            status,
            fields,
            lf_only,
            body,
            method,
            pad,
        })
}

/// The wire bytes, the length of all heads and the length of the final head.
fn render(r: &Resp) -> (Vec<u8>, usize, usize) {
    let eol: &[u8] = if r.lf_only { b"\n" } else { b"\r\n" };
    let version = if r.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut w = Vec::new();
    for s in &r.interim {
        w.extend_from_slice(format!("{version} {s} Info").as_bytes());
        w.extend_from_slice(eol);
        w.extend_from_slice(b"x-interim: 1");
        w.extend_from_slice(eol);
        w.extend_from_slice(eol);
    }
    let interim_len = w.len();
    w.extend_from_slice(format!("{version} {} Some Reason", r.status).as_bytes());
    w.extend_from_slice(eol);
    let line = |w: &mut Vec<u8>, name: &str, value: &str| {
        w.extend_from_slice(name.as_bytes());
        w.extend_from_slice(b": ");
        w.extend_from_slice(value.as_bytes());
        w.extend_from_slice(eol);
    };
    for f in &r.fields {
        match f {
            Field::Plain(n, v) => line(&mut w, n, v),
            Field::Length(v) => line(&mut w, "Content-Length", v),
            Field::Coding(c) => line(&mut w, "Transfer-Encoding", &c.join(", ")),
            Field::Connection(t) => line(&mut w, "Connection", &t.join(", ")),
            Field::Hop(n) => line(&mut w, n, "1"),
        }
    }
    if r.pad > 0 {
        line(&mut w, "x-pad", &"p".repeat(r.pad));
    }
    w.extend_from_slice(eol);
    let head_len = w.len();
    w.extend_from_slice(&r.body);
    (w, head_len, head_len - interim_len)
}

/// The reference: what RFC 9112 (§6.3 framing, §9.3 persistence) and RFC 9110 §7.6.1
/// (hop-by-hop fields) say about the generated response, in the proxy's terms.
fn reference_head(r: &Resp, head_len: usize, final_len: usize) -> Result<HeadSummary, ()> {
    if final_len > MAX_HEAD {
        return Err(());
    }
    let mut length = None;
    let mut codings: Option<Vec<&str>> = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut listed = Vec::new();
    for f in &r.fields {
        match f {
            Field::Length(v) => {
                let n: u64 =
                    if v.bytes().all(|b| b.is_ascii_digit()) { v.parse().map_err(drop)? } else { return Err(()) };
                if length.is_some_and(|l| l != n) {
                    return Err(());
                }
                length = Some(n);
            }
            Field::Coding(c) => codings = Some(c.clone()),
            Field::Connection(t) => {
                for t in t {
                    match t.to_ascii_lowercase().as_str() {
                        "close" => close = true,
                        "keep-alive" => keep_alive_token = true,
                        other => listed.push(other.to_string()),
                    }
                }
            }
            _ => {}
        }
    }
    let chunked = codings.as_ref().map(|c| c.last().is_some_and(|l| l.eq_ignore_ascii_case("chunked")));
    let framing = if r.method == Method::HEAD || matches!(r.status, 100..=199 | 204 | 304) {
        Framing::None
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    let keep_alive = (!r.http10 || keep_alive_token)
        && !close
        && !(chunked.is_some() && (length.is_some() || r.http10))
        && r.method != Method::CONNECT
        && framing != Framing::UntilClose;
    let mut headers = Vec::new();
    for f in &r.fields {
        match f {
            Field::Plain(n, v) if !listed.contains(n) => headers.push((n.clone(), v.clone().into_bytes())),
            Field::Length(v) if r.status == 304 => headers.push(("content-length".into(), v.clone().into_bytes())),
            _ => {}
        }
    }
    if r.pad > 0 {
        headers.push(("x-pad".into(), "p".repeat(r.pad).into_bytes()));
    }
    Ok(HeadSummary {
        consumed: head_len,
        status: r.status,
        headers,
        length: if chunked.is_some() { None } else { length },
        framing,
        keep_alive,
    })
}

/// `h` with long header values shortened, for failure messages.
fn brief(h: &HeadSummary) -> HeadSummary {
    let mut h = h.clone();
    for (_, v) in &mut h.headers {
        if v.len() > 40 {
            *v = format!("<{} bytes>", v.len()).into_bytes();
        }
    }
    h
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn head_reading_ignores_split_points_and_matches_the_reference(r in response(), split in pieces()) {
        let (wire, head_len, final_len) = render(&r);
        let whole = read_head(&wire, &[], &r.method);
        // Pieces as a socket delivers them: many small ones, scaled up for padded heads.
        let scale = if r.pad > 0 { 997 } else { 1 };
        let split: Vec<usize> = split.iter().map(|n| n * scale).collect();
        let parts = read_head(&wire, &split, &r.method);
        match (&parts, &whole) {
            (Ok(a), Ok(b)) => prop_assert!(a == b, "split {:?} vs one-shot {:?}", brief(a), brief(b)),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "split {:?} vs one-shot {:?}", parts.map(|h| brief(&h)), whole.map(|h| brief(&h))),
        }
        let reference = reference_head(&r, head_len, final_len);
        match (&whole, &reference) {
            (Ok(got), Ok(want)) => prop_assert!(got == want, "reader {:?} vs reference {:?}", brief(got), brief(want)),
            (Err(_), Err(())) => {}
            _ => prop_assert!(false, "reader {:?} vs reference {:?}", whole.map(|h| brief(&h)), reference.map(|h| brief(&h))),
        }
    }

    #[test]
    fn head_reading_of_arbitrary_bytes_ignores_split_points(
        mut wire in prop::collection::vec(any::<u8>(), 0..200), split in pieces(), prefix in any::<bool>()
    ) {
        if prefix {
            wire.splice(0..0, b"HTTP/1.1 200 OK\r\n".iter().copied());
        }
        let whole = read_head(&wire, &[], &Method::GET);
        let parts = read_head(&wire, &split, &Method::GET);
        prop_assert_eq!(whole.is_ok(), parts.is_ok(), "split {:?} vs one-shot {:?}", parts, whole);
        if let (Ok(a), Ok(b)) = (parts, whole) {
            prop_assert_eq!(a, b);
        }
    }
}

#[test]
fn a_complete_head_over_the_limit_is_refused_even_when_it_arrives_at_once() {
    let wire = format!("HTTP/1.1 200 OK\r\nx-pad: {}\r\ncontent-length: 0\r\n\r\n", "p".repeat(MAX_HEAD)).into_bytes();
    assert!(read_head(&wire, &[], &Method::GET).is_err());
    assert!(read_head(&wire, &[1024; 128], &Method::GET).is_err());
}
