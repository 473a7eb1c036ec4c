//! A shop's fixed codes (#18, the 收款码 at the counter): a permanent `/p/<code>` that any
//! wallet or phone camera scans. The customer types the amount (and a note); that makes an
//! ordinary order of the shop, tagged with the code, whose aggregate code then takes the
//! phone to its wallet's payment (`phone.rs`). Nothing printed ever goes dead: the code is
//! our URL, and each payment through it mints its own provider payment.

use crate::infra::clock::now_ms;
use crate::infra::db::Db;
use crate::merchants::MerchantId;
use crate::orders::{self, NewOrder, Order, OrderError};
use crate::payments::Payments;
use app::money::Amount;
use sqlx::Row;

/// The longest name of a code (where it hangs: "Counter 1", "Table 7").
pub const MAX_NAME_CHARS: usize = 40;
/// The longest note a customer may add.
pub const MAX_NOTE_CHARS: usize = 60;
/// How long an order made through a fixed code can be paid.
pub const ORDER_LIFETIME_SECS: i64 = 15 * 60;
/// At most this many live codes per merchant.
pub const MAX_CODES: i64 = 200;

/// One fixed code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShopCode {
    pub code: String,
    pub merchant_id: MerchantId,
    pub name: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShopCodeError {
    #[error("a code's name is 1 to {MAX_NAME_CHARS} characters")]
    Name,
    #[error("a shop has at most {MAX_CODES} codes in use")]
    TooMany,
    #[error("no such code")]
    NotFound,
    #[error("this code is no longer in use")]
    Disabled,
    #[error("the amount is 0.01 to 100000 yuan")]
    Amount,
    #[error("the note is at most {MAX_NOTE_CHARS} characters")]
    Note,
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Whether `code` could be one of ours (checked before any database read).
pub fn well_formed(code: &str) -> bool {
    code.len() == 16 && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<ShopCode, sqlx::Error> {
    Ok(ShopCode {
        code: r.try_get("code")?,
        merchant_id: r.try_get("merchant_id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        disabled_at: r.try_get("disabled_at")?,
    })
}

pub async fn create(db: &Db, merchant: &MerchantId, name: &str) -> Result<ShopCode, ShopCodeError> {
    let name = name.trim();
    if !(1..=MAX_NAME_CHARS).contains(&name.chars().count()) {
        return Err(ShopCodeError::Name);
    }
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM shop_codes WHERE merchant_id = $1 AND disabled_at IS NULL",
    )
    .bind(merchant)
    .fetch_one(db.pool())
    .await?;
    if live >= MAX_CODES {
        return Err(ShopCodeError::TooMany);
    }
    use rand::distributions::{Alphanumeric, DistString};
    let code = Alphanumeric.sample_string(&mut rand::thread_rng(), 16);
    sqlx::query(
        "INSERT INTO shop_codes (code, merchant_id, name, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&code)
    .bind(merchant)
    .bind(name)
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    get(db, &code).await?.ok_or(ShopCodeError::NotFound)
}

pub async fn get(db: &Db, code: &str) -> Result<Option<ShopCode>, sqlx::Error> {
    if !well_formed(code) {
        return Ok(None);
    }
    sqlx::query("SELECT * FROM shop_codes WHERE code = $1")
        .bind(code)
        .fetch_optional(db.pool())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// A merchant's codes, those in use first, newest first.
pub async fn list(db: &Db, merchant: &MerchantId) -> Result<Vec<ShopCode>, sqlx::Error> {
    sqlx::query(
        "SELECT * FROM shop_codes WHERE merchant_id = $1 \
         ORDER BY CASE WHEN disabled_at IS NULL THEN 0 ELSE 1 END, created_at DESC, code",
    )
    .bind(merchant)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Stops a merchant's code taking payments; `false`: no such code of this merchant, or it
/// was stopped already.
pub async fn disable(db: &Db, merchant: &MerchantId, code: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE shop_codes SET disabled_at = $1 \
         WHERE code = $2 AND merchant_id = $3 AND disabled_at IS NULL",
    )
    .bind(now_ms())
    .bind(code)
    .bind(merchant)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A customer's payment through a code in use: an order of its shop for `amount`, tagged
/// with the code; its subject is the note, else the code's name.
pub async fn order(
    payments: &Payments,
    code: &str,
    amount: &str,
    note: &str,
) -> Result<Order, ShopCodeError> {
    let shop = get(payments.db(), code)
        .await?
        .ok_or(ShopCodeError::NotFound)?;
    if shop.disabled_at.is_some() {
        return Err(ShopCodeError::Disabled);
    }
    let amount = Amount::parse_yuan(amount.trim())
        .ok()
        .filter(|a| (1..=10_000_000).contains(&a.fen()))
        .ok_or(ShopCodeError::Amount)?;
    let note = note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ShopCodeError::Note);
    }
    let subject = match note.is_empty() {
        true => shop.name.clone(),
        false => format!("{} · {note}", shop.name),
    };
    let new = NewOrder {
        merchant_id: shop.merchant_id.clone(),
        amount,
        subject,
        expires_in_secs: ORDER_LIFETIME_SECS,
        return_url: None,
    };
    let order = orders::create_tagged(payments.db(), &new, None, Some(&shop.code)).await?;
    payments.announce(&order);
    Ok(order)
}

impl crate::checkout::Checkout {
    /// The customer's view of a fixed code (`None`: no such code).
    pub async fn shop_code(
        &self,
        code: &str,
    ) -> Result<Option<app::api::ShopCodeView>, app::services::ServiceError> {
        let Some(shop) = get(self.db(), code)
            .await
            .map_err(crate::service_error::fault)?
        else {
            return Ok(None);
        };
        let (shop_name, logo_url) = self.shop_of(&shop.merchant_id).await?;
        let channels = self
            .payments
            .book()
            .channels_for(&shop.merchant_id)
            .await
            .map_err(crate::service_error::fault)?;
        Ok(Some(app::api::ShopCodeView {
            active: shop.disabled_at.is_none() && !channels.is_empty(),
            code: shop.code,
            shop_name,
            logo_url,
            name: shop.name,
            channels,
        }))
    }

    /// A customer's payment through a fixed code: the new order's aggregate code path.
    pub async fn shop_pay(
        &self,
        code: &str,
        amount: &str,
        note: &str,
    ) -> Result<String, app::services::ServiceError> {
        use app::services::ServiceError;
        match order(&self.payments, code, amount, note).await {
            Ok(o) => o
                .aggregate_token
                .map(|t| format!("/q/{t}"))
                .ok_or_else(|| crate::service_error::fault("an order without its token")),
            // The page says each in the customer's language, by these words.
            Err(ShopCodeError::NotFound) => Err(ServiceError::Invalid("unknown".into())),
            Err(ShopCodeError::Amount) => Err(ServiceError::Invalid("amount".into())),
            Err(ShopCodeError::Note) => Err(ServiceError::Invalid("note".into())),
            Err(ShopCodeError::Disabled) => Err(ServiceError::Invalid("disabled".into())),
            Err(e) => Err(crate::service_error::fault(e)),
        }
    }
}
