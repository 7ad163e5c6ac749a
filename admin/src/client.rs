//! The client side of the admin endpoint, for the `switchyard` CLI.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The environment variable the CLI reads a token from when no
/// `--token-file` is given.
pub const TOKEN_ENV: &str = "SWITCHYARD_ADMIN_TOKEN";

/// A node's admin endpoint and the token to present.
#[derive(Debug, Clone)]
pub struct Admin {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl Admin {
    /// `addr` with the token from `token_file`, else from
    /// `$SWITCHYARD_ADMIN_TOKEN`, else none.
    pub fn new(addr: SocketAddr, token_file: Option<&Path>) -> anyhow::Result<Admin> {
        let token = match token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the admin token {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var(TOKEN_ENV).ok(),
        };
        Ok(Admin { addr, token })
    }

    /// An endpoint without a token.
    pub fn open(addr: SocketAddr) -> Admin {
        Admin { addr, token: None }
    }
}

/// One HTTP/1.1 request to the admin endpoint; the body of a 2xx answer.
pub async fn call(admin: &Admin, method: &str, path: &str, body: Vec<u8>) -> anyhow::Result<Bytes> {
    let addr = admin.addr;
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach the admin endpoint at {addr} (is the node running with [admin] listen = \"{addr}\"?)"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("admin endpoint handshake")?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/wasm");
    if let Some(token) = &admin.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .context("building the request")?;
    let response = sender
        .send_request(request)
        .await
        .context("admin request")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the admin answer")?
        .to_bytes();
    if !status.is_success() {
        bail!("{}", String::from_utf8_lossy(&body).trim_end());
    }
    Ok(body)
}

/// Percent-encodes a query value (paths may contain anything).
pub fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
