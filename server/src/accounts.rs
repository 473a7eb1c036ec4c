//! Board accounts: a merchant's users, their passwords, one-time sign-in links and sessions.
//!
//! - Passwords are argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes), stored as PHC
//!   strings; a sign-in with an unknown email still runs one verification, so timing does not
//!   tell which emails exist.
//! - A session is 256 random bits in an HttpOnly cookie; the database keeps only its SHA-256,
//!   its expiry and the session's CSRF token, which every change the board makes sends back.
//! - Sign-in links are one-time (a conditional update claims them) and expire after a day.
//! - Failed sign-ins are limited per email and per address ([`LoginLimiter`]; the whole
//!   cluster's on PostgreSQL, see `limits.rs`).

use crate::infra::clock::now_ms;
use crate::infra::db::Db;
use crate::limits::{LimitError, Limiter, Rate};
use crate::merchants::MerchantId;
use crate::orders;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::time::Duration;

/// How long a sign-in lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// How long a sign-in link can be used.
pub const LINK_TTL_MS: i64 = 24 * 3600 * 1000;
pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 256;
/// The demo merchant's user (no password: the demo's "sign in" button is the only way in, and
/// only while the demo is on).
pub const DEMO_EMAIL: &str = "demo@scanpay.local";

/// Who a valid session belongs to.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user_id: String,
    pub email: String,
    pub merchant_id: MerchantId,
    pub merchant_name: String,
    pub csrf: String,
    /// May see the cluster page (an operator).
    pub admin: bool,
}

impl std::fmt::Debug for SessionUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionUser")
            .field("user_id", &self.user_id)
            .field("merchant_id", &self.merchant_id)
            .field("csrf", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the email address is not valid")]
    Email,
    #[error("a user with the email {0} exists already")]
    EmailTaken(String),
    #[error("the merchant name must be 1 to 64 characters")]
    Name,
    #[error("the password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    Password,
    #[error("no such user")]
    NoUser,
    #[error("this sign-in link is unknown, used or expired; ask for a new one")]
    Link,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What `scanpay merchant create` made.
#[derive(Clone)]
pub struct CreatedMerchant {
    pub merchant_id: MerchantId,
    pub user_id: String,
    pub api_key: String,
    pub login_token: String,
}

pub(crate) fn digest(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

fn random_secret() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 43)
}

/// An email as stored: trimmed and lower-cased; `None` when it does not look like one.
pub fn normalise_email(email: &str) -> Option<String> {
    let e = email.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(e)
}

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(AccountError::Password);
    }
    ::metrics::counter!("board_password_hashes_total").increment(1);
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Creates a merchant, its first user (no password yet), a first API key and a one-time
/// sign-in link.
pub async fn create_merchant(
    db: &Db,
    name: &str,
    email: &str,
    admin: bool,
) -> Result<CreatedMerchant, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(AccountError::Name);
    }
    let email = normalise_email(email).ok_or(AccountError::Email)?;
    let merchant_id = MerchantId::new(format!("mer_{}", orders::random_token()));
    let user_id = format!("usr_{}", orders::random_token());
    let now = now_ms();
    let mut tx = db.pool().begin().await?;
    sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&merchant_id)
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO users (id, merchant_id, email, created_at, admin) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(&user_id)
    .bind(&merchant_id)
    .bind(&email)
    .bind(now)
    .bind(i64::from(admin))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AccountError::EmailTaken(email));
    }
    tx.commit().await?;
    let (_, api_key) = crate::api_keys::create(db, &merchant_id, "first key").await?;
    let login_token = login_link(db, &user_id).await?;
    Ok(CreatedMerchant {
        merchant_id,
        user_id,
        api_key,
        login_token,
    })
}

/// The user with this email (lower-cased), if any: `(user id, merchant id)`.
pub async fn user_by_email(db: &Db, email: &str) -> Result<Option<(String, String)>, AccountError> {
    let Some(email) = normalise_email(email) else {
        return Ok(None);
    };
    let row = sqlx::query("SELECT id, merchant_id FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(db.pool())
        .await?;
    Ok(row
        .map(|r| Ok::<_, sqlx::Error>((r.try_get("id")?, r.try_get("merchant_id")?)))
        .transpose()?)
}

/// A new one-time sign-in link token for a user (older unused links stay valid until they
/// expire).
pub async fn login_link(db: &Db, user_id: &str) -> Result<String, AccountError> {
    let token = random_secret();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO login_links (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(digest(&token))
    .bind(user_id)
    .bind(now)
    .bind(now + LINK_TTL_MS)
    .execute(db.pool())
    .await?;
    Ok(token)
}

/// Whether a link token can still be used (for the page that asks for a password).
pub async fn link_usable(db: &Db, token: &str) -> Result<bool, AccountError> {
    let row = sqlx::query(
        "SELECT 1 AS one FROM login_links WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(digest(token))
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}

/// Uses a sign-in link once: sets the user's password and opens a session (its cookie token).
pub async fn redeem_link(db: &Db, token: &str, password: &str) -> Result<String, AccountError> {
    // Hashing is deliberately slow (19 MiB, tens of milliseconds): only for a link that
    // exists and is unused, so guessing tokens costs ScanPay one indexed read each. The
    // conditional update below still decides who uses it.
    if !link_usable(db, token).await? {
        return Err(AccountError::Link);
    }
    // Off the async workers.
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))??;
    let now = now_ms();
    let mut tx = db.pool().begin().await?;
    let row = sqlx::query(
        "UPDATE login_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
         RETURNING user_id",
    )
    .bind(now)
    .bind(digest(token))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AccountError::Link)?;
    let user_id: String = row.try_get("user_id")?;
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(&hash)
        .bind(&user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    open_session(db, &user_id).await
}

/// A hash to verify against when the email is unknown, so both cases cost the same.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

/// Checks an email and password; a session's cookie token when they match.
pub async fn sign_in(db: &Db, email: &str, password: &str) -> Result<Option<String>, AccountError> {
    let row = match normalise_email(email) {
        Some(e) => {
            sqlx::query("SELECT id, password_hash FROM users WHERE email = $1")
                .bind(e)
                .fetch_optional(db.pool())
                .await?
        }
        None => None,
    };
    let (user_id, hash): (Option<String>, Option<String>) = match &row {
        Some(r) => (Some(r.try_get("id")?), r.try_get("password_hash")?),
        None => (None, None),
    };
    let candidate = hash.clone().unwrap_or_else(|| decoy_hash().to_string());
    let password = password.to_string();
    let matches = tokio::task::spawn_blocking(move || password_matches(&candidate, &password))
        .await
        .unwrap_or(false);
    match (user_id, hash.is_some() && matches) {
        (Some(user_id), true) => Ok(Some(open_session(db, &user_id).await?)),
        _ => Ok(None),
    }
}

/// Opens a session for a user; returns the cookie token.
pub async fn open_session(db: &Db, user_id: &str) -> Result<String, AccountError> {
    let token = random_secret();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(digest(&token))
    .bind(user_id)
    .bind(random_secret())
    .bind(now)
    .bind(now + SESSION_TTL_MS)
    .execute(db.pool())
    .await?;
    Ok(token)
}

/// The user of a live session.
pub async fn session(db: &Db, token: &str) -> Result<Option<SessionUser>, sqlx::Error> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT s.user_id, s.csrf, u.email, u.merchant_id, u.admin, m.name FROM sessions s \
         JOIN users u ON u.id = s.user_id JOIN merchants m ON m.id = u.merchant_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(digest(token))
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(SessionUser {
            user_id: r.try_get("user_id")?,
            email: r.try_get("email")?,
            merchant_id: r.try_get("merchant_id")?,
            merchant_name: r.try_get("name")?,
            csrf: r.try_get("csrf")?,
            admin: r.try_get::<i64, _>("admin")? == 1,
        })
    })
    .transpose()
}

/// Ends a session (signing out).
pub async fn end_session(db: &Db, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(digest(token))
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Drops expired sessions and sign-in links; returns how many rows went.
pub async fn forget_expired(db: &Db) -> Result<usize, sqlx::Error> {
    let now = now_ms();
    let s = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    let l = sqlx::query("DELETE FROM login_links WHERE expires_at <= $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok((s.rows_affected() + l.rows_affected()) as usize)
}

/// The demo merchant's user, created with the demo merchant. It may see the cluster page:
/// the demo is someone trying ScanPay on their own machine.
///
/// Safe when several nodes start at once against one database: the insert gives way to a
/// conflict on any unique key (a targeted `ON CONFLICT (email)` still fails on PostgreSQL
/// when two inserts race on the primary key), and the admin flag is set by its own
/// conditional update, which also upgrades a demo user made before the flag existed.
pub async fn ensure_demo_user(db: &Db) -> Result<String, sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, merchant_id, email, created_at, admin) VALUES ($1, $2, $3, $4, 1) \
         ON CONFLICT DO NOTHING",
    )
    .bind(DEMO_USER_ID)
    .bind(crate::merchants::DEMO_MERCHANT_ID)
    .bind(DEMO_EMAIL)
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    sqlx::query("UPDATE users SET admin = 1 WHERE id = $1 AND admin = 0")
        .bind(DEMO_USER_ID)
        .execute(db.pool())
        .await?;
    Ok(DEMO_USER_ID.to_string())
}

/// The id of the demo merchant's user.
pub const DEMO_USER_ID: &str = "usr_demo";

/// Failed sign-ins allowed per email in one window.
pub const FAILURES_PER_EMAIL: u32 = 5;
/// Failed sign-ins allowed per remote address in one window.
pub const FAILURES_PER_ADDRESS: u32 = 20;
/// The window over which those failures are allowed (one more comes back every
/// window / count).
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Limits failed sign-ins per email and per address: each may fail its count at once, then
/// once per window / count (GCRA, `limits.rs`); a limited attempt is refused before any
/// password is checked.
pub struct LoginLimiter {
    limiter: std::sync::Arc<Limiter>,
}

impl LoginLimiter {
    pub fn new(limiter: std::sync::Arc<Limiter>) -> LoginLimiter {
        LoginLimiter { limiter }
    }

    fn window(count: u32) -> Rate {
        Rate {
            count,
            per: FAILURE_WINDOW,
        }
    }

    /// The address's allowance and the email's (lower-cased), in the order they are taken.
    fn keys(email: &str, addr: &str) -> [(String, Rate); 2] {
        [
            (
                format!("login-addr:{addr}"),
                Self::window(FAILURES_PER_ADDRESS),
            ),
            (
                format!("login-email:{}", email.trim().to_lowercase()),
                Self::window(FAILURES_PER_EMAIL),
            ),
        ]
    }

    /// Before a password is checked: takes one attempt from the address and one from the
    /// email, or says how long to wait (taking nothing). Taken first, not counted after, so
    /// many guesses sent at once cannot all pass while the first ones are being verified.
    pub async fn begin(&self, email: &str, addr: &str) -> Result<(), LimitError> {
        let [(addr_key, addr_rate), (email_key, email_rate)] = Self::keys(email, addr);
        self.limiter.take(&addr_key, addr_rate).await?;
        if let Err(e) = self.limiter.take(&email_key, email_rate).await {
            self.limiter.give_back(&addr_key, addr_rate).await?;
            return Err(e);
        }
        Ok(())
    }

    /// The password was right: only failures count, so the address gets its attempt back
    /// and the email starts afresh.
    pub async fn succeeded(&self, email: &str, addr: &str) -> Result<(), sqlx::Error> {
        let [(addr_key, addr_rate), (email_key, _)] = Self::keys(email, addr);
        self.limiter.give_back(&addr_key, addr_rate).await?;
        self.limiter.forget(&email_key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(password_matches(&h, "correct horse battery"));
        assert!(!password_matches(&h, "correct horse batterY"));
        assert!(matches!(
            hash_password("short"),
            Err(AccountError::Password)
        ));
    }

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(
            normalise_email("  Ann@Shop.CN ").as_deref(),
            Some("ann@shop.cn")
        );
        for bad in ["ann", "ann@shop", "@shop.cn", "a b@shop.cn", "ann@.cn"] {
            assert_eq!(normalise_email(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn the_limiter_stops_an_email_after_its_failures_and_forgets_on_success() {
        let l = LoginLimiter::new(std::sync::Arc::new(Limiter::local()));
        for _ in 0..FAILURES_PER_EMAIL {
            l.begin("a@b.cn", "1.2.3.4")
                .await
                .expect("within the allowance");
        }
        let Err(LimitError::Limited(wait)) = l.begin("A@b.cn", "5.6.7.8").await else {
            panic!("the email is limited from any address");
        };
        let interval = FAILURE_WINDOW.as_secs() / u64::from(FAILURES_PER_EMAIL);
        assert_eq!(
            wait.retry_after_secs, interval,
            "one more attempt per interval"
        );
        l.begin("other@b.cn", "1.2.3.4")
            .await
            .expect("another email from the same address");
        l.succeeded("a@b.cn", "1.2.3.4").await.expect("success");
        l.begin("a@b.cn", "1.2.3.4")
            .await
            .expect("forgotten on success");
    }

    #[tokio::test]
    async fn the_limiter_stops_an_address_and_successes_do_not_count() {
        let l = LoginLimiter::new(std::sync::Arc::new(Limiter::local()));
        // Successful sign-ins from one address (a shop's staff behind one NAT) never add up.
        for i in 0..FAILURES_PER_ADDRESS * 2 {
            let email = format!("staff{i}@shop.cn");
            l.begin(&email, "9.9.9.9").await.expect("a colleague");
            l.succeeded(&email, "9.9.9.9").await.expect("success");
        }
        // Failures do, across emails; a refused email does not use up the address.
        for i in 0..FAILURES_PER_ADDRESS {
            l.begin(&format!("guess{i}@shop.cn"), "9.9.9.9")
                .await
                .expect("within the address's allowance");
        }
        assert!(matches!(
            l.begin("guess-next@shop.cn", "9.9.9.9").await,
            Err(LimitError::Limited(_))
        ));
        assert!(l.begin("guess-next@shop.cn", "8.8.8.8").await.is_ok());
    }
}
