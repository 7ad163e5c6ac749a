//! Hostile test policy: `on-request` for an INVITE proceeds with a 1 MiB header value
//! (`X-Huge: aaaa...`), more than any UDP datagram or sane TCP message can
//! carry. The host must refuse or cap the edit rather than forward it.

use switchyard_policy::prelude::*;

/// Size of the header value added to every request.
pub const HUGE_LEN: usize = 1 << 20;

/// Adds a 1 MiB header in `on_request`.
pub struct HugeHeader;

impl Policy for HugeHeader {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(HugeHeader)
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        // Only INVITEs: the host's load-time smoke call (an OPTIONS) must
        // pass, or the module would be refused before it could misbehave.
        if !req.is_invite() {
            return RequestDecision::proceed();
        }
        RequestDecision::proceed().with_header("X-Huge", "a".repeat(HUGE_LEN))
    }
}

switchyard_policy::export_policy!(HugeHeader);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::HeaderEdit;

    #[test]
    fn adds_one_mebibyte() {
        let req = Request::parse("t", "INVITE sip:x@y SIP/2.0\r\n\r\n").unwrap();
        let d = HugeHeader.on_request(&req);
        match &d.headers[..] {
            [HeaderEdit::Add(h)] => assert_eq!(h.value.len(), HUGE_LEN),
            other => panic!("{other:?}"),
        }
    }
}
