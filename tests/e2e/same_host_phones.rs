//! The shapes real softphone setups take, driven fast with SIPp: the SIP
//! domain is the proxy's own IP address and the phones run on the same host
//! with other ports, so a phone's Contact (`sip:bob@IP:5070`) shares its
//! host with the domain. In-dialog requests (ACK for 2xx, BYE) must be
//! loose-routed to that Contact, never looked up as an address-of-record;
//! a callee using its GRUU as dialog Contact (as linphone does) must be
//! reached by them too; responses over TCP go back on the request's
//! connection. Each test has its own 127.0.62.N address.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use switchyard::NodeHandle;
use switchyard::location::Aor;
use switchyard::net::Transport;
use switchyard_tests::sipp::{Sipp, SippTransport, UAC_CALL, UAC_REGISTER, UAS_ANSWER};
use switchyard_tests::ua::{UdpUa, msg};
use switchyard_tests::{finish, start_node_domain_is_ip, start_node_with, stop};

/// The line of `uas_answer.xml` that names the callee's Contact.
const UAS_CONTACT: &str = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>";
/// The line of `uac_register.xml` that names the registered Contact.
const REGISTER_CONTACT: &str = "Contact: <sip:[field0]@[uas]>";

struct Setup {
    node: NodeHandle,
    ip: std::net::IpAddr,
    transport: SippTransport,
}

impl Setup {
    async fn new(ip: &str, transport: SippTransport) -> Setup {
        Setup {
            node: start_node_domain_is_ip(ip).await,
            ip: ip.parse().unwrap(),
            transport,
        }
    }

    fn proxy(&self) -> SocketAddr {
        self.node.addr(match self.transport {
            SippTransport::Udp => Transport::Udp,
            SippTransport::Tcp => Transport::Tcp,
        })
    }

    fn domain(&self) -> String {
        self.ip.to_string()
    }

    /// Registers `bob` with `contact_params` appended to the registered
    /// `host:port` and `extra` header lines (instance id, Supported).
    async fn register(&self, from: std::net::IpAddr, uas: &str, extra: Option<&str>) {
        let mut sipp = Sipp::uac(UAC_REGISTER)
            .remote(self.proxy())
            .local(from, 0)
            .transport(self.transport)
            .users(["bob"])
            .set("domain", &self.domain())
            .set("uas", uas)
            .set("expires", "300");
        if let Some(extra) = extra {
            sipp = sipp.replacing(REGISTER_CONTACT, &format!("{REGISTER_CONTACT}{extra}"));
        }
        finish(sipp.spawn()).await.assert_success();
        let aor = Aor::parse(&format!("bob@{}", self.domain())).unwrap();
        let bindings = self
            .node
            .store()
            .lookup(&aor, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(bindings.len(), 1, "bob registered once: {bindings:?}");
    }

    /// Calls `sip:bob@<request_host>` `calls` times through the proxy
    /// from the proxy's own IP; every call must complete (ACK and BYE
    /// follow the Record-Route to the callee's Contact).
    async fn call(&self, request_host: &str, calls: u64) {
        let caller = Sipp::uac(UAC_CALL)
            .remote(self.proxy())
            .local(self.ip, 0)
            .transport(self.transport)
            .users(["bob"])
            .set("domain", request_host)
            .calls(calls)
            .rate(20)
            .timeout(Duration::from_secs(20));
        finish(caller.spawn()).await.assert_calls(calls, 0);
    }
}

/// The callee on the proxy's host at port 5070.
fn callee(s: &Setup) -> Sipp {
    Sipp::uas(UAS_ANSWER)
        .local(s.ip, 5070)
        .transport(s.transport)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_phones_on_the_proxy_host_complete_calls_domain_is_ip() {
    let s = Setup::new("127.0.62.1", SippTransport::Udp).await;
    let uas = callee(&s).spawn();
    s.register(s.ip, "127.0.62.1:5070", None).await;
    // The AOR with no port, and with the proxy's own port: both ours.
    s.call(&s.domain(), 3).await;
    s.call(&s.proxy().to_string(), 2).await;
    // uas_answer only counts a call once its ACK and BYE arrived.
    stop(uas).await.assert_calls(5, 0);
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_phones_on_the_proxy_host_complete_calls_domain_is_ip() {
    let s = Setup::new("127.0.62.2", SippTransport::Tcp).await;
    let uas = callee(&s).spawn();
    // Registered by a third party (another IP), so the binding routes to
    // the callee's Contact rather than to the registering connection.
    s.register(
        "127.0.62.12".parse().unwrap(),
        "127.0.62.2:5070;transport=tcp",
        None,
    )
    .await;
    s.call(&s.domain(), 3).await;
    stop(uas).await.assert_calls(3, 0);
    s.node.shutdown().await;
}

/// linphone's shape: the callee registers an instance and answers with
/// its public GRUU as Contact, so the caller's ACK and BYE are addressed
/// to `sip:bob@IP;gr=urn:uuid:…` and must reach it through the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_using_its_pub_gruu_as_contact_gets_ack_and_bye() {
    let s = Setup::new("127.0.62.3", SippTransport::Udp).await;
    let urn = "urn:uuid:00000000-0000-4000-8000-000000000062";
    let gruu = format!("sip:bob@{};gr={urn}", s.domain());
    let uas = callee(&s)
        .replacing(UAS_CONTACT, &format!("Contact: <{gruu}>"))
        .spawn();
    let instance = format!(";+sip.instance=\"<{urn}>\"\nSupported: gruu");
    s.register(s.ip, "127.0.62.3:5070", Some(&instance)).await;
    s.call(&s.domain(), 3).await;
    stop(uas).await.assert_calls(3, 0);
    s.node.shutdown().await;
}

/// The same with the temp-GRUU of the 200 OK, on a single node with no
/// cluster secret: the node's own sealing key opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_using_its_temp_gruu_as_contact_gets_ack_and_bye() {
    let s = Setup::new("127.0.62.4", SippTransport::Udp).await;
    let urn = "urn:uuid:00000000-0000-4000-8000-000000000064";
    // Register with a bare UA to read the temp-GRUU out of the 200 OK.
    let ua = UdpUa::bind("127.0.62.4").await;
    let register = msg(
        "REGISTER sip:{d} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-tg1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:bob@{d}>;tag=tg1\r\n\
         To: <sip:bob@{d}>\r\n\
         Call-ID: tgruu-1\r\n\
         CSeq: 1 REGISTER\r\n\
         Supported: gruu, path\r\n\
         Contact: <sip:bob@{d}:5070>;+sip.instance=\"<{urn}>\"\r\n\
         Expires: 300\r\n\
         Content-Length: 0\r\n\r\n",
        &[
            ("d", &s.domain()),
            ("me", &ua.addr.to_string()),
            ("urn", urn),
        ],
    );
    let ok = ua.request(s.proxy(), &register, "200 to REGISTER").await;
    // The edge's Path names the transport the phone registered on: on a
    // single node it only ever leads back to the node itself.
    let path = ok
        .header(switchyard_codec::HeaderName::Path)
        .expect("the 200 OK echoes the Path");
    assert!(
        path.ends_with(";lr>") && !path.contains("transport="),
        "{path}"
    );
    let contact = ok
        .header_values(switchyard_codec::HeaderName::Contact)
        .next()
        .expect("200 OK lists the binding")
        .to_string();
    let temp = contact
        .split("temp-gruu=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap_or_else(|| panic!("no temp-gruu in {contact}"))
        .to_string();
    let uas = callee(&s)
        .replacing(UAS_CONTACT, &format!("Contact: <{temp}>"))
        .spawn();
    s.call(&s.domain(), 2).await;
    stop(uas).await.assert_calls(2, 0);
    s.node.shutdown().await;
}

/// A wildcard listener: every interface address with its port is the
/// node itself, so an OPTIONS ping to `sip:ping@127.0.62.9:PORT` is
/// answered, not forwarded to ourselves and caught as a loop (482).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_listener_answers_pings_to_any_local_address() {
    let node = start_node_with("0.0.0.0", |_| {}).await;
    let port = node.addr(Transport::Udp).port();
    let target: SocketAddr = format!("127.0.62.9:{port}").parse().unwrap();
    let ua = UdpUa::bind("127.0.62.9").await;
    let options = msg(
        "OPTIONS sip:ping@{t} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-wild1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:sipsak@{me}>;tag=w1\r\n\
         To: <sip:ping@{t}>\r\n\
         Call-ID: wildcard-1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        &[("t", &target.to_string()), ("me", &ua.addr.to_string())],
    );
    let answer = ua.request(target, &options, "answer to OPTIONS").await;
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    node.shutdown().await;
}

/// RFC 3261 §18.2.2: a response goes back over the TCP connection its
/// request came on; when the client closed it meanwhile, the node connects
/// to the port in the Via's sent-by (where the client listens), never to
/// the gone connection's ephemeral port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_response_after_the_connection_closed_goes_to_the_via_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = start_node_domain_is_ip("127.0.62.5").await;
    let (udp, tcp) = (node.addr(Transport::Udp), node.addr(Transport::Tcp));
    let bob = UdpUa::bind("127.0.62.5").await;
    let reg = switchyard_tests::ua::register("127.0.62.5", "bob", bob.addr, "tcpfb");
    assert_eq!(
        bob.request(udp, &reg, "200 to REGISTER").await.status(),
        Some(200)
    );

    // The caller listens on its Via port and sends from another connection.
    let listener = tokio::net::TcpListener::bind("127.0.62.5:0").await.unwrap();
    let via_port = listener.local_addr().unwrap().port();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.62.5:0".parse().unwrap()).unwrap();
    let mut conn = socket.connect(tcp).await.unwrap();
    let invite = msg(
        "INVITE sip:bob@127.0.62.5 SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.62.5:{port};branch=z9hG4bK-tcpfb1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.62.5>;tag=tcpfb\r\n\
         To: <sip:bob@127.0.62.5>\r\n\
         Call-ID: tcp-fallback-1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@127.0.62.5:{port};transport=tcp>\r\n\
         Content-Length: 0\r\n\r\n",
        &[("port", &via_port.to_string())],
    );
    conn.write_all(invite.as_bytes()).await.unwrap();
    let forwarded = bob.recv_request("INVITE", "INVITE at bob").await;
    drop(conn);
    // The node has seen the close once it holds no connection any more.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while node.transport_stats().tcp_open_connections > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "connection never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy = switchyard_codec::response_to(&forwarded, 486, "Busy Here").build();
    bob.send_bytes(udp, &busy).await;

    let (mut back, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the node connects to the Via's sent-by port")
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), back.read(&mut buf))
        .await
        .expect("a response on the new connection")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 486"), "{text}");
    node.shutdown().await;
}
