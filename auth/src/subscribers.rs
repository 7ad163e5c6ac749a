//! Subscribers of the embedded store: who may authenticate, per realm.
//!
//! A subscriber is a realm (the tenant's SIP domain), a user name and one
//! HA1 per digest algorithm, `H(user:realm:password)` (RFC 7616 §3.4.2):
//! the password itself is never stored, and a stolen file does not give
//! it away (though an HA1 does let its holder authenticate in that realm,
//! so the file stays readable by the node only).
//!
//! The file is TOML, one `[[user]]` table each, written by
//! `switchyard user add|passwd|remove` and re-read by a running node when
//! it changes ([`Subscribers::reload`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::digest::{Algorithm, ha1};

#[derive(Debug, Error)]
pub enum SubscriberError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// One subscriber as stored: HA1s only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscriber {
    pub realm: String,
    pub user: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub ha1_sha512_256: String,
}

impl Subscriber {
    /// A subscriber with every algorithm's HA1 of `password`.
    pub fn new(realm: &str, user: &str, password: &str) -> Subscriber {
        let realm = realm.to_ascii_lowercase();
        Subscriber {
            ha1_md5: ha1(Algorithm::Md5, user, &realm, password),
            ha1_sha256: ha1(Algorithm::Sha256, user, &realm, password),
            ha1_sha512_256: ha1(Algorithm::Sha512_256, user, &realm, password),
            realm,
            user: user.to_string(),
        }
    }

    pub fn ha1(&self, alg: Algorithm) -> &str {
        match alg {
            Algorithm::Md5 => &self.ha1_md5,
            Algorithm::Sha256 => &self.ha1_sha256,
            Algorithm::Sha512_256 => &self.ha1_sha512_256,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriberFile {
    #[serde(default, rename = "user")]
    users: Vec<Subscriber>,
}

/// Realm (lowercase) and user name.
type Key = (String, String);

/// The subscribers a node authenticates against, swapped whole on reload
/// so a lookup never waits for a writer.
#[derive(Default)]
pub struct Subscribers {
    path: Option<PathBuf>,
    table: ArcSwap<HashMap<Key, Subscriber>>,
}

impl Subscribers {
    /// No subscribers: every authentication fails (the secure default).
    pub fn empty() -> Subscribers {
        Subscribers::default()
    }

    /// Loads `path`; a missing file is an empty table (created on the
    /// first `switchyard user add`).
    pub fn open(path: &Path) -> Result<Subscribers, SubscriberError> {
        let s = Subscribers {
            path: Some(path.to_path_buf()),
            table: ArcSwap::default(),
        };
        s.reload()?;
        Ok(s)
    }

    /// For tests and embedding: a fixed table.
    pub fn from_list(list: impl IntoIterator<Item = Subscriber>) -> Subscribers {
        Subscribers {
            path: None,
            table: ArcSwap::from_pointee(index(list)),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the file; on an error the previous table stays in force.
    pub fn reload(&self) -> Result<usize, SubscriberError> {
        let Some(path) = &self.path else {
            return Ok(self.table.load().len());
        };
        let list = read_file(path)?;
        let table = index(list);
        let n = table.len();
        self.table.store(Arc::new(table));
        Ok(n)
    }

    pub fn get(&self, realm: &str, user: &str) -> Option<Subscriber> {
        self.table
            .load()
            .get(&(realm.to_ascii_lowercase(), user.to_string()))
            .cloned()
    }

    /// Every subscriber, in no particular order.
    pub fn all(&self) -> Vec<Subscriber> {
        self.table.load().values().cloned().collect()
    }

    /// Swaps in a whole new table (the in-memory store without a file).
    pub(super) fn replace(&self, list: Vec<Subscriber>) {
        self.table.store(Arc::new(index(list)));
    }

    pub fn len(&self) -> usize {
        self.table.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn index(list: impl IntoIterator<Item = Subscriber>) -> HashMap<Key, Subscriber> {
    list.into_iter()
        .map(|s| ((s.realm.to_ascii_lowercase(), s.user.clone()), s))
        .collect()
}

fn read_file(path: &Path) -> Result<Vec<Subscriber>, SubscriberError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SubscriberError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let file: SubscriberFile = toml::from_str(&text).map_err(|e| SubscriberError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(file.users)
}

/// Edits the subscriber file (the CLI's `user` commands): reads it, lets
/// `edit` change the list, writes it back through a temporary file and a
/// rename, so a node watching it never reads half a file. Returns what
/// `edit` returned.
pub fn edit_file<T>(
    path: &Path,
    edit: impl FnOnce(&mut Vec<Subscriber>) -> T,
) -> Result<T, SubscriberError> {
    let mut users = read_file(path)?;
    let out = edit(&mut users);
    users.sort_by(|a, b| (&a.realm, &a.user).cmp(&(&b.realm, &b.user)));
    let text = toml::to_string(&SubscriberFile { users }).map_err(|e| SubscriberError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("toml.tmp");
    let write_err = |source| SubscriberError::Write {
        path: path.display().to_string(),
        source,
    };
    write_private(&tmp, &text).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)?;
    Ok(out)
}

/// Writes `text` readable by its owner only: HA1s are credentials.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_holds_no_password() {
        let dir = std::env::temp_dir().join(format!("sy-subs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("subscribers.toml");
        let _ = std::fs::remove_file(&path);
        edit_file(&path, |users| {
            users.push(Subscriber::new("Switchyard.Test", "alice", "s3cret-pw"));
            users.push(Subscriber::new("other.test", "alice", "another"));
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("s3cret-pw"), "{text}");
        let subs = Subscribers::open(&path).unwrap();
        assert_eq!(subs.len(), 2);
        let alice = subs.get("switchyard.test", "alice").unwrap();
        assert_eq!(
            alice.ha1(Algorithm::Md5),
            ha1(Algorithm::Md5, "alice", "switchyard.test", "s3cret-pw")
        );
        assert!(subs.get("switchyard.test", "bob").is_none());

        edit_file(&path, |users| users.retain(|u| u.realm != "other.test")).unwrap();
        assert_eq!(subs.reload().unwrap(), 1);
        assert!(subs.get("other.test", "alice").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_broken_file_keeps_the_previous_table() {
        let dir = std::env::temp_dir().join(format!("sy-subs-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("subscribers.toml");
        edit_file(&path, |users| {
            users.push(Subscriber::new("a.test", "u", "p"))
        })
        .unwrap();
        let subs = Subscribers::open(&path).unwrap();
        std::fs::write(&path, "[[user]]\nrealm = 3\n").unwrap();
        assert!(subs.reload().is_err());
        assert!(subs.get("a.test", "u").is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
