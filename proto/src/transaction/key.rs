//! Transaction matching keys (RFC 3261 §17.1.3, §17.2.3), built from the
//! strings the caller parsed so this layer needs no codec.
//!
//! Each key is a single normalised allocation: a proxy keeps one per live
//! transaction in a hash map, and hashing one slice is cheaper than three.

use std::fmt;

/// The prefix of every RFC 3261 branch (§8.1.1.7). Requests without it come
/// from RFC 2543 elements and need the legacy matching of §17.2.3, which
/// these keys do not implement.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Whether `branch` carries the [`MAGIC_COOKIE`], i.e. is unique per
/// transaction and may be used as a key. Like every token it is compared
/// case-insensitively (§7.3.1).
pub fn is_rfc3261_branch(branch: &str) -> bool {
    branch
        .get(..MAGIC_COOKIE.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(MAGIC_COOKIE))
}

/// Identifies a server transaction (§17.2.3): the branch and sent-by of the
/// request's top Via, and its method, with ACK standing for INVITE (an ACK
/// for a non-2xx response belongs to the INVITE transaction) while CANCEL
/// keeps its own transaction despite sharing the INVITE's branch.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    /// `branch` + `sent_by` + `method`, normalised.
    text: Box<str>,
    branch_len: usize,
    sent_by_len: usize,
}

impl ServerKey {
    /// `sent_by` is the Via's `host[:port]` as received. Branch and host are
    /// tokens and compare case-insensitively (§7.3.1); the port compares as
    /// written (the retransmitting element sends the same Via). Methods are
    /// case-sensitive (§7.1).
    pub fn new(branch: &str, sent_by: &str, method: &str) -> Self {
        let method = if method == "ACK" { "INVITE" } else { method };
        let mut text = String::with_capacity(branch.len() + sent_by.len() + method.len());
        text.push_str(branch);
        text.push_str(sent_by);
        text.make_ascii_lowercase();
        text.push_str(method);
        ServerKey {
            text: text.into_boxed_str(),
            branch_len: branch.len(),
            sent_by_len: sent_by.len(),
        }
    }

    /// The branch, lower-cased.
    pub fn branch(&self) -> &str {
        &self.text[..self.branch_len]
    }

    /// The sent-by, lower-cased.
    pub fn sent_by(&self) -> &str {
        &self.text[self.branch_len..self.branch_len + self.sent_by_len]
    }

    /// The method of the transaction (INVITE for an ACK).
    pub fn method(&self) -> &str {
        &self.text[self.branch_len + self.sent_by_len..]
    }

    /// Branch, sent-by and method as one normalised string.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKey")
            .field("branch", &self.branch())
            .field("sent_by", &self.sent_by())
            .field("method", &self.method())
            .finish()
    }
}

/// Identifies a client transaction (§17.1.3): the branch we put in our top
/// Via, and the method (the CSeq method of a response), so that responses
/// to a CANCEL do not match the INVITE it cancels.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// `branch` + `method`, normalised.
    text: Box<str>,
    branch_len: usize,
}

impl ClientKey {
    pub fn new(branch: &str, method: &str) -> Self {
        let mut text = String::with_capacity(branch.len() + method.len());
        text.push_str(branch);
        text.make_ascii_lowercase();
        text.push_str(method);
        ClientKey {
            text: text.into_boxed_str(),
            branch_len: branch.len(),
        }
    }

    /// The branch, lower-cased.
    pub fn branch(&self) -> &str {
        &self.text[..self.branch_len]
    }

    pub fn method(&self) -> &str {
        &self.text[self.branch_len..]
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("branch", &self.branch())
            .field("method", &self.method())
            .finish()
    }
}
