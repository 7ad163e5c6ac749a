//! Where subscribers live: [`SubscriberStore`], implemented by the
//! embedded store's file ([`Subscribers`]) and by the Cassandra backend
//! (`subscribers` table, shared by every node of a cluster), and the
//! conformance checks every implementation passes.

use async_trait::async_trait;

use super::subscribers::{Subscriber, Subscribers, edit_file};
use switchyard_proto::location::StoreError;

/// The subscribers the authenticator checks answers against, and the
/// provisioning the `switchyard user` commands do.
#[async_trait]
pub trait SubscriberStore: Send + Sync {
    /// The subscriber `user` of `realm` (case-insensitive), if any.
    async fn subscriber(&self, realm: &str, user: &str) -> Result<Option<Subscriber>, StoreError>;
    /// Adds or replaces a subscriber.
    async fn put(&self, subscriber: Subscriber) -> Result<(), StoreError>;
    /// Removes one; `false` when there was none.
    async fn remove(&self, realm: &str, user: &str) -> Result<bool, StoreError>;
    /// `(realm, user)` of every subscriber, of `realm` only when given,
    /// sorted.
    async fn list(&self, realm: Option<&str>) -> Result<Vec<(String, String)>, StoreError>;
    /// `file` or `cassandra`, for logs.
    fn backend(&self) -> &'static str;
}

#[async_trait]
impl SubscriberStore for Subscribers {
    async fn subscriber(&self, realm: &str, user: &str) -> Result<Option<Subscriber>, StoreError> {
        Ok(self.get(realm, user))
    }

    async fn put(&self, subscriber: Subscriber) -> Result<(), StoreError> {
        self.edit(|users| {
            users.retain(|u| {
                !(u.realm.eq_ignore_ascii_case(&subscriber.realm) && u.user == subscriber.user)
            });
            users.push(subscriber);
        })
    }

    async fn remove(&self, realm: &str, user: &str) -> Result<bool, StoreError> {
        self.edit(|users| {
            let before = users.len();
            users.retain(|u| !(u.realm.eq_ignore_ascii_case(realm) && u.user == user));
            users.len() != before
        })
    }

    async fn list(&self, realm: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        let realm = realm.map(str::to_ascii_lowercase);
        let mut out: Vec<(String, String)> = self
            .all()
            .into_iter()
            .filter(|s| {
                realm
                    .as_ref()
                    .is_none_or(|r| s.realm.eq_ignore_ascii_case(r))
            })
            .map(|s| (s.realm.to_ascii_lowercase(), s.user))
            .collect();
        out.sort();
        Ok(out)
    }

    fn backend(&self) -> &'static str {
        "file"
    }
}

impl Subscribers {
    /// Changes the file (when there is one) and the table in memory.
    fn edit<T>(&self, change: impl FnOnce(&mut Vec<Subscriber>) -> T) -> Result<T, StoreError> {
        match self.path() {
            Some(path) => {
                let out =
                    edit_file(path, change).map_err(|e| StoreError::Backend(e.to_string()))?;
                self.reload()
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                Ok(out)
            }
            None => {
                let mut users = self.all();
                let out = change(&mut users);
                self.replace(users);
                Ok(out)
            }
        }
    }
}

/// What every [`SubscriberStore`] must do, against a store that may be
/// shared with other runs: every name used is under `realm`, which the
/// caller makes unique.
#[cfg(any(test, feature = "testing"))]
pub async fn conformance(store: &dyn SubscriberStore, realm: &str) {
    let other = format!("other.{realm}");
    assert_eq!(store.subscriber(realm, "alice").await.unwrap(), None);
    store
        .put(Subscriber::new(realm, "alice", "one"))
        .await
        .unwrap();
    store
        .put(Subscriber::new(&other, "alice", "two"))
        .await
        .unwrap();
    store
        .put(Subscriber::new(realm, "bob", "three"))
        .await
        .unwrap();
    let alice = store.subscriber(realm, "alice").await.unwrap().unwrap();
    assert_eq!(alice, Subscriber::new(realm, "alice", "one"));
    // Realms are case-insensitive host names; user names are not.
    let upper = realm.to_ascii_uppercase();
    assert_eq!(
        store.subscriber(&upper, "alice").await.unwrap(),
        Some(alice)
    );
    assert_eq!(store.subscriber(realm, "Alice").await.unwrap(), None);
    // Replacing changes the HA1s; other realms are untouched.
    store
        .put(Subscriber::new(realm, "alice", "new"))
        .await
        .unwrap();
    assert_eq!(
        store.subscriber(realm, "alice").await.unwrap(),
        Some(Subscriber::new(realm, "alice", "new"))
    );
    assert_eq!(
        store.subscriber(&other, "alice").await.unwrap(),
        Some(Subscriber::new(&other, "alice", "two"))
    );
    assert_eq!(
        store.list(Some(realm)).await.unwrap(),
        vec![
            (realm.to_ascii_lowercase(), "alice".to_string()),
            (realm.to_ascii_lowercase(), "bob".to_string())
        ]
    );
    assert!(store.remove(realm, "alice").await.unwrap());
    assert!(!store.remove(realm, "alice").await.unwrap());
    assert_eq!(store.subscriber(realm, "alice").await.unwrap(), None);
    assert_eq!(store.list(Some(realm)).await.unwrap().len(), 1);
    assert!(store.remove(realm, "bob").await.unwrap());
    assert!(store.remove(&other, "alice").await.unwrap());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_table_conforms() {
        conformance(&Subscribers::empty(), "mem.test").await;
    }

    #[tokio::test]
    async fn the_file_conforms() {
        let dir = std::env::temp_dir().join(format!("sy-subs-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("subscribers.toml");
        let _ = std::fs::remove_file(&path);
        let store = Subscribers::open(&path).unwrap();
        conformance(&store, "file.test").await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
