//! Keeping the embedded store's registrations across a restart.
//!
//! A single node on the embedded store would otherwise lose every
//! registration on restart and leave every phone unreachable until it
//! re-registers (up to its registration interval, often an hour). The node
//! writes a snapshot of every unexpired binding to one file when its
//! bindings changed since the last one (every `[store] persist_interval_ms`)
//! and once more on shutdown, and reads it back at start, dropping what
//! expired while it was down. A crash loses at most the changes of one
//! interval; phones repair that themselves at their next refresh.
//!
//! The file is JSON (one object per AOR) written to a temporary file, synced,
//! and renamed over the old one, so a crash mid-write leaves the previous
//! snapshot intact.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::{Aor, Binding, EmbeddedStore};

/// Format version of the file; a file of another version is refused.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    aors: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    aor: String,
    bindings: Vec<Binding>,
}

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a registration snapshot: {message}")]
    Format { path: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes every binding of `store` unexpired at `now` to `path`
/// atomically. Returns how many bindings were written.
pub fn save(store: &EmbeddedStore, path: &Path, now: SystemTime) -> Result<usize, PersistError> {
    let aors: Vec<Entry> = store
        .snapshot(now)
        .into_iter()
        .map(|(aor, bindings)| Entry {
            aor: aor.as_str().to_owned(),
            bindings,
        })
        .collect();
    let count = aors.iter().map(|e| e.bindings.len()).sum();
    let snapshot = Snapshot {
        format: FORMAT,
        aors,
    };
    let temporary = temporary_path(path);
    let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
    let mut writer = std::io::BufWriter::new(&mut file);
    serde_json::to_writer(&mut writer, &snapshot).map_err(|e| PersistError::Format {
        path: temporary.display().to_string(),
        message: e.to_string(),
    })?;
    writer.flush().map_err(io(&temporary))?;
    drop(writer);
    file.sync_all().map_err(io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io(path))?;
    Ok(count)
}

/// Loads the snapshot at `path` into `store`, keeping the bindings still
/// unexpired at `now`. A missing file is an empty snapshot (first start).
/// Returns how many bindings were restored.
pub fn load(store: &EmbeddedStore, path: &Path, now: SystemTime) -> Result<usize, PersistError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(path)(e)),
    };
    let format = |message: String| PersistError::Format {
        path: path.display().to_string(),
        message,
    };
    let snapshot: Snapshot = serde_json::from_slice(&text).map_err(|e| format(e.to_string()))?;
    if snapshot.format != FORMAT {
        return Err(format(format!(
            "format {} (this version reads {FORMAT})",
            snapshot.format
        )));
    }
    let mut restored = 0;
    for entry in snapshot.aors {
        let aor = Aor::parse(&entry.aor).map_err(|e| format(format!("{}: {e}", entry.aor)))?;
        let live: Vec<Binding> = entry
            .bindings
            .into_iter()
            .filter(|b| !b.is_expired(now))
            .collect();
        restored += live.len();
        store.restore(&aor, live);
    }
    Ok(restored)
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Saves `store` to `path` every `period` when it changed since the last
/// save, for as long as the future runs (spawn it; call [`save`] once more
/// at shutdown). Failures are logged and retried at the next period.
pub async fn save_periodically(store: Arc<EmbeddedStore>, path: PathBuf, period: Duration) {
    let mut saved_at = store.generation();
    loop {
        tokio::time::sleep(period).await;
        let generation = store.generation();
        if generation != saved_at && save_off_thread(store.clone(), path.clone()).await.is_some() {
            saved_at = generation;
        }
    }
}

/// [`save`] at the current time on a blocking thread, failures logged;
/// the bindings written when it succeeded.
pub async fn save_off_thread(store: Arc<EmbeddedStore>, path: PathBuf) -> Option<usize> {
    let file = path.clone();
    match tokio::task::spawn_blocking(move || save(&store, &file, SystemTime::now())).await {
        Ok(Ok(bindings)) => {
            tracing::debug!(bindings, file = %path.display(), "registrations saved");
            Some(bindings)
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "saving the registrations failed");
            None
        }
        Err(_) => {
            tracing::warn!("saving the registrations was interrupted");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocationStore;
    use switchyard_proto::location::samples::{contact, update};

    #[tokio::test]
    async fn a_snapshot_restores_what_is_unexpired_and_survives_a_torn_write() {
        let dir = std::env::temp_dir().join(format!("sy-persist-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registrations.json");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let store = EmbeddedStore::new();
        let alice = Aor::parse("alice@example.test").unwrap();
        let bob = Aor::parse("bob@example.test").unwrap();
        let write = |c: &str, expires| update("call", 1, vec![contact(c, expires)]);
        store
            .register(&alice, &write("sip:alice@127.0.0.2", 3600), t0)
            .await
            .unwrap();
        store
            .register(&bob, &write("sip:bob@127.0.0.3", 30), t0)
            .await
            .unwrap();
        assert_eq!(load(&store, &path, t0).unwrap(), 0, "no file yet");
        assert_eq!(save(&store, &path, t0).unwrap(), 2);

        // A later start: bob's binding expired meanwhile.
        let later = t0 + Duration::from_secs(60);
        let restarted = EmbeddedStore::new();
        assert_eq!(load(&restarted, &path, later).unwrap(), 1);
        assert_eq!(
            restarted.lookup(&alice, later).await.unwrap(),
            store.lookup(&alice, later).await.unwrap()
        );
        assert!(restarted.lookup(&bob, later).await.unwrap().is_empty());

        // A torn temporary file from a crash mid-save changes nothing.
        std::fs::write(temporary_path(&path), b"{\"format\":1,\"ao").unwrap();
        assert_eq!(load(&EmbeddedStore::new(), &path, later).unwrap(), 1);
        // A damaged snapshot itself is refused, with its name.
        std::fs::write(&path, b"{}").unwrap();
        let error = load(&EmbeddedStore::new(), &path, later).unwrap_err();
        assert!(error.to_string().contains("registrations.json"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
