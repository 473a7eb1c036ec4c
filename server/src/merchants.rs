//! Merchants: the shops that take payments. The merchant area (accounts, API keys, webhooks)
//! grows here; today it holds the lookup the checkout needs and the demo merchant of the
//! embedded default.

use crate::infra::db::Db;
use sqlx::Row;

/// The id of the demo merchant that `make run` creates, so a newcomer can pay a test order
/// at once (`SCANPAY_DEMO=off` leaves it out).
pub const DEMO_MERCHANT_ID: &str = "mer_demo";
const DEMO_MERCHANT_NAME: &str = "ScanPay Demo Shop";

crate::ids::text_id! {
    /// A merchant's id, inside the server: made from text only at the edges (a database row, a
    /// session, an API key, the command line), so a function that wants a merchant cannot be
    /// handed an order id or a trade number by mistake.
    pub struct MerchantId;
}

impl MerchantId {
    pub fn new(id: impl Into<String>) -> MerchantId {
        MerchantId(id.into())
    }

    /// The demo merchant ([`DEMO_MERCHANT_ID`]).
    pub fn demo() -> MerchantId {
        MerchantId::new(DEMO_MERCHANT_ID)
    }
}

impl From<&str> for MerchantId {
    fn from(id: &str) -> MerchantId {
        MerchantId::new(id)
    }
}

impl From<String> for MerchantId {
    fn from(id: String) -> MerchantId {
        MerchantId(id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merchant {
    pub id: String,
    pub name: String,
}

/// Creates the demo merchant unless it exists (safe to run on every start, on every node).
pub async fn ensure_demo(db: &Db) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(DEMO_MERCHANT_ID)
    .bind(DEMO_MERCHANT_NAME)
    .bind(crate::infra::clock::now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &MerchantId) -> Result<Option<Merchant>, sqlx::Error> {
    let row = sqlx::query("SELECT id, name FROM merchants WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| {
        Ok(Merchant {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
        })
    })
    .transpose()
}
