//! The chunked response-body decoder (`proxy/h1/chunked.rs`): any bytes an upstream
//! sends. Decoded at once and in pieces it must give the same body (or the same error).
#![no_main]

use gateway::fuzzing::decode_chunked;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|wire: &[u8]| {
    let piece = 1 + wire.len() % 7;
    let whole = decode_chunked(wire, &[]);
    let split = decode_chunked(wire, &vec![piece; wire.len()]);
    assert_eq!(whole, split, "one-shot vs pieces of {piece}");
    if let Ok((body, rest)) = whole {
        assert!(body.len() + rest <= wire.len());
    }
});
