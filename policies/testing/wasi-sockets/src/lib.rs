//! Hostile test component: a complete, well-typed policy that also imports
//! `wasi:sockets/raw-socket@0.2.9`. The host must refuse it at load with
//! an error naming that import; `on-request` would call it for `socket`.

mod sockets {
    wit_bindgen::generate!({ path: "wit", world: "sockets" });
}

use switchyard_policy::prelude::*;

/// Calls the forbidden import, so the linker keeps it.
pub struct Sockets;

impl Policy for Sockets {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Sockets)
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        if req.ruri_user() == Some("socket") {
            #[cfg(target_arch = "wasm32")]
            sockets::wasi::sockets::raw_socket::open("127.0.0.1:9");
        }
        RequestDecision::proceed()
    }
}

switchyard_policy::export_policy!(Sockets);
