//! The plain-HTTP client against scripted raw-socket upstreams: framing, keep-alive
//! reuse, stale pooled connections, interim answers and malformed heads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::balancer::EndpointSource;
use futures_util::stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// One scripted answer: bytes written in pieces (with a pause between), then maybe close.
#[derive(Clone)]
struct Reply {
    pieces: Vec<&'static [u8]>,
    close: bool,
}

fn reply(bytes: &'static [u8]) -> Reply {
    Reply { pieces: vec![bytes], close: false }
}

/// A raw upstream answering the scripted replies in order, one per request read.
struct Upstream {
    port: u16,
    accepted: Arc<Mutex<usize>>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Reads one request (head plus a Content-Length or chunked body) off `sock`.
async fn read_request(sock: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let head_len = end + 4;
            let done = if let Some(cl) = head.lines().find_map(|l| l.strip_prefix("content-length: ")) {
                let n: usize = cl.trim().parse().ok()?;
                (buf.len() >= head_len + n).then_some(head_len + n)
            } else if head.contains("transfer-encoding: chunked") {
                buf[head_len..].windows(5).position(|w| w == b"0\r\n\r\n").map(|i| head_len + i + 5)
            } else {
                Some(head_len)
            };
            if let Some(n) = done {
                return Some(buf.drain(..n).collect());
            }
        }
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn upstream(script: Vec<Reply>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (acc, reqs) = (Arc::clone(&accepted), Arc::clone(&requests));
    let script = Arc::new(Mutex::new(script.into_iter()));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            *acc.lock().unwrap() += 1;
            let (reqs, script) = (Arc::clone(&reqs), Arc::clone(&script));
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(req) = read_request(&mut sock, &mut buf).await {
                    reqs.lock().unwrap().push(req);
                    let Some(r) = script.lock().unwrap().next() else { return };
                    for (i, piece) in r.pieces.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        if sock.write_all(piece).await.is_err() {
                            return;
                        }
                    }
                    if r.close {
                        return;
                    }
                }
            });
        }
    });
    Upstream { port, accepted, requests }
}

fn endpoint(port: u16, base: &str) -> Endpoint {
    let url = format!("http://127.0.0.1:{port}{base}").parse().unwrap();
    Endpoint::new("t-0", url, 1, EndpointSource::Config)
}

type NoStream = stream::Empty<Result<Bytes, PayloadError>>;

async fn get(ep: &Endpoint, method: Method) -> Result<Response, Error> {
    let head = Head::new(&method, ep, "/x", "q=1").finish(Framing::None);
    send::<NoStream>(ep, head, SendBody::None, &method, method == Method::GET).await
}

async fn body_of(res: Response) -> Vec<u8> {
    match res.body {
        Body::Empty => Vec::new(),
        Body::Full(b) => b.to_vec(),
        Body::Plain(mut s) => {
            let mut out = Vec::new();
            while let Some(chunk) = s.next().await {
                out.extend_from_slice(&chunk.unwrap());
            }
            out
        }
        Body::Tls(_) => unreachable!("the h1 client never answers with an awc body"),
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-app: 1\r\n\r\nok";

#[tokio::test]
async fn keep_alive_connections_are_reused_and_heads_are_well_formed() {
    let up = upstream(vec![reply(OK), reply(OK)]).await;
    let ep = endpoint(up.port, "/base");
    for _ in 0..2 {
        let res = get(&ep, Method::GET).await.unwrap();
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.headers.get("x-app").unwrap(), "1");
        assert!(res.headers.get("content-length").is_none());
        assert_eq!(res.length, Some(2));
        assert!(matches!(&res.body, Body::Full(b) if &b[..] == b"ok"));
    }
    assert_eq!(*up.accepted.lock().unwrap(), 1);
    assert_eq!(pool::idle_count(&ep.origin), 1);
    let first = String::from_utf8(up.requests.lock().unwrap()[0].clone()).unwrap();
    assert_eq!(first, format!("GET /base/x?q=1 HTTP/1.1\r\nhost: 127.0.0.1:{}\r\n\r\n", up.port));
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_replaced_transparently() {
    let up = upstream(vec![Reply { pieces: vec![OK], close: true }, reply(OK), reply(OK)]).await;
    let ep = endpoint(up.port, "");
    get(&ep, Method::GET).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Idempotent: sent on the stale connection, failed, sent again on a new one.
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"ok");
    // Not idempotent: the closed connection is noticed before anything is sent.
    let up2 = upstream(vec![Reply { pieces: vec![OK], close: true }, reply(OK)]).await;
    let ep2 = endpoint(up2.port, "");
    get(&ep2, Method::POST).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(body_of(get(&ep2, Method::POST).await.unwrap()).await, b"ok");
    assert_eq!(*up2.accepted.lock().unwrap(), 2);
    assert_eq!(up2.requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn chunked_bodies_stream_and_leave_the_connection_reusable() {
    let head: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    let up = upstream(vec![
        Reply { pieces: vec![head, b"5\r\nhello\r\n", b"6;ext=1\r\n world\r\n0\r\nx-t: 1\r\n\r\n"], close: false },
        reply(OK),
    ])
    .await;
    let ep = endpoint(up.port, "");
    let res = get(&ep, Method::GET).await.unwrap();
    assert_eq!(res.length, None);
    assert!(res.headers.get("transfer-encoding").is_none());
    assert_eq!(body_of(res).await, b"hello world");
    assert_eq!(pool::idle_count(&ep.origin), 1);
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"ok");
    assert_eq!(*up.accepted.lock().unwrap(), 1);
}

#[tokio::test]
async fn bodies_split_across_reads_and_close_delimited_bodies_arrive_whole() {
    let up = upstream(vec![Reply {
        pieces: vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234", b"56789"],
        close: false,
    }])
    .await;
    let ep = endpoint(up.port, "");
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"0123456789");
    assert_eq!(pool::idle_count(&ep.origin), 1);

    let up = upstream(vec![Reply { pieces: vec![b"HTTP/1.0 200 OK\r\n\r\nuntil", b" close"], close: true }]).await;
    let ep = endpoint(up.port, "");
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"until close");
    assert_eq!(pool::idle_count(&ep.origin), 0);
}

#[tokio::test]
async fn interim_answers_are_skipped_and_bodiless_answers_release_the_connection() {
    let up = upstream(vec![
        reply(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx"),
        reply(b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n"),
        reply(b"HTTP/1.1 304 Not Modified\r\ncontent-length: 42\r\netag: \"a\"\r\n\r\n"),
    ])
    .await;
    let ep = endpoint(up.port, "");
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"x");
    let head = get(&ep, Method::HEAD).await.unwrap();
    assert_eq!((head.length, matches!(head.body, Body::Empty)), (Some(42), true));
    let not_modified = get(&ep, Method::GET).await.unwrap();
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.headers.get("content-length").unwrap(), "42");
    assert_eq!(*up.accepted.lock().unwrap(), 1);
}

#[tokio::test]
async fn hop_by_hop_and_connection_listed_headers_are_dropped() {
    let up = upstream(vec![reply(
        b"HTTP/1.1 200 OK\r\nconnection: x-hop, close\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nx-end: 2\r\ncontent-length: 0\r\n\r\n",
    )])
    .await;
    let ep = endpoint(up.port, "");
    let res = get(&ep, Method::GET).await.unwrap();
    assert!(res.headers.get("x-hop").is_none() && res.headers.get("keep-alive").is_none());
    assert!(res.headers.get("connection").is_none());
    assert_eq!(res.headers.get("x-end").unwrap(), "2");
    assert_eq!(pool::idle_count(&ep.origin), 0, "connection: close is honoured");
}

#[tokio::test]
async fn malformed_or_missing_answers_are_errors() {
    for (wire, want) in [
        (&b"HTTP/1.1 2OO OK\r\n\r\n"[..], "malformed"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", "conflicting"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n", "protocol switch"),
        (b"HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n", "invalid status code"),
        (b"HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n", "invalid status code"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "invalid chunk size"),
    ] {
        let up = upstream(vec![reply(wire)]).await;
        let err = get(&endpoint(up.port, ""), Method::GET).await.err().unwrap();
        assert!(err.to_string().contains(want), "{err}");
    }
    let up = upstream(vec![Reply { pieces: vec![b""], close: true }]).await;
    assert!(matches!(get(&endpoint(up.port, ""), Method::GET).await, Err(Error::Closed)));
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let err = get(&endpoint(port, ""), Method::GET).await.err().unwrap();
    assert!(err.is_connect(), "{err}");
}

#[tokio::test]
async fn streamed_request_bodies_are_sent_sized_or_chunked() {
    let up = upstream(vec![reply(OK), reply(OK)]).await;
    let ep = endpoint(up.port, "");
    let chunks = || stream::iter([Ok(Bytes::from_static(b"abc")), Ok(Bytes::from_static(b"defg"))]);
    for framing in [Framing::Length(7), Framing::Chunked] {
        let length = match framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let head = Head::new(&Method::POST, &ep, "/up", "").finish(framing);
        let res = send(&ep, head, SendBody::Stream(chunks(), length), &Method::POST, false).await.unwrap();
        assert_eq!(res.status, StatusCode::OK);
    }
    let reqs = up.requests.lock().unwrap();
    let sized = String::from_utf8_lossy(&reqs[0]);
    assert!(sized.contains("content-length: 7\r\n\r\nabcdefg"), "{sized}");
    let chunked = String::from_utf8_lossy(&reqs[1]);
    assert!(chunked.contains("transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"), "{chunked}");
}

#[tokio::test]
async fn a_body_the_upstream_stops_sending_ends_with_an_error_after_the_idle_timeout() {
    let up = upstream(vec![Reply {
        pieces: vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234", b"5"],
        close: false,
    }])
    .await;
    let ep = endpoint(up.port, "");
    let Body::Plain(body) = get(&ep, Method::GET).await.unwrap().body else { panic!("expected a stream") };
    let mut body = body.idle_timeout(Duration::from_millis(300));
    assert_eq!(&body.next().await.unwrap().unwrap()[..], b"01234");
    // The second piece comes 20 ms later: well within the idle timeout.
    assert_eq!(&body.next().await.unwrap().unwrap()[..], b"5");
    let err = body.next().await.unwrap().unwrap_err();
    assert!(err.to_string().contains("sent nothing for 300ms"), "{err}");
    assert!(body.next().await.is_none());
    assert_eq!(pool::idle_count(&ep.origin), 0);
}

#[tokio::test]
async fn a_request_the_upstream_received_and_dropped_is_resent_only_when_idempotent() {
    let drop_it = Reply { pieces: vec![b""], close: true };
    // POST: received on a live pooled connection, dropped unanswered: not sent twice.
    let up = upstream(vec![reply(OK), drop_it.clone(), reply(OK)]).await;
    let ep = endpoint(up.port, "");
    get(&ep, Method::POST).await.unwrap();
    assert!(matches!(get(&ep, Method::POST).await, Err(Error::Closed)));
    assert_eq!(up.requests.lock().unwrap().len(), 2);
    // GET: the same failure is retried once on a new connection.
    let up = upstream(vec![reply(OK), drop_it, reply(OK)]).await;
    let ep = endpoint(up.port, "");
    get(&ep, Method::GET).await.unwrap();
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"ok");
    assert_eq!(up.requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn faulty_framing_is_read_once_and_the_connection_closed() {
    let up = upstream(vec![
        reply(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 99\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
        reply(b"HTTP/1.0 200 OK\r\nconnection: close, keep-alive\r\ncontent-length: 2\r\n\r\nok"),
        reply(OK),
    ])
    .await;
    let ep = endpoint(up.port, "");
    let res = get(&ep, Method::GET).await.unwrap();
    assert_eq!(res.length, None, "a Content-Length beside chunked is ignored");
    assert_eq!(body_of(res).await, b"ok");
    assert_eq!(pool::idle_count(&ep.origin), 0, "chunked beside a length: not reused");
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"ok");
    assert_eq!(pool::idle_count(&ep.origin), 0, "close wins over keep-alive");
    let up = upstream(vec![reply(b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok")]).await;
    assert!(matches!(get(&endpoint(up.port, ""), Method::GET).await, Err(Error::Invalid(_))));
}

#[tokio::test]
async fn late_bytes_after_a_complete_answer_never_answer_the_next_request() {
    // A body after a HEAD answer, and a second answer after a complete one, each sent a
    // moment later: the connection must not be reused for the next request.
    let late_head = Reply { pieces: vec![b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n", b"evil"], close: false };
    let late_extra = Reply { pieces: vec![OK, b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil"], close: false };
    let up = upstream(vec![late_head, reply(OK), late_extra, reply(OK)]).await;
    let ep = endpoint(up.port, "");
    let head = get(&ep, Method::HEAD).await.unwrap();
    assert_eq!(head.length, Some(4));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"ok");
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"ok");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"ok");
    assert_eq!(*up.accepted.lock().unwrap(), 3);
}

#[tokio::test]
async fn heads_split_anywhere_are_read_whole() {
    let up = upstream(vec![Reply {
        pieces: vec![b"HTTP/1.1 200 OK\r\ncont", b"ent-length: 2\r\n", b"\r", b"\nok"],
        close: false,
    }])
    .await;
    let ep = endpoint(up.port, "");
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"ok");
    assert!(head_complete(b"HTTP/1.1 200 OK\n\n", 0) && head_complete(b"a\r\n\r\n", 4));
    assert!(!head_complete(b"HTTP/1.1 200 OK\r\nx: y\r\n", 0));
}

#[tokio::test]
async fn a_streamed_body_longer_than_announced_is_refused() {
    let up = upstream(vec![reply(OK)]).await;
    let ep = endpoint(up.port, "");
    let chunks = stream::iter([Ok(Bytes::from_static(b"abc")), Ok(Bytes::from_static(b"defg"))]);
    let head = Head::new(&Method::POST, &ep, "/up", "").finish(Framing::Length(5));
    let res = send(&ep, head, SendBody::Stream(chunks, Some(5)), &Method::POST, false).await;
    assert!(matches!(res, Err(Error::Body(PayloadError::Overflow))));
    assert!(Error::ConnectTimeout.is_connect());
}

#[tokio::test]
async fn an_answer_sent_before_the_upload_ends_stops_the_upload_and_is_returned() {
    // The upstream reads the head only, answers 413 and then reads nothing more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if sock.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        sock.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!").await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let ep = endpoint(port, "");
    let total = 64u64 << 20;
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let chunks = stream::iter((0..total / chunk.len() as u64).map(move |_| Ok(chunk.clone())));
    let head = Head::new(&Method::POST, &ep, "/up", "").finish(Framing::Length(total));
    let sent = send(&ep, head, SendBody::Stream(chunks, Some(total)), &Method::POST, false);
    let res = tokio::time::timeout(Duration::from_secs(10), sent).await.expect("not stuck uploading").unwrap();
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body_of(res).await, b"big!");
    assert_eq!(pool::idle_count(&ep.origin), 0, "a connection with half a request on it is never reused");
}

#[tokio::test]
async fn a_complete_head_above_the_limit_is_refused_even_in_one_read() {
    let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
    while wire.len() <= MAX_HEAD {
        wire.extend_from_slice(format!("x-f{}: {}\r\n", wire.len(), "x".repeat(1000)).as_bytes());
    }
    wire.extend_from_slice(b"content-length: 0\r\n\r\n");
    let up = upstream(vec![reply(wire.leak())]).await;
    let err = get(&endpoint(up.port, ""), Method::GET).await.err().unwrap();
    assert!(err.to_string().contains("too large"), "{err}");
}

#[tokio::test]
async fn a_chunked_body_that_came_with_the_head_streams_from_its_first_chunk() {
    let up =
        upstream(vec![reply(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")])
            .await;
    let ep = endpoint(up.port, "");
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"abcde");
    let up = upstream(vec![reply(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"), reply(OK)]).await;
    let ep = endpoint(up.port, "");
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"");
    assert_eq!(body_of(get(&ep, Method::GET).await.unwrap()).await, b"ok");
    assert_eq!(*up.accepted.lock().unwrap(), 1, "an empty chunked body leaves the connection reusable");
}
