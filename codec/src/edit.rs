//! Editing by splicing. A proxy forwards almost every byte unchanged
//! (RFC 3261 §16.6 only adds a Via, maybe a Record-Route, pops a Route,
//! rewrites the Request-URI and Max-Forwards), so instead of re-serialising
//! a message the [`Editor`] records byte-range replacements against the
//! original buffer and copies everything else verbatim in one pass.
//!
//! The body is never touched, so Content-Length stays valid.

use std::io::Write as _;

use bytes::Bytes;

use crate::header::HeaderName;
use crate::message::{HeaderSpan, SipMessage, Span, StartLine};
use crate::scan::CommaSplit;
use crate::via::Via;

/// Replace `buf[start..end]` with `arena[text]` (`start == end`: insert).
#[derive(Debug, Clone, Copy)]
struct Splice {
    start: u32,
    end: u32,
    /// Tie-break among splices at the same `start`: lower first.
    order: u32,
    text: (u32, u32),
}

/// Builder of an edited copy of a message. See the module docs.
///
/// Edits refer to the original message; when two edits overlap, the one
/// starting first wins and the other is dropped (e.g. setting `received`
/// on a Via value that is also being removed).
#[derive(Debug)]
pub struct Editor<'m> {
    msg: &'m SipMessage,
    arena: Vec<u8>,
    splices: Vec<Splice>,
    next_order: u32,
    /// Values to pop per header name (applied in `finish`).
    pops: Vec<(HeaderName, u32)>,
    removed: Vec<HeaderName>,
    request_uri: Option<Splice>,
    max_forwards: Option<Splice>,
    via_received: Vec<Splice>,
}

/// Orders pushes so that the latest push ends up topmost.
const PUSH_BASE: u32 = u32::MAX / 2;

impl<'m> Editor<'m> {
    pub(crate) fn new(msg: &'m SipMessage) -> Self {
        Editor {
            msg,
            arena: Vec::with_capacity(256),
            splices: Vec::new(),
            next_order: 0,
            pops: Vec::new(),
            removed: Vec::new(),
            request_uri: None,
            max_forwards: None,
            via_received: Vec::new(),
        }
    }

    fn text(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> (u32, u32) {
        let start = self.arena.len() as u32;
        f(&mut self.arena);
        (start, self.arena.len() as u32)
    }

    fn lines(&self, name: HeaderName) -> impl Iterator<Item = &'m HeaderSpan> + use<'m> {
        let msg: &'m SipMessage = self.msg;
        msg.headers.iter().filter(move |h| h.name == name)
    }

    /// Insert `Name: value` as a new line above the first line of that
    /// header (so it becomes the topmost value: push Via, push
    /// Record-Route, push Path), or above the first header if absent.
    /// Several pushes of the same header stack: the last one ends on top.
    /// [`HeaderName::Other`] has no spelling: use [`Editor::push_raw_header`].
    pub fn push_header(&mut self, name: HeaderName, value: &str) -> &mut Self {
        if name == HeaderName::Other {
            return self;
        }
        self.push_raw_header(name.as_str(), value)
    }

    /// Like [`Editor::push_header`] with an explicit name.
    pub fn push_raw_header(&mut self, raw_name: &str, value: &str) -> &mut Self {
        let name = HeaderName::parse(raw_name);
        let at = match name {
            HeaderName::Other => None,
            n => self.lines(n).next().map(|h| h.line.start),
        }
        .unwrap_or(self.msg.headers_start);
        let text = self.text(|a| line(a, raw_name, value));
        self.next_order += 1;
        self.splices.push(Splice {
            start: at,
            end: at,
            order: PUSH_BASE - self.next_order,
            text,
        });
        self
    }

    /// Add `Name: value` after the last header line.
    pub fn append_header(&mut self, raw_name: &str, value: &str) -> &mut Self {
        let at = self.msg.headers_end;
        let text = self.text(|a| line(a, raw_name, value));
        self.next_order += 1;
        self.splices.push(Splice {
            start: at,
            end: at,
            order: PUSH_BASE + self.next_order,
            text,
        });
        self
    }

    /// Remove the first remaining value of `name` (pop a Route entry, or
    /// the top Via of a response, RFC 3261 §16.7 step 3). A line left
    /// without values is removed entirely. Calls accumulate: two calls pop
    /// two values.
    pub fn remove_first_value(&mut self, name: HeaderName) -> &mut Self {
        match self.pops.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => self.pops.push((name, 1)),
        }
        self
    }

    /// Remove every line of `name`.
    pub fn remove_headers(&mut self, name: HeaderName) -> &mut Self {
        if !self.removed.contains(&name) {
            self.removed.push(name);
        }
        self
    }

    /// Remove every line whose name is `raw_name` (case-insensitive; a
    /// known header also matches its compact form), including extension
    /// headers that have no [`HeaderName`] of their own.
    pub fn remove_raw_headers(&mut self, raw_name: &str) -> &mut Self {
        match HeaderName::parse(raw_name) {
            HeaderName::Other => {
                let msg: &'m SipMessage = self.msg;
                for h in msg.headers.iter().filter(|h| h.name == HeaderName::Other) {
                    if msg.text(h.raw_name).eq_ignore_ascii_case(raw_name) {
                        self.splices.push(removal(h.line));
                    }
                }
                self
            }
            known => self.remove_headers(known),
        }
    }

    /// Replace the Request-URI (RFC 3261 §16.6 step 2). No-op on responses.
    pub fn set_request_uri(&mut self, uri: &str) -> &mut Self {
        if let StartLine::Request { uri: span, .. } = self.msg.start {
            let text = self.text(|a| a.extend_from_slice(uri.as_bytes()));
            self.request_uri = Some(Splice {
                start: span.start,
                end: span.end,
                order: 0,
                text,
            });
        }
        self
    }

    /// Set Max-Forwards to `n`: replace the value of the first line, or add
    /// the header if absent (RFC 3261 §16.6 step 3).
    pub fn set_max_forwards(&mut self, n: u32) -> &mut Self {
        let existing = self.lines(HeaderName::MaxForwards).next().map(|h| h.value);
        let (start, end, text) = match existing {
            Some(v) => (v.start, v.end, self.text(|a| _ = write!(a, "{n}"))),
            None => {
                let at = self.msg.headers_end;
                let text = self.text(|a| _ = write!(a, "Max-Forwards: {n}\r\n"));
                (at, at, text)
            }
        };
        // A new line goes with the appended lines, in call order.
        self.next_order += 1;
        let order = if start == end {
            PUSH_BASE + self.next_order
        } else {
            0
        };
        self.max_forwards = Some(Splice {
            start,
            end,
            order,
            text,
        });
        self
    }

    /// RFC 3261 §18.2.1 / RFC 3581 §4: set `received=` on the top Via
    /// (replacing an existing value) and fill in a client's `rport`
    /// (a Via without `rport` is left without it: only a client that asked
    /// gets the port). `None` leaves the respective parameter alone.
    pub fn set_top_via_received(
        &mut self,
        received: Option<&str>,
        rport: Option<u16>,
    ) -> &mut Self {
        self.via_received.clear();
        let msg: &'m SipMessage = self.msg;
        let Some(line) = self.lines(HeaderName::Via).next() else {
            return self;
        };
        let line_text = msg.text(line.value);
        let Some(value) = CommaSplit::new(line_text).next() else {
            return self;
        };
        let Ok(via) = Via::parse(value) else {
            return self;
        };
        let base = msg.buf.as_ptr() as usize;
        let off = |s: &str| (s.as_ptr() as usize - base) as u32;
        let mut received_done = received.is_none();
        let mut edits = Vec::new();
        for (name, val) in via.params.iter() {
            if !received_done && name.eq_ignore_ascii_case("received") {
                let r = received.unwrap_or_default();
                let text = self.text(|a| _ = write!(a, "received={r}"));
                let end = val.map_or(off(name) + name.len() as u32, |v| off(v) + v.len() as u32);
                edits.push(Splice {
                    start: off(name),
                    end,
                    order: 0,
                    text,
                });
                received_done = true;
            } else if let (Some(p), true) = (rport, name.eq_ignore_ascii_case("rport")) {
                let text = self.text(|a| _ = write!(a, "rport={p}"));
                let end = val.map_or(off(name) + name.len() as u32, |v| off(v) + v.len() as u32);
                edits.push(Splice {
                    start: off(name),
                    end,
                    order: 0,
                    text,
                });
            }
        }
        if !received_done {
            let r = received.unwrap_or_default();
            let at = off(via.raw) + via.raw.len() as u32;
            let text = self.text(|a| _ = write!(a, ";received={r}"));
            edits.push(Splice {
                start: at,
                end: at,
                order: 0,
                text,
            });
        }
        self.via_received = edits;
        self
    }

    /// Apply a pending pop list to produce removal splices.
    fn pop_splices(&self, out: &mut Vec<Splice>) {
        let msg = self.msg;
        let base = msg.buf.as_ptr() as usize;
        for name in &self.removed {
            for h in self.lines(*name) {
                out.push(removal(h.line));
            }
        }
        for &(name, count) in &self.pops {
            if self.removed.contains(&name) {
                continue;
            }
            let mut left = count as usize;
            for h in self.lines(name) {
                if left == 0 {
                    break;
                }
                // Count the line's values, noting the first and the first
                // one that stays (without collecting them).
                let (mut n, mut first, mut keep) = (0, None, None);
                for (i, v) in CommaSplit::new(msg.text(h.value)).enumerate() {
                    if i == 0 {
                        first = Some(v);
                    }
                    if i == left {
                        keep = Some(v);
                    }
                    n = i + 1;
                }
                if let (Some(first), Some(keep)) = (first, keep) {
                    let start = first.as_ptr() as usize - base;
                    let end = keep.as_ptr() as usize - base;
                    out.push(removal(Span {
                        start: start as u32,
                        end: end as u32,
                    }));
                    left = 0;
                } else {
                    out.push(removal(h.line));
                    left = left.saturating_sub(n);
                }
            }
        }
    }

    /// Write the edited message into `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut all: Vec<Splice> = Vec::with_capacity(self.splices.len() + 8);
        all.extend_from_slice(&self.splices);
        all.extend(self.request_uri);
        all.extend(self.max_forwards);
        all.extend_from_slice(&self.via_received);
        self.pop_splices(&mut all);
        // Inserts before replacements at the same offset, then by order.
        all.sort_unstable_by_key(|s| (s.start, s.end != s.start, s.order));
        let buf: &[u8] = &self.msg.buf[..self.msg.message_end()];
        out.reserve(buf.len() + self.arena.len());
        // A head that runs to the end of the buffer without a final CRLF
        // (only possible in messages validation rejects) gets one before
        // the first whole line inserted there, so lines never run together.
        // Whole-line inserts have a non-zero order; a `received` added to a
        // Via value ending there has order 0 and sorts before them.
        let headers_end = self.msg.headers_end as usize;
        let mut missing_crlf = headers_end > 0 && buf.get(headers_end - 1) != Some(&b'\n');
        let mut cursor = 0usize;
        for s in &all {
            let (start, end) = (s.start as usize, s.end as usize);
            if start < cursor || end > buf.len() {
                continue; // overlaps an earlier edit, or past the end: dropped
            }
            out.extend_from_slice(&buf[cursor..start]);
            if missing_crlf && start == headers_end && start == end && s.order != 0 {
                out.extend_from_slice(b"\r\n");
                missing_crlf = false;
            }
            out.extend_from_slice(&self.arena[s.text.0 as usize..s.text.1 as usize]);
            cursor = end;
        }
        out.extend_from_slice(&buf[cursor..]);
    }

    /// The edited message.
    pub fn finish(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.msg.buf.len() + self.arena.len());
        self.write_to(&mut out);
        Bytes::from(out)
    }
}

impl SipMessage {
    /// This message with `Name: value` pushed above the first line of that
    /// header (above the first header when it has none): the message
    /// `SipMessage::parse(self.edit().push_header(name, value).finish())`
    /// gives, without parsing it again. The header index is the old one,
    /// shifted past the new line. A value with a line break, or a name
    /// with no spelling ([`HeaderName::Other`]), is left to the editor and
    /// the parser, which refuse what they must.
    pub fn with_header_pushed(&self, name: HeaderName, value: &str) -> Option<SipMessage> {
        if name == HeaderName::Other || value.bytes().any(|b| b == b'\r' || b == b'\n') {
            let mut e = self.edit();
            e.push_header(name, value);
            return SipMessage::parse(e.finish()).ok();
        }
        let index = self.headers.iter().position(|h| h.name == name);
        let at = index.map_or(self.headers_start, |i| self.headers[i].line.start);
        let raw_name = name.as_str();
        let mut buf = Vec::with_capacity(self.buf.len() + raw_name.len() + value.len() + 4);
        buf.extend_from_slice(&self.buf[..at as usize]);
        line(&mut buf, raw_name, value);
        let added = (buf.len() - at as usize) as u32;
        buf.extend_from_slice(&self.buf[at as usize..]);
        let shift = |s: Span| Span {
            start: s.start + added,
            end: s.end + added,
        };
        let value_start = at + raw_name.len() as u32 + 2;
        let trimmed = value.trim_matches([' ', '\t']);
        let lead = (value.len() - value.trim_start_matches([' ', '\t']).len()) as u32;
        let new = HeaderSpan {
            name,
            raw_name: Span::new(at as usize, (at as usize) + raw_name.len()),
            value: Span {
                start: value_start + lead,
                end: value_start + lead + trimmed.len() as u32,
            },
            line: Span {
                start: at,
                end: at + added,
            },
        };
        let split = index.unwrap_or(0);
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        headers.extend_from_slice(&self.headers[..split]);
        headers.push(new);
        headers.extend(self.headers[split..].iter().map(|h| HeaderSpan {
            raw_name: shift(h.raw_name),
            value: shift(h.value),
            line: shift(h.line),
            ..*h
        }));
        Some(SipMessage {
            buf: Bytes::from(buf),
            start: self.start.clone(),
            version: self.version,
            start_line: self.start_line,
            start_line_strict: self.start_line_strict,
            headers,
            headers_start: self.headers_start,
            headers_end: self.headers_end + added,
            body_start: self.body_start + added,
        })
    }
}

fn removal(span: Span) -> Splice {
    Splice {
        start: span.start,
        end: span.end,
        order: 0,
        text: (0, 0),
    }
}

fn line(a: &mut Vec<u8>, name: &str, value: &str) {
    a.extend_from_slice(name.as_bytes());
    a.extend_from_slice(b": ");
    a.extend_from_slice(value.as_bytes());
    a.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything a parse records, to compare two messages by.
    fn index(m: &SipMessage) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {} {:?} {} {} {}",
            m.buf,
            m.start,
            m.version,
            m.start_line,
            m.start_line_strict,
            m.headers,
            m.headers_start,
            m.headers_end,
            m.body_start
        )
    }

    #[test]
    fn a_pushed_header_indexes_as_a_parse_of_the_edited_bytes_would() {
        let request = "REGISTER sip:example.test SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK1\r\n\
            Path: <sip:other.test;lr>\r\n\
            To: <sip:a@example.test>\r\nFrom: <sip:a@example.test>;tag=1\r\n\
            Call-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 4\r\n\r\nbody";
        let response = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\n\
            Content-Length: 0\r\n\r\n";
        for text in [request, response] {
            let m = SipMessage::parse(Bytes::copy_from_slice(text.as_bytes())).unwrap();
            for (name, value) in [
                (HeaderName::Path, "<sip:edge.test;lr>"),
                (HeaderName::Via, "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK3"),
                (HeaderName::RecordRoute, "  <sip:rr.test;lr> "),
                (HeaderName::Other, "x"),
                (HeaderName::Path, "bad\r\nInjected: yes"),
            ] {
                let mut e = m.edit();
                e.push_header(name, value);
                let parsed = SipMessage::parse(e.finish()).ok();
                let pushed = m.with_header_pushed(name, value);
                assert_eq!(
                    pushed.as_ref().map(index),
                    parsed.as_ref().map(index),
                    "{name:?}: {value:?}"
                );
            }
        }
    }
}
