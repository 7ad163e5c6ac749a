//! A change to the headers of a forwarded request or response: what a
//! routing policy asks for, filtered so that no edit can touch what the
//! proxy owns.

use switchyard_codec::Editor;

/// A header change requested by a policy. Edits of the fields the proxy owns
/// (see [`HeaderEdit::is_allowed`]) are ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderEdit {
    /// Append one field.
    Add { name: String, value: String },
    /// Remove every field of this name, then append this one.
    Set { name: String, value: String },
    /// Remove every field of this name.
    Remove { name: String },
}

impl HeaderEdit {
    pub fn name(&self) -> &str {
        match self {
            HeaderEdit::Add { name, .. }
            | HeaderEdit::Set { name, .. }
            | HeaderEdit::Remove { name } => name,
        }
    }

    /// Fields that carry transaction, dialog or routing state: a policy
    /// changing them would break RFC 3261 matching (§17.2.3, §12) or the
    /// proxy's own Route/Record-Route processing.
    pub fn is_allowed(&self) -> bool {
        const OWNED: [&str; 15] = [
            "via",
            "v",
            "cseq",
            "call-id",
            "i",
            "from",
            "f",
            "to",
            "t",
            "content-length",
            "l",
            "route",
            "record-route",
            // Loop and fan-out limits (RFC 3261 §16.6 step 3, RFC 5393):
            // raised by a policy, they would let a request loop or fork
            // without bound.
            "max-forwards",
            "max-breadth",
        ];
        let name = self.name().trim();
        let value_ok = match self {
            HeaderEdit::Add { value, .. } | HeaderEdit::Set { value, .. } => {
                // No header injection: a value is one line.
                !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
            }
            HeaderEdit::Remove { .. } => true,
        };
        value_ok
            && !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
            && !OWNED.iter().any(|o| o.eq_ignore_ascii_case(name))
    }
}

impl HeaderEdit {
    /// Applies allowed edits to a message being forwarded; others are skipped.
    pub fn apply_all(edits: &[HeaderEdit], e: &mut Editor<'_>) {
        for edit in edits.iter().filter(|edit| edit.is_allowed()) {
            match edit {
                HeaderEdit::Add { name, value } => {
                    e.append_header(name, value);
                }
                HeaderEdit::Set { name, value } => {
                    e.remove_raw_headers(name).append_header(name, value);
                }
                HeaderEdit::Remove { name } => {
                    e.remove_raw_headers(name);
                }
            }
        }
    }
}
