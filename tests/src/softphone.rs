//! What the softphone drivers ([`crate::baresip`], [`crate::linphone`])
//! share: the account a phone registers, and the node's view of it.

use std::net::SocketAddr;
use std::time::SystemTime;

use switchyard::NodeHandle;
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
