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
    /// The shop's logo on its customers' pages (an https:// image URL).
    pub logo_url: Option<String>,
}

/// The longest logo URL a shop may give.
pub const MAX_LOGO_URL: usize = 512;

/// Whether `url` may be a shop's logo: https, at most [`MAX_LOGO_URL`] bytes, no spaces or
/// quotes (it goes into an `<img src>` on the customer's page).
pub fn valid_logo_url(url: &str) -> bool {
    url.len() <= MAX_LOGO_URL
        && url
            .strip_prefix("https://")
            .is_some_and(|rest| rest.len() > 3 && rest.contains('.'))
        && url
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'<>\\`".contains(&b))
}

/// Sets (or with `None` removes) a shop's logo; the caller checked it with
/// [`valid_logo_url`].
pub async fn set_logo(db: &Db, id: &MerchantId, url: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE merchants SET logo_url = $1 WHERE id = $2")
        .bind(url)
        .bind(id.as_str())
        .execute(db.pool())
        .await?;
    Ok(())
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
    let row = sqlx::query("SELECT id, name, logo_url FROM merchants WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| {
        Ok(Merchant {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            logo_url: r.try_get("logo_url")?,
        })
    })
    .transpose()
}

#[cfg(test)]
mod logo_tests {
    #[test]
    fn only_plain_https_image_urls_are_logos() {
        assert!(super::valid_logo_url("https://shop.example/logo.png"));
        for bad in [
            "http://shop.example/logo.png",
            "https://",
            "javascript:alert(1)",
            "https://shop.example/a b.png",
            "https://shop.example/\"onerror=x.png",
            "https://shop.example/<x>.png",
        ] {
            assert!(!super::valid_logo_url(bad), "{bad}");
        }
        assert!(!super::valid_logo_url(&format!(
            "https://a.example/{}",
            "x".repeat(600)
        )));
    }
}
