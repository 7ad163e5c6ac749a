//! Re-reads the subscriber file when it changes, so `switchyard user add`
//! takes effect on a running node without a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Subscribers;

/// A write is several events (the CLI writes a temporary file and renames
/// it): wait this long after the last one.
const SETTLE: Duration = Duration::from_millis(50);

/// Watches the file's directory until the node's tasks are aborted.
pub fn watch(
    path: PathBuf,
    subscribers: Arc<Subscribers>,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_os_string());
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event)
                if !matches!(event.kind, EventKind::Access(_))
                    && event.paths.iter().any(|p| p.file_name() == name.as_deref()) =>
            {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(error) => warn!(%error, "subscriber file watch"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, rx.recv()).await {}
            match subscribers.reload() {
                Ok(n) => info!(file = %path.display(), subscribers = n, "subscribers reloaded"),
                Err(error) => warn!(%error, "subscriber file refused; the previous table stays"),
            }
        }
    }))
}
