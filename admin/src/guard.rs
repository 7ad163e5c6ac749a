//! Who may talk to the admin endpoint: a bearer token (when
//! `[admin] token_file` is set; required beyond loopback), and Host/Origin
//! checks so a web page cannot reach the endpoint through the operator's
//! browser (DNS rebinding: a name the attacker controls that resolves to
//! 127.0.0.1; cross-site requests from any page).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What every request is checked against.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// The token a request must present as `Authorization: Bearer ...`.
    pub token: Option<Arc<str>>,
    /// Host names accepted in `Host` besides IP literals and `localhost`.
    pub allowed_hosts: Vec<String>,
}

/// Why a request was refused (also the answer's body).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Host,
    Origin,
    Token,
}

impl Guard {
    /// Checks a request's headers; `/health` is exempt from the token so a
    /// load balancer needs no secret.
    pub fn check(&self, path: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !self.host_allowed(host) {
            return Err(Refusal::Host);
        }
        // Browsers send Origin on cross-site requests (and on every
        // POST/PUT/DELETE); the CLI sends none.
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            let host = origin.split_once("://").map_or("", |(_, rest)| rest);
            if !self.host_allowed(host) {
                return Err(Refusal::Origin);
            }
        }
        if path == "/health" {
            return Ok(());
        }
        match &self.token {
            None => Ok(()),
            Some(token) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| h.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                    Ok(())
                } else {
                    Err(Refusal::Token)
                }
            }
        }
    }

    /// `host[:port]` names this endpoint: an IP literal, `localhost`, or a
    /// configured name.
    fn host_allowed(&self, host_port: &str) -> bool {
        let host = match host_port.rsplit_once(':') {
            // `[::1]:9060`, `127.0.0.1:9060`, `name:9060`
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => host_port,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() {
            return false;
        }
        bare.parse::<std::net::IpAddr>().is_ok()
            || bare.eq_ignore_ascii_case("localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(bare))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: refuses with 403 (Host, Origin) or 401 (token).
pub(super) async fn enforce(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    match guard.check(request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(
                ?refusal,
                path = request.uri().path(),
                "admin request refused"
            );
            match refusal {
                Refusal::Host => {
                    (StatusCode::FORBIDDEN, "Host is not this endpoint\n").into_response()
                }
                Refusal::Origin => {
                    (StatusCode::FORBIDDEN, "cross-origin requests are refused\n").into_response()
                }
                Refusal::Token => (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "a valid admin token is required ([admin] token_file)\n",
                )
                    .into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn hosts_origins_and_tokens() {
        let open = Guard::default();
        assert_eq!(
            open.check("/status", &headers(&[("host", "127.0.0.1:9060")])),
            Ok(())
        );
        assert_eq!(
            open.check("/status", &headers(&[("host", "[::1]:9060")])),
            Ok(())
        );
        assert_eq!(
            open.check("/status", &headers(&[("host", "localhost:9060")])),
            Ok(())
        );
        // A rebinding name pointed at 127.0.0.1.
        assert_eq!(
            open.check("/status", &headers(&[("host", "evil.example:9060")])),
            Err(Refusal::Host)
        );
        assert_eq!(open.check("/status", &headers(&[])), Err(Refusal::Host));
        assert_eq!(
            open.check(
                "/reload",
                &headers(&[
                    ("host", "127.0.0.1:9060"),
                    ("origin", "https://evil.example")
                ])
            ),
            Err(Refusal::Origin)
        );
        let named = Guard {
            allowed_hosts: vec!["admin.switchyard.internal".into()],
            ..Guard::default()
        };
        assert_eq!(
            named.check(
                "/status",
                &headers(&[("host", "ADMIN.switchyard.internal:9060")])
            ),
            Ok(())
        );

        let locked = Guard {
            token: Some("s3cret-token".into()),
            ..Guard::default()
        };
        let host = ("host", "127.0.0.1:9060");
        assert_eq!(
            locked.check("/status", &headers(&[host])),
            Err(Refusal::Token)
        );
        assert_eq!(
            locked.check(
                "/status",
                &headers(&[host, ("authorization", "Bearer wrong-token!")])
            ),
            Err(Refusal::Token)
        );
        assert_eq!(
            locked.check(
                "/status",
                &headers(&[host, ("authorization", "Bearer s3cret-token")])
            ),
            Ok(())
        );
        assert_eq!(locked.check("/health", &headers(&[host])), Ok(()));
    }
}
