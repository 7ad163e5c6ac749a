//! A SIP-over-WebSocket client (RFC 7118) for wire-level tests: what a
//! browser phone sends, without the browser. One SIP message per
//! WebSocket message, over `ws:` or `wss:`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use switchyard_codec::SipMessage;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::ua::{ByteStream, WAIT};

pub struct WsUa {
    ws: WebSocketStream<Box<dyn ByteStream>>,
    /// Our end of the connection (what the proxy sees as the flow's remote).
    pub addr: SocketAddr,
}

/// Why a WebSocket connection was not set up.
#[derive(Debug)]
pub enum WsRefused {
    /// The HTTP status the server answered the upgrade with.
    Status(u16),
    Other(String),
}

impl WsUa {
    /// Connects from `from_ip` to `to` and upgrades on `path`, offering the
    /// `protocol` subprotocol (`sip` for a well-behaved client). With `tls`,
    /// it is `wss:` and the certificate must name `name`.
    pub async fn connect(
        from_ip: &str,
        to: SocketAddr,
        path: &str,
        protocol: Option<&str>,
        tls: Option<(&str, Arc<rustls::ClientConfig>)>,
    ) -> Result<WsUa, WsRefused> {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(format!("{from_ip}:0").parse().unwrap())
            .unwrap();
        let tcp = socket.connect(to).await.expect("connect to proxy");
        let addr = tcp.local_addr().unwrap();
        let (scheme, stream): (&str, Box<dyn ByteStream>) = match tls {
            None => ("ws", Box::new(tcp)),
            Some((name, config)) => {
                let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| WsRefused::Other(e.to_string()))?;
                ("wss", Box::new(tls))
            }
        };
        let mut request = format!("{scheme}://{to}{path}")
            .into_client_request()
            .unwrap();
        if let Some(p) = protocol {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
        }
        match tokio_tungstenite::client_async(request, stream).await {
            Ok((ws, response)) => {
                let agreed = response
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                assert_eq!(agreed.as_deref(), protocol, "the subprotocol agreed");
                Ok(WsUa { ws, addr })
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                Err(WsRefused::Status(resp.status().as_u16()))
            }
            Err(e) => Err(WsRefused::Other(e.to_string())),
        }
    }

    /// Sends one SIP message as one text message.
    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::Text(Utf8Bytes::from(text)))
            .await
            .expect("websocket send");
    }

    /// The next SIP message (keep-alive pongs are skipped).
    pub async fn recv(&mut self, what: &str) -> SipMessage {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{} timed out waiting for {what}", self.addr));
            let data: Bytes = match next {
                Some(Ok(Message::Text(t))) => t.into(),
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(_)) => continue,
                other => panic!("websocket closed while waiting for {what}: {other:?}"),
            };
            if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                continue;
            }
            return SipMessage::parse(data).expect("a SIP message");
        }
    }

    /// Sends a raw WebSocket message and returns the next raw one.
    pub async fn ping_pong(&mut self, text: &str) -> String {
        self.ws
            .send(Message::Text(Utf8Bytes::from(text)))
            .await
            .expect("websocket send");
        match tokio::time::timeout(WAIT, self.ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
            other => panic!("no answer to a keep-alive: {other:?}"),
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
