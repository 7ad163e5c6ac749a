//! Error types shared by every part of the codec.

use crate::header::HeaderName;

/// Why a message, header value or URI could not be parsed.
///
/// Every variant names the problem precisely enough to be used as (part of)
/// the reason phrase of a `400 Bad Request` (RFC 3261 §21.4.1 suggests the
/// reason phrase explain what was wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The buffer holds no start line.
    #[error("empty message")]
    Empty,
    /// The Request-Line or Status-Line is malformed.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// A header line has no colon or an invalid field name.
    #[error("malformed header line {line}")]
    HeaderLine {
        /// 1-based header line number (the start line is line 0).
        line: usize,
    },
    /// A header the caller asked for (or the RFC requires) is absent.
    #[error("missing {0} header")]
    MissingHeader(HeaderName),
    /// A single-valued header occurs more than once (RFC 3261 §7.3.1).
    #[error("multiple {0} values")]
    MultipleValues(HeaderName),
    /// A header value does not match its grammar.
    #[error("invalid {header} header: {problem}")]
    InvalidHeader {
        /// Which header.
        header: HeaderName,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A URI does not match the SIP-URI / SIPS-URI / absoluteURI grammar.
    #[error("invalid URI: {0}")]
    Uri(&'static str),
    /// A quoted string lacks its closing quote.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// A `<` lacks its matching `>`.
    #[error("unterminated <> in name-addr")]
    UnterminatedAngle,
    /// A Via value does not match `sent-protocol LWS sent-by *( SEMI via-params )`.
    #[error("invalid Via: {0}")]
    Via(&'static str),
    /// A name-addr / addr-spec is malformed.
    #[error("invalid address: {0}")]
    Address(&'static str),
    /// A parameter list (`;name=value`) is malformed.
    #[error("invalid parameter: {0}")]
    Param(&'static str),
}

impl ParseError {
    /// Attach a header name to a component error, turning e.g. a bad URI in
    /// `To` into "invalid To header: ..." so the reason phrase says where.
    pub(crate) fn in_header(self, header: HeaderName) -> ParseError {
        let problem = match self {
            ParseError::Uri(p)
            | ParseError::Via(p)
            | ParseError::Address(p)
            | ParseError::Param(p) => p,
            ParseError::UnterminatedQuote => "unterminated quoted string",
            ParseError::UnterminatedAngle => "unterminated <>",
            other => return other,
        };
        ParseError::InvalidHeader { header, problem }
    }
}
