//! Decoder for `Transfer-Encoding: chunked` response bodies (RFC 9112 §7.1): chunk
//! sizes with optional extensions, data, trailers (read and dropped).

use bytes::{Bytes, BytesMut};

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes.
    Data(Bytes),
    /// The buffer holds no complete next item; read more.
    NeedMore,
    /// The last chunk and the trailers were read: the body is complete.
    End,
}

/// Where the decoder is in the chunk grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
    Done,
}

/// Incremental chunked-body decoder over a connection's read buffer.
#[derive(Debug)]
pub struct Decoder {
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Self { state: State::Size }
    }
}

/// Takes one line (without its `\n` / `\r\n`) off the front of `buf`, if complete. A
/// line longer than `MAX_LINE` is refused whether it arrived whole or in pieces.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, &'static str> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i > MAX_LINE => Err("chunk line too long"),
        Some(i) => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err("chunk line too long"),
        None => Ok(None),
    }
}

fn parse_size(line: &[u8]) -> Result<u64, &'static str> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err("invalid chunk size");
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let d = (b as char).to_digit(16).ok_or("invalid chunk size")?;
        Ok(n * 16 + u64::from(d))
    })
}

impl Decoder {
    /// Decodes the next item from the front of `buf`.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                State::Size => match take_line(buf)? {
                    None => return Ok(Step::NeedMore),
                    Some(line) => {
                        let size = parse_size(&line)?;
                        self.state = if size == 0 { State::Trailers(0) } else { State::Data(size) };
                    }
                },
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 { State::DataEnd } else { State::Data(left) };
                    return Ok(Step::Data(data));
                }
                State::DataEnd => match buf.first() {
                    None => return Ok(Step::NeedMore),
                    Some(b'\n') => {
                        let _ = buf.split_to(1);
                        self.state = State::Size;
                    }
                    Some(b'\r') if buf.len() < 2 => return Ok(Step::NeedMore),
                    Some(b'\r') if buf[1] == b'\n' => {
                        let _ = buf.split_to(2);
                        self.state = State::Size;
                    }
                    Some(_) => return Err("missing CRLF after chunk data"),
                },
                State::Trailers(seen) => match take_line(buf)? {
                    None => return Ok(Step::NeedMore),
                    Some(line) if line.is_empty() => self.state = State::Done,
                    Some(line) => {
                        let seen = seen + line.len() + 2;
                        if seen > MAX_TRAILERS {
                            return Err("trailers too large");
                        }
                        self.state = State::Trailers(seen);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `piece` bytes and returns the body or the error.
    fn decode(wire: &[u8], piece: usize) -> Result<(Vec<u8>, usize), &'static str> {
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match d.step(&mut buf)? {
                Step::Data(b) => body.extend_from_slice(&b),
                Step::End => return Ok((body, buf.len())),
                Step::NeedMore if fed >= wire.len() => return Err("truncated"),
                Step::NeedMore => {
                    let end = (fed + piece).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunks_extensions_and_trailers_decode_in_any_split() {
        let wire = b"5;name=v\r\nhello\r\n7\r\n, world\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n";
        for piece in [1, 2, 3, 7, 64] {
            let (body, rest) = decode(wire, piece).unwrap();
            assert_eq!(body, b"hello, world0123456789", "piece {piece}");
            assert_eq!(rest, 0);
        }
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        assert_eq!(decode(b"3\nabc\n0\n\n", 64).unwrap().0, b"abc");
    }

    #[test]
    fn bytes_after_the_last_chunk_stay_in_the_buffer() {
        assert_eq!(decode(b"1\r\na\r\n0\r\n\r\nHTTP/1.1", 64).unwrap().1, 8);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(decode(b"zz\r\nabc\r\n0\r\n\r\n", 64).is_err());
        assert!(decode(b"3\r\nabcX\r\n0\r\n\r\n", 64).is_err());
        assert!(decode(b"\r\n", 64).is_err());
        assert!(decode(b"ffffffffffffffffff\r\n", 64).is_err());
        assert!(decode(&[b'1'; MAX_LINE + 10], 64).is_err());
        assert_eq!(decode(b"3\r\nabc\r\n", 64), Err("truncated"));
    }
}
