//! Hot reload from a directory: `<tenant>.wasm` written into
//! `[tenants] watch_dir` becomes that tenant's policy (after validation).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::tenants::{ModuleSource, Tenants, log_refused};

/// Editors and `cp` write a file in several steps: wait this long after the
/// last event for a file before loading it.
const SETTLE: Duration = Duration::from_millis(50);

/// Watches `dir` until the returned watcher is dropped (it lives in the
/// task, which the node aborts on shutdown).
pub fn spawn(dir: PathBuf, tenants: Arc<Tenants>) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_)) => {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
            Ok(_) => {}
            Err(error) => warn!(%error, "policy directory watch"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    info!(dir = %dir.display(), "watching for policy modules");
    Ok(tokio::spawn(async move {
        let _watcher = watcher;
        while let Some(first) = rx.recv().await {
            let mut due = BTreeSet::from([first]);
            // Collect the burst of events one write produces.
            while let Ok(Some(path)) = tokio::time::timeout(SETTLE, rx.recv()).await {
                due.insert(path);
            }
            for path in due {
                let Some(tenant) = tenant_of(&path) else {
                    continue;
                };
                if let Err(error) = tenants.load(&tenant, ModuleSource::File(path)).await {
                    log_refused(&error);
                }
            }
        }
    }))
}

/// `acme.wasm` → `acme`; anything else is not ours.
fn tenant_of(path: &Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    (!stem.is_empty() && !stem.starts_with('.')).then(|| stem.to_string())
}
