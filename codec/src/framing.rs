//! Stream framing for connection-oriented transports (RFC 3261 §18.3):
//! a message ends `Content-Length` bytes after the blank line, and the
//! header is mandatory on streams. Also recognises RFC 5626 §3.5.1
//! keep-alives (CRLFCRLF ping, CRLF pong).

use crate::header::HeaderName;
use crate::scan::parse_u32;

/// Why a stream cannot be framed. The connection should be answered with
/// 400 (when a response can be addressed) and closed: framing is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// RFC 3261 §18.3: Content-Length MUST be present on stream transports.
    #[error("missing Content-Length")]
    MissingContentLength,
    /// Message (or header block so far) exceeds the configured maximum.
    #[error("message too large")]
    TooLarge,
    /// Content-Length unparsable or present with conflicting values.
    #[error("malformed Content-Length")]
    Malformed,
}

/// Result of looking at the start of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Need more bytes.
    Incomplete,
    /// Keep-alive bytes to consume: 4 for a CRLFCRLF ping (answer with a
    /// CRLF pong), 2 for a lone CRLF (a pong, or padding before a message).
    KeepAlive(usize),
    /// A whole message occupies `buf[..n]`.
    Complete(usize),
    Error(FrameError),
}

/// Find the first message in `buf`. `max_size` bounds head + body.
pub fn frame(buf: &[u8], max_size: usize) -> Framing {
    if buf.starts_with(b"\r\n\r\n") {
        return Framing::KeepAlive(4);
    }
    if buf.starts_with(b"\r\n") {
        // A lone CRLF may be the first half of a ping: wait for the next
        // two bytes before deciding.
        return if buf.len() >= 4 {
            Framing::KeepAlive(2)
        } else {
            Framing::Incomplete
        };
    }
    if buf == b"\r" {
        return Framing::Incomplete;
    }
    let Some(head_end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return if buf.len() > max_size {
            Framing::Error(FrameError::TooLarge)
        } else {
            Framing::Incomplete
        };
    };
    let body_start = head_end + 4;
    if body_start > max_size {
        return Framing::Error(FrameError::TooLarge);
    }
    let mut length: Option<usize> = None;
    // Skip the start line; scan header lines for Content-Length / `l`.
    let head = &buf[..head_end];
    let mut lines = head.split(|&b| b == b'\n').skip(1);
    let mut pending: Option<Vec<u8>> = None;
    let check = |value: &[u8], length: &mut Option<usize>| -> Result<(), FrameError> {
        let v = std::str::from_utf8(value).map_err(|_| FrameError::Malformed)?;
        let n = parse_u32(v.trim_matches([' ', '\t', '\r', '\n'])).ok_or(FrameError::Malformed)?
            as usize;
        match *length {
            Some(prev) if prev != n => Err(FrameError::Malformed),
            _ => {
                *length = Some(n);
                Ok(())
            }
        }
    };
    for line in lines.by_ref() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(p) = pending.as_mut() {
                p.extend_from_slice(line);
            }
            continue;
        }
        if let Some(p) = pending.take()
            && let Err(e) = check(&p, &mut length)
        {
            return Framing::Error(e);
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = std::str::from_utf8(&line[..colon]).unwrap_or("");
        if HeaderName::parse(name.trim_end_matches([' ', '\t'])) == HeaderName::ContentLength {
            pending = Some(line[colon + 1..].to_vec());
        }
    }
    if let Some(p) = pending.take()
        && let Err(e) = check(&p, &mut length)
    {
        return Framing::Error(e);
    }
    let Some(len) = length else {
        return Framing::Error(FrameError::MissingContentLength);
    };
    let total = body_start.saturating_add(len);
    if total > max_size {
        return Framing::Error(FrameError::TooLarge);
    }
    if buf.len() < total {
        Framing::Incomplete
    } else {
        Framing::Complete(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 4\r\n\r\nbody";

    #[test]
    fn complete_incomplete_and_pipelined() {
        assert_eq!(frame(MSG, 65536), Framing::Complete(MSG.len()));
        assert_eq!(frame(&MSG[..MSG.len() - 1], 65536), Framing::Incomplete);
        assert_eq!(frame(&MSG[..20], 65536), Framing::Incomplete);
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        assert_eq!(frame(&two, 65536), Framing::Complete(MSG.len()));
    }

    #[test]
    fn keepalives() {
        assert_eq!(frame(b"\r\n\r\n", 100), Framing::KeepAlive(4));
        assert_eq!(frame(b"\r\n", 100), Framing::Incomplete);
        assert_eq!(frame(b"\r\nOPTI", 100), Framing::KeepAlive(2));
    }

    #[test]
    fn errors() {
        let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(
            frame(no_cl, 1000),
            Framing::Error(FrameError::MissingContentLength)
        );
        assert_eq!(frame(MSG, 40), Framing::Error(FrameError::TooLarge));
        assert_eq!(
            frame(&[b'A'; 100], 50),
            Framing::Error(FrameError::TooLarge)
        );
        let bad = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(frame(bad, 1000), Framing::Error(FrameError::Malformed));
        let two = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
        assert_eq!(frame(two, 1000), Framing::Error(FrameError::Malformed));
    }
}
