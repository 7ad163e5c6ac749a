//! SIP over WebSocket (RFC 7118), on tokio-tungstenite: the server
//! handshake (`Sec-WebSocket-Protocol: sip`, the configured path and
//! origins) and the two halves of a connection. Each SIP message is one
//! WebSocket message, so nothing is framed here.

use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig as Tuning;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::stream::{Incoming, MessageSink, Read};

/// RFC 7118 §4: the WebSocket subprotocol of SIP.
const SUBPROTOCOL: &str = "sip";

/// The `[websocket]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// The HTTP path the upgrade must ask for; any other path gets 404.
    pub path: String,
    /// Browser `Origin`s allowed to connect (`https://pbx.example.com`);
    /// empty allows any. A page from another site could otherwise use a
    /// visitor's browser to reach the proxy.
    pub allowed_origins: Vec<String>,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            path: "/".into(),
            allowed_origins: Vec::new(),
        }
    }
}

/// Small buffers: an idle connection must cost little (tungstenite's
/// defaults are 128 KiB each way). Messages are flushed one by one.
fn tuning(max_message_size: usize) -> Tuning {
    Tuning::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// The server side of the upgrade. Refuses a wrong path (404), a missing
/// `sip` subprotocol (400: RFC 7118 §4.1 makes it mandatory) and an origin
/// not allowed (403).
pub(super) async fn accept<S>(
    io: S,
    config: &WebSocketConfig,
    max_message_size: usize,
) -> io::Result<WebSocketStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The callback's type is tungstenite's: its error is the HTTP response.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let refuse = |status: StatusCode, why: &str| {
            let mut r = ErrorResponse::new(Some(why.to_owned()));
            *r.status_mut() = status;
            r
        };
        if req.uri().path() != config.path {
            return Err(refuse(StatusCode::NOT_FOUND, "no SIP WebSocket here"));
        }
        let offers_sip = req
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL));
        if !offers_sip {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Protocol must offer sip",
            ));
        }
        if !config.allowed_origins.is_empty() {
            let origin = req
                .headers()
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok());
            let allowed = origin.is_some_and(|o| {
                config
                    .allowed_origins
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(o))
            });
            if !allowed {
                return Err(refuse(StatusCode::FORBIDDEN, "origin not allowed"));
            }
        }
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        Ok(resp)
    };
    tokio_tungstenite::accept_hdr_async_with_config(io, check, Some(tuning(max_message_size)))
        .await
        .map_err(io::Error::other)
}

/// Splits an upgraded connection into the reader and the writer.
pub(super) fn split<S>(ws: WebSocketStream<S>) -> (WsReader<S>, WsWriter<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    (WsReader(stream), WsWriter(sink))
}

pub(super) struct WsReader<S>(SplitStream<WebSocketStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Incoming for WsReader<S> {
    async fn next(&mut self, _buf: &mut BytesMut) -> io::Result<Read> {
        loop {
            // Pings are answered inside tungstenite; pongs need nothing.
            return match self.0.next().await {
                None | Some(Ok(Message::Close(_))) => Ok(Read::Eof),
                Some(Ok(Message::Text(text))) => Ok(Read::Message(Bytes::from(text))),
                Some(Ok(Message::Binary(data))) => Ok(Read::Message(data)),
                Some(Ok(_)) => continue,
                Some(Err(e)) => Err(io::Error::other(e)),
            };
        }
    }
}

pub(super) struct WsWriter<S>(SplitSink<WebSocketStream<S>, Message>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MessageSink for WsWriter<S> {
    async fn send(&mut self, data: Bytes) -> io::Result<()> {
        // SIP is text; a body that is not UTF-8 goes as a binary message.
        let message = match Utf8Bytes::try_from(data.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(data),
        };
        self.0.send(message).await.map_err(io::Error::other)
    }

    async fn finish(&mut self) {
        let _ = self.0.close().await;
    }
}
