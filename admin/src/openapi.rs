//! The OpenAPI 3.1 description of every admin route (`GET /openapi.json`),
//! generated from [`ROUTES`]; a test checks the router answers each one.

use serde_json::{Map, Value, json};

/// A parameter: name, where (`path` or `query`), required, description.
type Param = (&'static str, &'static str, bool, &'static str);

pub struct Route {
    pub method: &'static str,
    /// OpenAPI form: `{name}` for path parameters.
    pub path: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// Request body media type, if any.
    pub body: Option<&'static str>,
    /// Success response media type.
    pub produces: &'static str,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/health",
        summary: "Liveness: `ok` (no token needed)",
        params: &[],
        body: None,
        produces: TEXT,
    },
    Route {
        method: "get",
        path: "/status",
        summary: "Node id, version, uptime, draining, store, listeners, transactions, connections",
        params: &[],
        body: None,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus text exposition: counters and gauges of the node and its tenants' policies",
        params: &[],
        body: None,
        produces: TEXT,
    },
    Route {
        method: "get",
        path: "/calls",
        summary: "Calls per tenant: this node's and the cluster's",
        params: &[],
        body: None,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/cdrs",
        summary: "This node's latest CDRs, oldest first (follow with `after`)",
        params: &[
            (
                "after",
                "query",
                false,
                "Only CDRs with a higher `seq` than this",
            ),
            (
                "limit",
                "query",
                false,
                "At most this many (default 100, at most 1000)",
            ),
        ],
        body: None,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/transactions",
        summary: "Live transactions and the transaction counters",
        params: &[],
        body: None,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/tenants",
        summary: "Every tenant with its domains and policy",
        params: &[],
        body: None,
        produces: JSON,
    },
    Route {
        method: "post",
        path: "/reload",
        summary: "Read the configuration file again and apply domains and tenants (validated first; nothing changes on an error)",
        params: &[],
        body: None,
        produces: JSON,
    },
    Route {
        method: "post",
        path: "/tls/reload",
        summary: "Read the TLS certificate files again",
        params: &[],
        body: None,
        produces: TEXT,
    },
    Route {
        method: "get",
        path: "/registrations",
        summary: "Registered AORs and their bindings, in AOR order",
        params: &[
            ("tenant", "query", false, "only this tenant's domains"),
            ("domain", "query", false, "only this domain"),
            ("user", "query", false, "only this user (case-sensitive)"),
            ("limit", "query", false, "most AORs returned (default 100)"),
        ],
        body: None,
        produces: JSON,
    },
    Route {
        method: "delete",
        path: "/registrations",
        summary: "Remove an AOR's bindings, or one of them (the phone registers again at its next refresh)",
        params: &[
            ("aor", "query", true, "user@domain"),
            (
                "contact",
                "query",
                false,
                "only the binding with this Contact URI",
            ),
        ],
        body: None,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/policies",
        summary: "Every tenant's policy: source, version, counters",
        params: &[],
        body: None,
        produces: JSON,
    },
    Route {
        method: "put",
        path: "/policies/{tenant}",
        summary: "Validate a WebAssembly policy component and make it the tenant's live version",
        params: &[
            ("tenant", "path", true, "the tenant"),
            (
                "link",
                "query",
                false,
                "one link of the tenant's chain, swapped alone",
            ),
            ("source", "query", false, "label shown in listings"),
        ],
        body: Some("application/wasm"),
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/subscribers",
        summary: "Subscribers as [realm, user] pairs (never credentials)",
        params: &[("realm", "query", false, "only this realm")],
        body: None,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/subscribers/{realm}/{user}",
        summary: "One subscriber's HA1 digests",
        params: &[
            ("realm", "path", true, "SIP domain"),
            ("user", "path", true, "user name"),
        ],
        body: None,
        produces: JSON,
    },
    Route {
        method: "put",
        path: "/subscribers/{realm}/{user}",
        summary: "Add or replace a subscriber (HA1 digests, computed by the client)",
        params: &[
            ("realm", "path", true, "SIP domain"),
            ("user", "path", true, "user name"),
        ],
        body: Some(JSON),
        produces: TEXT,
    },
    Route {
        method: "delete",
        path: "/subscribers/{realm}/{user}",
        summary: "Remove a subscriber",
        params: &[
            ("realm", "path", true, "SIP domain"),
            ("user", "path", true, "user name"),
        ],
        body: None,
        produces: TEXT,
    },
    Route {
        method: "get",
        path: "/openapi.json",
        summary: "This description",
        params: &[],
        body: None,
        produces: JSON,
    },
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let parameters: Vec<Value> = route
            .params
            .iter()
            .map(|(name, place, required, description)| {
                json!({"name": name, "in": place, "required": required,
                       "description": description, "schema": {"type": "string"}})
            })
            .collect();
        let mut operation = json!({
            "summary": route.summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": "done", "content": {route.produces: {}}},
                "401": {"description": "missing or wrong token ([admin] token_file)"},
                "403": {"description": "Host or Origin is not this endpoint"},
            },
        });
        if route.path != "/health" {
            operation["security"] = json!([{"bearer": []}]);
        }
        if let Some(media) = route.body {
            operation["requestBody"] = json!({"required": true, "content": {media: {}}});
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[route.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchyard admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The local admin endpoint of a Switchyard node ([admin] listen). \
                            Every route but /health needs `Authorization: Bearer <token>` when \
                            [admin] token_file is set.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    })
}
