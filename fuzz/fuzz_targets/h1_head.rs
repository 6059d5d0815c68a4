//! The upstream response-head reader (`proxy/h1`): any bytes an upstream sends. Read at
//! once and in pieces it must give the same answer, and an answer must be consistent.
//! The request method and the piece size come from the input's length, so every seed is
//! a plain HTTP response.
#![no_main]

use gateway::fuzzing::{Framing, Method, read_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|wire: &[u8]| {
    let method = [Method::GET, Method::HEAD, Method::POST, Method::CONNECT][wire.len() % 4].clone();
    let piece = 1 + wire.len() % 13;
    let whole = read_head(wire, &[], &method);
    let split = read_head(wire, &vec![piece; wire.len()], &method);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "one-shot vs pieces of {piece}"),
        (Err(_), Err(_)) => {}
        _ => panic!("one-shot {whole:?} vs pieces of {piece} {split:?}"),
    }
    if let Ok(h) = whole {
        assert!(h.consumed <= wire.len());
        assert!((100..=999).contains(&h.status) && !(100..200).contains(&h.status));
        if method == Method::HEAD || h.status == 204 || h.status == 304 {
            assert_eq!(h.framing, Framing::None);
        }
        if h.framing == Framing::UntilClose || method == Method::CONNECT {
            assert!(!h.keep_alive);
        }
        for (name, _) in &h.headers {
            assert!(!["connection", "transfer-encoding", "keep-alive", "upgrade"].contains(&name.as_str()));
            assert!(name != "content-length" || h.status == 304, "content-length kept on a {}", h.status);
        }
    }
});
