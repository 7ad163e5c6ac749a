//! The router against a stand-in node: every documented route is served,
//! and the guard sits in front of all of them.

use std::sync::Arc;

use super::*;
use switchyard_location::{EmbeddedStore, LocationStore};

struct FakeNode(Arc<EmbeddedStore>);

#[async_trait::async_trait]
impl NodeControl for FakeNode {
    fn counters(&self) -> Vec<Count> {
        vec![Count {
            name: "switchyard_requests_total",
            help: "SIP requests received.",
            value: 7,
        }]
    }
    fn status(&self) -> NodeStatus {
        NodeStatus {
            node_id: "fake".into(),
            ..NodeStatus::default()
        }
    }
    fn reload_tls(&self) -> Result<(), String> {
        Ok(())
    }
    async fn reload(&self) -> Result<ReloadReport, String> {
        Ok(ReloadReport::default())
    }
    fn store(&self) -> Arc<dyn LocationStore> {
        self.0.clone()
    }
}

async fn start(config: AdminConfig) -> SocketAddr {
    let tenants = Arc::new(Tenants::native(Default::default()));
    let node = Arc::new(FakeNode(Arc::new(EmbeddedStore::new())));
    serve(&config, tenants, node, None).await.unwrap().0
}

fn local() -> AdminConfig {
    AdminConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..AdminConfig::default()
    }
}

/// Status and body of one request (errors carry the body as text).
async fn fetch(admin: &Admin, method: &str, path: &str) -> Result<String, String> {
    client::call(admin, method, path, Vec::new())
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let admin = Admin::open(start(local()).await);
    for route in openapi::ROUTES {
        let path = route
            .path
            .replace("{tenant}", "t1")
            .replace("{realm}", "example.test")
            .replace("{user}", "alice");
        let path = if route.method == "delete" && path == "/registrations" {
            "/registrations?aor=alice@example.test".to_string()
        } else {
            path
        };
        let method = route.method.to_ascii_uppercase();
        // axum's own "no such route" is a 404 or 405 with an empty body;
        // every handler explains itself.
        if let Err(body) = fetch(&admin, &method, &path).await {
            assert!(!body.is_empty(), "{method} {path} is not routed");
        }
    }
    let doc: serde_json::Value =
        serde_json::from_str(&fetch(&admin, "GET", "/openapi.json").await.unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/registrations"]["delete"].is_object());
    let metrics = fetch(&admin, "GET", "/metrics").await.unwrap();
    assert!(
        metrics.contains("switchyard_requests_total 7\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE switchyard_transactions gauge\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_token_is_required_when_configured_and_a_wrong_one_is_refused() {
    let dir = std::env::temp_dir().join(format!("sy-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "0123456789abcdef-token\n").unwrap();
    let addr = start(AdminConfig {
        token_file: Some(file.clone()),
        ..local()
    })
    .await;
    let none = Admin::open(addr);
    let wrong = Admin {
        token: Some("0123456789abcdef-tokeN".into()),
        ..none.clone()
    };
    let right = Admin::new(addr, Some(&file)).unwrap();
    assert!(
        fetch(&none, "GET", "/status")
            .await
            .unwrap_err()
            .contains("token")
    );
    assert!(
        fetch(&wrong, "GET", "/status")
            .await
            .unwrap_err()
            .contains("token")
    );
    assert!(fetch(&wrong, "POST", "/reload").await.is_err());
    assert!(
        fetch(&right, "GET", "/status")
            .await
            .unwrap()
            .contains("\"fake\"")
    );
    assert_eq!(fetch(&none, "GET", "/health").await.unwrap(), "ok\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn beyond_loopback_needs_a_token_and_a_token_needs_length() {
    let open = AdminConfig {
        listen: Some("0.0.0.0:9060".parse().unwrap()),
        ..AdminConfig::default()
    };
    assert!(open.guard().unwrap_err().to_string().contains("token_file"));
    let dir = std::env::temp_dir().join(format!("sy-admin-short-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "short\n").unwrap();
    let short = AdminConfig {
        token_file: Some(file),
        ..open
    };
    assert!(short.guard().unwrap_err().to_string().contains("16"));
    std::fs::remove_dir_all(&dir).unwrap();
}
