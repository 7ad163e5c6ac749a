//! The `subscribers` table: digest credentials (HA1s per algorithm) per
//! realm, in the bindings' keyspace, so every node of a cluster
//! authenticates every user. Partition key `realm` (a tenant's domain),
//! clustering key `username`: one read per authentication, one partition
//! per tenant to list. Rows are small and rarely written, so the table
//! keeps the default compaction.

use async_trait::async_trait;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::store::{CassandraStore, store_error};
use switchyard_auth::{Subscriber, SubscriberStore};
use switchyard_location::StoreError;

/// The table name inside the keyspace.
pub const TABLE: &str = "subscribers";

/// `CREATE TABLE IF NOT EXISTS` for the subscribers.
pub fn table_cql(keyspace: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {keyspace}.{TABLE} (\n\
         \x20   realm text,\n\
         \x20   username text,\n\
         \x20   ha1_md5 text,\n\
         \x20   ha1_sha256 text,\n\
         \x20   ha1_sha512_256 text,\n\
         \x20   PRIMARY KEY ((realm), username)\n\
         )"
    )
}

/// The subscriber statements, prepared once at connect.
pub(super) struct Prepared {
    select: PreparedStatement,
    upsert: PreparedStatement,
    delete: PreparedStatement,
    list_realm: PreparedStatement,
    list_all: PreparedStatement,
}

impl Prepared {
    pub(super) async fn new(
        session: &Session,
        keyspace: &str,
        read_profile: scylla::client::execution_profile::ExecutionProfileHandle,
    ) -> Result<Prepared, StoreError> {
        let table = format!("{keyspace}.{TABLE}");
        let prepare = |cql: String| async move {
            session
                .prepare(cql)
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))
        };
        let mut select = prepare(format!(
            "SELECT ha1_md5, ha1_sha256, ha1_sha512_256 FROM {table} WHERE realm = ? AND username = ?"
        ))
        .await?;
        select.set_is_idempotent(true);
        select.set_execution_profile_handle(Some(read_profile));
        let mut upsert = prepare(format!(
            "INSERT INTO {table} (realm, username, ha1_md5, ha1_sha256, ha1_sha512_256) VALUES (?, ?, ?, ?, ?)"
        ))
        .await?;
        upsert.set_is_idempotent(true);
        let mut delete = prepare(format!(
            "DELETE FROM {table} WHERE realm = ? AND username = ?"
        ))
        .await?;
        delete.set_is_idempotent(true);
        let list_realm = prepare(format!(
            "SELECT realm, username FROM {table} WHERE realm = ?"
        ))
        .await?;
        let list_all = prepare(format!("SELECT realm, username FROM {table}")).await?;
        Ok(Prepared {
            select,
            upsert,
            delete,
            list_realm,
            list_all,
        })
    }
}

/// Rows of `(A, B, ...)` text columns out of a result.
fn text_rows<T>(result: scylla::response::query_result::QueryResult) -> Result<Vec<T>, StoreError>
where
    T: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    rows.rows::<T>()
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Backend(e.to_string()))
}

#[async_trait]
impl SubscriberStore for CassandraStore {
    async fn subscriber(&self, realm: &str, user: &str) -> Result<Option<Subscriber>, StoreError> {
        let realm = realm.to_ascii_lowercase();
        self.guarded(|| async {
            let c = self.connection().await?;
            let result = c
                .session
                .execute_unpaged(&c.subscribers.select, (&realm, user))
                .await
                .map_err(store_error)?;
            let rows: Vec<(String, String, String)> = text_rows(result)?;
            Ok(rows
                .into_iter()
                .next()
                .map(|(md5, sha256, sha512_256)| Subscriber {
                    realm: realm.clone(),
                    user: user.to_string(),
                    ha1_md5: md5,
                    ha1_sha256: sha256,
                    ha1_sha512_256: sha512_256,
                }))
        })
        .await
    }

    async fn put(&self, s: Subscriber) -> Result<(), StoreError> {
        let realm = s.realm.to_ascii_lowercase();
        self.guarded(|| async {
            let c = self.connection().await?;
            c.session
                .execute_unpaged(
                    &c.subscribers.upsert,
                    (
                        &realm,
                        &s.user,
                        &s.ha1_md5,
                        &s.ha1_sha256,
                        &s.ha1_sha512_256,
                    ),
                )
                .await
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn remove(&self, realm: &str, user: &str) -> Result<bool, StoreError> {
        let existed = self.subscriber(realm, user).await?.is_some();
        let realm = realm.to_ascii_lowercase();
        self.guarded(|| async {
            let c = self.connection().await?;
            c.session
                .execute_unpaged(&c.subscribers.delete, (&realm, user))
                .await
                .map_err(store_error)?;
            Ok(existed)
        })
        .await
    }

    async fn list(&self, realm: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        let realm = realm.map(str::to_ascii_lowercase);
        self.guarded(|| async {
            let c = self.connection().await?;
            // Unpaged is fine for one realm; every realm pages through
            // the driver (an operator's listing, not a request path).
            let result = match &realm {
                Some(r) => {
                    c.session
                        .execute_unpaged(&c.subscribers.list_realm, (r,))
                        .await
                }
                None => {
                    c.session
                        .execute_unpaged(&c.subscribers.list_all, &[])
                        .await
                }
            }
            .map_err(store_error)?;
            let mut rows: Vec<(String, String)> = text_rows(result)?;
            rows.sort();
            Ok(rows)
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "cassandra"
    }
}
