//! What the softphone drivers ([`crate::baresip`], [`crate::linphone`])
//! share: the account a phone registers, and the node's view of it.

use std::net::SocketAddr;
use std::time::SystemTime;

use switchyard::{Config, NodeHandle};

use crate::certs::TestCa;
use switchyard::location::{Aor, Binding};
use switchyard::net::Transport;

/// A phone's account: `sip:user@domain` registering through `proxy` on
/// `transport`, with SIP Outbound (RFC 5626: `reg-id`, `+sip.instance`)
/// when `outbound`. Each driver turns it into its client's configuration.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: String,
    pub domain: String,
    pub proxy: SocketAddr,
    pub transport: Transport,
    pub outbound: bool,
    /// The digest password, when the node authenticates (`[auth]`).
    pub password: Option<String>,
    /// Over TLS: the CA the node's certificate is verified against.
    pub ca: Option<std::path::PathBuf>,
}

impl Account {
    /// `sip:user@domain`: the identity, and how the clients name the peer
    /// of a call.
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }
}

/// The bindings of `user@domain` in the node's location store now.
pub async fn bindings(node: &NodeHandle, user: &str, domain: &str) -> Vec<Binding> {
    let aor = Aor::new(Some(user), domain).expect("AOR");
    node.store()
        .lookup(&aor, SystemTime::now())
        .await
        .expect("lookup")
}

/// alice's and bob's passwords when the node authenticates.
const PASSWORDS: [(&str, &str); 2] = [("alice", "alice-Pw-2026!"), ("bob", "bob-Pw-2026!")];

/// The node and the two accounts of a softphone scenario: a node at `ip`
/// whose domain is `ip`, alice and bob registering through it on
/// `transport`. With `auth` (`Some(algorithms)`, empty for the default)
/// the node challenges every REGISTER and INVITE and the accounts carry
/// passwords. Over TLS the node also listens on TLS, with a certificate
/// for `ip` from a CA made for the test.
pub async fn scenario(
    ip: &str,
    transport: Transport,
    outbound: bool,
    auth: Option<&[&str]>,
) -> (NodeHandle, Account, Account) {
    let pki = (transport == Transport::Tls).then(|| {
        let ca = TestCa::new(&crate::run_dir("pki", ip), "node");
        let cert = ca.server("node", &[ip]);
        (ca.cert_file.clone(), cert)
    });
    let tls = |c: &mut Config| {
        if let Some((_, cert)) = &pki {
            c.listen.push(format!("tls:{ip}:0").parse().unwrap());
            c.tls.cert = Some(cert.cert.clone());
            c.tls.key = Some(cert.key.clone());
        }
    };
    let node = match auth {
        Some(list) => {
            let algorithms = crate::algorithms(list);
            crate::start_node_with_users(ip, &PASSWORDS, |c| {
                if !list.is_empty() {
                    algorithms(c);
                }
                tls(c);
            })
            .await
        }
        None => {
            crate::start_node_with(ip, |c| {
                c.domains = vec![ip.to_string()];
                tls(c);
            })
            .await
        }
    };
    let account = |(user, password): (&str, &str)| Account {
        user: user.into(),
        domain: ip.into(),
        proxy: node.addr(transport),
        transport,
        outbound,
        password: auth.map(|_| password.to_string()),
        ca: pki.as_ref().map(|(ca, _)| ca.clone()),
    };
    let (alice, bob) = (account(PASSWORDS[0]), account(PASSWORDS[1]));
    (node, alice, bob)
}

/// After a scenario with authentication: both REGISTERs were answered
/// 401 and alice's INVITE 407 first, and no credentials were refused.
pub fn assert_challenged(node: &NodeHandle) {
    let stats = node.stats();
    let challenges = stats.auth_challenged.get();
    assert!(challenges >= 3, "{challenges} challenges");
    assert_eq!(stats.auth_failed.get(), 0);
}
