//! The client side of the admin endpoint, for `switchyard policy ...`.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One HTTP/1.1 request to the admin endpoint; the body of a 2xx answer.
pub async fn call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<Bytes> {
    let stream = TcpStream::connect(admin)
        .await
        .with_context(|| format!("cannot reach the admin endpoint at {admin} (is the node running with [admin] listen = \"{admin}\"?)"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("admin endpoint handshake")?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", admin.to_string())
        .header("content-type", "application/wasm")
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
