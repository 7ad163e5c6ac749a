//! A response written as the difference from the request it answers, so a
//! completed transaction can re-send it without keeping either.
//!
//! RFC 3261 §17.2.2: a completed non-INVITE server transaction re-sends
//! its final response to every retransmission of the request, for Timer J
//! (32 s over UDP). Most of that response is copied from the request (Via,
//! From, To, Call-ID, CSeq, §8.2.6.2), and a retransmission is the same
//! bytes again, so the response is rebuilt from the retransmitted request
//! plus what only the response had: its status line, the To tag, the
//! Contacts of a registrar, a Date.
//!
//! The delta is a list of operations, each appending to the response:
//!
//! | op | operands | appends |
//! |---|---|---|
//! | `COPY` | offset `u16`, length `u16` | those bytes of the request |
//! | `LIT8` / `LIT16` | length `u8` / `u16`, bytes | the bytes |
//! | `DATE` | seconds since the epoch, `u32` | `Date: <IMF-fixdate>\r\n` (RFC 3261 §20.17) |
//! | `STATUS` | index `u8` | a common status line, e.g. `SIP/2.0 200 OK\r\n` |
//!
//! Like the rest of this layer it never parses SIP: it matches lines. A
//! response line that begins with a whole request line becomes a `COPY` of
//! it plus a literal (the Via with `received`/`rport`, the To with its tag).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

const COPY: u8 = 1;
const LIT8: u8 = 2;
const LIT16: u8 = 3;
const DATE: u8 = 4;
const STATUS: u8 = 5;

/// The status lines a proxy and registrar send most, with RFC 3261's
/// reason phrases: one byte each in a delta.
const STATUS_LINES: [&[u8]; 12] = [
    b"SIP/2.0 200 OK\r\n",
    b"SIP/2.0 202 Accepted\r\n",
    b"SIP/2.0 400 Bad Request\r\n",
    b"SIP/2.0 401 Unauthorized\r\n",
    b"SIP/2.0 403 Forbidden\r\n",
    b"SIP/2.0 404 Not Found\r\n",
    b"SIP/2.0 407 Proxy Authentication Required\r\n",
    b"SIP/2.0 408 Request Timeout\r\n",
    b"SIP/2.0 480 Temporarily Unavailable\r\n",
    b"SIP/2.0 481 Call/Transaction Does Not Exist\r\n",
    b"SIP/2.0 500 Server Internal Error\r\n",
    b"SIP/2.0 503 Service Unavailable\r\n",
];

/// Request lines shorter than this are not worth a `COPY` (5 bytes).
const MIN_COPY: usize = 8;

/// The delta that rebuilds `response` from `request`, or `None` when the
/// request is too long for 16-bit offsets (larger than any UDP datagram:
/// only a reliable transport carries it, and those keep no completed
/// state).
pub fn encode(request: &[u8], response: &[u8]) -> Option<Vec<u8>> {
    if request.len() > usize::from(u16::MAX) {
        return None;
    }
    // The request's header lines (without CRLF) worth a COPY: a dozen or
    // two, kept on the stack.
    let mut lines = [(0u16, 0u16); 48];
    let mut count = 0;
    for (s, e) in lines_of(&request[..header_end(request)]) {
        let e = if request[..e].ends_with(b"\r\n") {
            e - 2
        } else {
            e
        };
        if e - s >= MIN_COPY && count < lines.len() {
            lines[count] = (s as u16, e as u16);
            count += 1;
        }
    }
    let lines = &lines[..count];
    let mut enc = Encoder::default();
    enc.out.reserve(response.len() / 2);
    for (start, end) in lines_of(response) {
        let line = &response[start..end];
        if start == 0
            && let Some(i) = STATUS_LINES.iter().position(|l| *l == line)
        {
            enc.fixed(STATUS, &[i as u8]);
            continue;
        }
        if line.starts_with(b"Date: ")
            && let Some(secs) = date_line(line)
        {
            enc.fixed(DATE, &secs.to_le_bytes());
            continue;
        }
        // The longest request line this response line begins with.
        let mut best: Option<(usize, usize)> = None;
        for &(s, e) in lines {
            let (s, e) = (usize::from(s), usize::from(e));
            let candidate = &request[s..e];
            if candidate.len() <= line.len()
                && candidate[0] == line[0]
                && best.is_none_or(|(bs, be)| e - s > be - bs)
                && line.starts_with(candidate)
            {
                best = Some((s, e));
            }
        }
        match best {
            Some((s, e)) => {
                // Past the request line's end while the bytes still agree:
                // its CRLF, usually.
                let mut n = e - s;
                while n < line.len() && request.get(s + n) == Some(&line[n]) {
                    n += 1;
                }
                enc.copy(s, n);
                enc.literal(&line[n..]);
            }
            None => enc.literal(line),
        }
    }
    Some(enc.finish())
}

/// The response `delta` describes, rebuilt from `request` (the
/// retransmission). `None` when the delta does not fit this request: it
/// is shorter than the one the delta was made from, so it is not a
/// retransmission of it.
pub fn decode(delta: &[u8], request: &[u8]) -> Option<Bytes> {
    let mut out = Vec::with_capacity(request.len() + delta.len());
    let mut ops = delta;
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        match op {
            COPY => {
                let off = usize::from(take_u16(&mut ops)?);
                let len = usize::from(take_u16(&mut ops)?);
                out.extend_from_slice(request.get(off..off + len)?);
            }
            LIT8 | LIT16 => {
                let len = if op == LIT8 {
                    usize::from(*take(&mut ops, 1)?.first()?)
                } else {
                    usize::from(take_u16(&mut ops)?)
                };
                out.extend_from_slice(take(&mut ops, len)?);
            }
            DATE => {
                let secs = u32::from_le_bytes(take(&mut ops, 4)?.try_into().ok()?);
                let at = UNIX_EPOCH + Duration::from_secs(u64::from(secs));
                out.extend_from_slice(b"Date: ");
                out.extend_from_slice(httpdate::fmt_http_date(at).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            STATUS => {
                let i = usize::from(*take(&mut ops, 1)?.first()?);
                out.extend_from_slice(STATUS_LINES.get(i)?);
            }
            _ => return None,
        }
    }
    Some(Bytes::from(out))
}

#[derive(Default)]
struct Encoder {
    out: Vec<u8>,
    /// The `COPY` being extended: its start in `out` and its request range.
    copy: Option<(usize, usize, usize)>,
    /// The literal being extended: where its length byte(s) are in `out`.
    lit: Option<usize>,
}

impl Encoder {
    fn copy(&mut self, off: usize, len: usize) {
        self.lit = None;
        if let Some((at, start, end)) = self.copy
            && end == off
            && end + len - start <= usize::from(u16::MAX)
        {
            // Contiguous with the previous copy (Call-ID then CSeq): one op.
            let new_len = (end + len - start) as u16;
            self.out[at + 3..at + 5].copy_from_slice(&new_len.to_le_bytes());
            self.copy = Some((at, start, end + len));
            return;
        }
        let at = self.out.len();
        self.out.push(COPY);
        self.out.extend_from_slice(&(off as u16).to_le_bytes());
        self.out.extend_from_slice(&(len as u16).to_le_bytes());
        self.copy = Some((at, off, off + len));
    }

    fn literal(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.copy = None;
        if let Some(at) = self.lit {
            // Extend the open literal while its length still fits.
            let (op, len) = (self.out[at], self.out.len() - at);
            let header = if op == LIT8 { 2 } else { 3 };
            let total = len - header + bytes.len();
            let max = if op == LIT8 {
                255
            } else {
                usize::from(u16::MAX)
            };
            if total <= max {
                if op == LIT8 {
                    self.out[at + 1] = total as u8;
                } else {
                    self.out[at + 1..at + 3].copy_from_slice(&(total as u16).to_le_bytes());
                }
                self.out.extend_from_slice(bytes);
                return;
            }
        }
        for chunk in bytes.chunks(usize::from(u16::MAX)) {
            let at = self.out.len();
            if chunk.len() <= 255 {
                self.out.extend_from_slice(&[LIT8, chunk.len() as u8]);
            } else {
                self.out.push(LIT16);
                self.out
                    .extend_from_slice(&(chunk.len() as u16).to_le_bytes());
            }
            self.out.extend_from_slice(chunk);
            self.lit = Some(at);
        }
    }

    /// An operation with fixed operands (`DATE`, `STATUS`).
    fn fixed(&mut self, op: u8, operands: &[u8]) {
        self.copy = None;
        self.lit = None;
        self.out.push(op);
        self.out.extend_from_slice(operands);
    }

    fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// The seconds of a `Date:` line that [`decode`] writes back byte for byte.
fn date_line(line: &[u8]) -> Option<u32> {
    let value = line.strip_prefix(b"Date: ")?.strip_suffix(b"\r\n")?;
    // IMF-fixdate is 29 bytes, e.g. `Mon, 07 Dec 2026 16:51:06 GMT`.
    if value.len() != 29 {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?;
    let at: SystemTime = httpdate::parse_http_date(value).ok()?;
    let secs = u32::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    // Only a date httpdate writes back the same way (it also accepts the
    // obsolete RFC 850 and asctime forms, which are not 29 bytes long, and
    // a wrong weekday, which it would correct).
    let mut again = Fixed29::default();
    std::fmt::write(&mut again, format_args!("{}", httpdate::HttpDate::from(at))).ok()?;
    (again.len == 29 && again.buf == value.as_bytes()).then_some(secs)
}

/// A 29-byte buffer to format a date into without allocating.
#[derive(Default)]
struct Fixed29 {
    buf: [u8; 29],
    len: usize,
}

impl std::fmt::Write for Fixed29 {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Where the header section ends (after its blank line), or the end.
fn header_end(msg: &[u8]) -> usize {
    memchr::memmem::find(msg, b"\r\n\r\n").map_or(msg.len(), |p| p + 4)
}

/// The lines of `bytes` with their CRLF (the last one may have none).
fn lines_of(bytes: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        // A bare LF inside a line is not its end: look for LF preceded by CR.
        let mut from = start;
        let end = loop {
            match memchr::memchr(b'\n', &bytes[from..]) {
                Some(p) if from + p > start && bytes[from + p - 1] == b'\r' => break from + p + 1,
                Some(p) => from += p + 1,
                None => break bytes.len(),
            }
        };
        let range = (start, end);
        start = end;
        Some(range)
    })
}

fn take<'a>(ops: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if ops.len() < n {
        return None;
    }
    let (head, rest) = ops.split_at(n);
    *ops = rest;
    Some(head)
}

fn take_u16(ops: &mut &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes(take(ops, 2)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:bench.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.61:5060;branch=z9hG4bK-31796-1-0;rport\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:alice@bench.test>;tag=31796SIPpTag001\r\n\
        To: <sip:alice@bench.test>\r\n\
        Call-ID: 1-31796@127.0.0.61\r\n\
        CSeq: 1 REGISTER\r\n\
        Contact: <sip:alice@127.0.0.62:5070>\r\n\
        Expires: 3600\r\n\
        Content-Length: 0\r\n\r\n";

    const OK: &str = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 127.0.0.61:5060;branch=z9hG4bK-31796-1-0;rport=5060;received=127.0.0.61\r\n\
        From: <sip:alice@bench.test>;tag=31796SIPpTag001\r\n\
        To: <sip:alice@bench.test>;tag=bcef84a636388724\r\n\
        Call-ID: 1-31796@127.0.0.61\r\n\
        CSeq: 1 REGISTER\r\n\
        Contact: <sip:alice@127.0.0.62:5070>;expires=3600\r\n\
        Date: Mon, 07 Dec 2026 16:51:06 GMT\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn a_registrar_ok_is_rebuilt_byte_for_byte_from_a_third_of_its_size() {
        let delta = encode(REGISTER.as_bytes(), OK.as_bytes()).unwrap();
        assert_eq!(decode(&delta, REGISTER.as_bytes()).unwrap(), OK.as_bytes());
        // Status line, the Via's and To's additions, the Contact's expires
        // and 5 bytes of Date: what the request cannot give.
        assert!(
            delta.len() < OK.len() / 2,
            "{} of {}",
            delta.len(),
            OK.len()
        );
    }

    #[test]
    fn a_response_with_nothing_in_common_is_all_literal_and_still_exact() {
        let response =
            "SIP/2.0 400 Bad Request\r\nX: ".to_owned() + &"y".repeat(70_000) + "\r\n\r\n";
        let delta = encode(REGISTER.as_bytes(), response.as_bytes()).unwrap();
        assert_eq!(
            decode(&delta, REGISTER.as_bytes()).unwrap(),
            response.as_bytes()
        );
    }

    #[test]
    fn a_date_that_would_not_come_back_identical_stays_literal() {
        let response = "SIP/2.0 200 OK\r\nDate: Mon, 7 Dec 2026 16:51:06 GMT\r\n\r\n";
        let delta = encode(REGISTER.as_bytes(), response.as_bytes()).unwrap();
        assert!(!delta.contains(&DATE));
        assert_eq!(
            decode(&delta, REGISTER.as_bytes()).unwrap(),
            response.as_bytes()
        );
    }

    #[test]
    fn a_shorter_request_does_not_fit_and_a_corrupt_delta_is_refused() {
        let delta = encode(REGISTER.as_bytes(), OK.as_bytes()).unwrap();
        assert!(decode(&delta, &REGISTER.as_bytes()[..40]).is_none());
        assert!(decode(&[9, 1, 2], REGISTER.as_bytes()).is_none());
        assert!(decode(&[COPY, 1], REGISTER.as_bytes()).is_none());
        assert!(decode(&[LIT16, 200, 0, b'x'], REGISTER.as_bytes()).is_none());
    }
}
