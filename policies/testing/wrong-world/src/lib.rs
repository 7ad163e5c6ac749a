//! Test component whose world is not `switchyard:policy/policy`: it exports
//! `switchyard:policy/hooks@0.1.0` with a different shape (see
//! `wit/world.wit`). Loading it must fail with a clear error.

mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "policy" });
}

use bindings::exports::switchyard::policy::hooks::Guest;

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct WrongWorld;

impl Guest for WrongWorld {
    fn on_request(request_uri: String) -> u32 {
        request_uri.len() as u32
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(WrongWorld with_types_in bindings);
