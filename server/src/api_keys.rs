//! API keys of the merchant API: `sk_` and 32 random alphanumerics (190 bits), shown once at
//! creation and stored only as their SHA-256, with a visible prefix (`sk_Ab12Cd…`) to tell
//! them apart. A merchant may hold several; revoking one leaves the others working.

use crate::infra::db::Db;
use crate::merchants::MerchantId;
use crate::orders;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// How many leading characters of a key are kept visible.
const PREFIX_CHARS: usize = 10;

/// A key as listed (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    pub id: String,
    pub merchant_id: MerchantId,
    pub name: String,
    /// The first characters of the key, e.g. `sk_Ab12Cd3`.
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Who a valid key belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub merchant_id: MerchantId,
}

fn digest(key: &str) -> String {
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

/// Creates a key for a merchant; returns it listed and in full (the only time it is seen).
pub async fn create(
    db: &Db,
    merchant_id: &MerchantId,
    name: &str,
) -> Result<(ApiKey, String), sqlx::Error> {
    use rand::distributions::{Alphanumeric, DistString};
    let key = format!(
        "sk_{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
    );
    let listed = ApiKey {
        id: format!("key_{}", orders::random_token()),
        merchant_id: merchant_id.clone(),
        name: name.chars().take(64).collect(),
        prefix: key.chars().take(PREFIX_CHARS).collect(),
        created_at: crate::infra::clock::now_ms(),
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO api_keys (id, merchant_id, name, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&listed.id)
    .bind(merchant_id.as_str())
    .bind(&listed.name)
    .bind(&listed.prefix)
    .bind(digest(&key))
    .bind(listed.created_at)
    .execute(db.pool())
    .await?;
    Ok((listed, key))
}

/// The merchant's keys, newest first.
pub async fn list(db: &Db, merchant_id: &MerchantId) -> Result<Vec<ApiKey>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, merchant_id, name, prefix, created_at, revoked_at FROM api_keys \
         WHERE merchant_id = $1 ORDER BY created_at DESC, id",
    )
    .bind(merchant_id.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ApiKey {
                id: r.try_get("id")?,
                merchant_id: MerchantId::new(r.try_get::<String, _>("merchant_id")?),
                name: r.try_get("name")?,
                prefix: r.try_get("prefix")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Revokes one of the merchant's keys; `false` when it has no such (live) key.
pub async fn revoke(db: &Db, merchant_id: &MerchantId, key_id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND merchant_id = $3 AND revoked_at IS NULL",
    )
    .bind(crate::infra::clock::now_ms())
    .bind(key_id)
    .bind(merchant_id.as_str())
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The caller a presented key belongs to, if it is a live key.
pub async fn authenticate(db: &Db, key: &str) -> Result<Option<Caller>, sqlx::Error> {
    if !key.starts_with("sk_") || key.len() > 128 {
        return Ok(None);
    }
    let row =
        sqlx::query("SELECT id, merchant_id FROM api_keys WHERE hash = $1 AND revoked_at IS NULL")
            .bind(digest(key))
            .fetch_optional(db.pool())
            .await?;
    row.map(|r| {
        Ok(Caller {
            key_id: r.try_get("id")?,
            merchant_id: MerchantId::new(r.try_get::<String, _>("merchant_id")?),
        })
    })
    .transpose()
}
