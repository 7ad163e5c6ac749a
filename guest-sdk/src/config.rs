//! The tenant's policy configuration as handed to `init`.

use serde::de::DeserializeOwned;

/// The `config` table of the tenant in the node's TOML, as JSON text
/// (`{}` when the tenant has none).
///
/// Deserialize it into your own `#[derive(Deserialize)]` type with
/// [`Config::parse`]; add `#[serde(deny_unknown_fields)]` to refuse typos
/// at load time instead of ignoring them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    json: String,
}

impl Config {
    /// Wraps JSON text (what the host passes; also handy in tests).
    pub fn new(json: impl Into<String>) -> Self {
        Config { json: json.into() }
    }

    /// The JSON text as received.
    pub fn as_str(&self) -> &str {
        &self.json
    }

    /// Deserializes the configuration. The error names the offending key
    /// and position, e.g. ``invalid policy config: unknown field `extensons`
    /// at line 1 column 13``, and is what the operator sees when the load is
    /// refused.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        let text = if self.json.trim().is_empty() {
            "{}"
        } else {
            &self.json
        };
        serde_json::from_str(text).map_err(|e| format!("invalid policy config: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        #[serde(default)]
        limit: u32,
    }

    #[test]
    fn parses_and_reports_errors() {
        assert_eq!(
            Config::new(r#"{"limit":3}"#).parse::<Settings>().unwrap(),
            Settings { limit: 3 }
        );
        assert_eq!(
            Config::new("").parse::<Settings>().unwrap(),
            Settings { limit: 0 }
        );
        let err = Config::new(r#"{"limt":3}"#)
            .parse::<Settings>()
            .unwrap_err();
        assert!(
            err.starts_with("invalid policy config: unknown field `limt`"),
            "{err}"
        );
    }
}
