//! The developers page: API keys (live first, then revoked), the webhook endpoint, and the
//! merchant's own provider accounts (entered here or with `scanpay merchant credentials`).

use super::{internal, invalid};
use crate::credentials::{self, AccountIds, CredentialsError};
use crate::infra::db::Db;
use crate::merchants::MerchantId;
use crate::payments::Payments;
use crate::webhooks::{WebhookError, Webhooks};
use app::merchant::{AccountRow, DevelopersView, KeyRow, Setting, SettingDone, ShopCodeRow};
use app::services::ServiceError;
use sqlx::Row;

/// The developers page of a merchant: its API keys (live first, then revoked) and its
/// webhook endpoint.
pub async fn developers(
    db: &Db,
    merchant_id: &MerchantId,
    public_url: &str,
) -> Result<DevelopersView, ServiceError> {
    let mut keys: Vec<KeyRow> = crate::api_keys::list(db, merchant_id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            revoked: k.revoked_at.is_some(),
        })
        .collect();
    keys.sort_by_key(|k| k.revoked); // stable: newest first within each group
    let (webhook_url, has_secret) = webhook_endpoint(db, merchant_id).await?;
    let accounts = credentials::list(db, merchant_id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|a| AccountRow {
            channel: a.ids.channel(),
            sub_merchant: a.ids.is_partner(),
            ids: ids_of(&a.ids),
            checked_at: a.checked_at,
        })
        .collect();
    let codes = crate::shop_codes::list(db, merchant_id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|c| ShopCodeRow {
            url: format!("{public_url}/p/{}", c.code),
            code: c.code,
            name: c.name,
            active: c.disabled_at.is_none(),
            created_at: c.created_at,
        })
        .collect();
    let logo_url = crate::merchants::get(db, merchant_id)
        .await
        .map_err(internal)?
        .and_then(|m| m.logo_url);
    Ok(DevelopersView {
        keys,
        webhook_url,
        has_secret,
        accounts,
        codes,
        logo_url,
    })
}

/// An account's ids as the board lists them.
fn ids_of(ids: &AccountIds) -> Vec<(String, String)> {
    let pairs: Vec<(&str, &String)> = match ids {
        AccountIds::Alipay {
            gateway,
            app_id,
            seller_id,
        } => vec![
            ("app_id", app_id),
            ("seller_id", seller_id),
            ("gateway", gateway),
        ],
        AccountIds::Wechat {
            api_base,
            appid,
            mchid,
            cert_serial,
            public_key_id,
        } => vec![
            ("mchid", mchid),
            ("appid", appid),
            ("cert_serial", cert_serial),
            ("public_key_id", public_key_id),
            ("api_base", api_base),
        ],
        AccountIds::WechatPartner {
            sub_mchid,
            sub_appid,
        } => {
            let mut shown = vec![("sub_mchid", sub_mchid)];
            shown.extend(sub_appid.iter().map(|a| ("sub_appid", a)));
            shown
        }
        AccountIds::AlipayPartner {
            auth_app_id,
            seller_id,
        } => vec![("auth_app_id", auth_app_id), ("seller_id", seller_id)],
    };
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A merchant's webhook URL, and whether its signing secret exists.
async fn webhook_endpoint(
    db: &Db,
    merchant_id: &MerchantId,
) -> Result<(Option<String>, bool), ServiceError> {
    let row = sqlx::query(
        "SELECT webhook_url, CAST(CASE WHEN webhook_secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_secret \
         FROM merchants WHERE id = $1",
    )
    .bind(merchant_id)
    .fetch_optional(db.pool())
    .await
    .map_err(internal)?;
    match row {
        Some(r) => Ok((
            r.try_get::<Option<String>, _>("webhook_url")
                .map_err(internal)?,
            r.try_get::<i64, _>("has_secret").map_err(internal)? == 1,
        )),
        None => Ok((None, false)),
    }
}

/// A change on a merchant's developers page. A new key or secret is answered this once.
pub async fn setting(
    payments: &Payments,
    webhooks: &Webhooks,
    merchant_id: &MerchantId,
    change: Setting,
) -> Result<SettingDone, ServiceError> {
    let db = payments.db();
    let done = |message: String, secret: Option<String>| Ok(SettingDone { message, secret });
    match change {
        Setting::SetAccount(form) => {
            let creds = credentials::from_fields(form.channel, |name| {
                form.fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            })
            .map_err(|why| invalid(format!("Not saved: {why}.")))?;
            let book = payments.book();
            book.check(&creds)
                .await
                .map_err(|why| invalid(format!("Not saved: {why}.")))?;
            book.save(
                merchant_id,
                &creds,
                Some(crate::infra::clock::now_ms()),
            )
            .await
            .map_err(|e| match e {
                CredentialsError::NoMasterKey => invalid(
                    "Not saved: this server has no master key to seal it with (SCANPAY_MASTER_KEY_FILE).",
                ),
                other => internal(other),
            })?;
            tracing::info!(merchant = %merchant_id, channel = %form.channel, "provider account saved on the board");
            done(
                format!(
                    "Saved and checked with the provider: your {} payments now go to this account. Its keys are not shown again.",
                    form.channel
                ),
                None,
            )
        }
        Setting::RemoveAccount { channel } => {
            if !credentials::remove(db, merchant_id, channel)
                .await
                .map_err(internal)?
            {
                return Err(invalid("No such account."));
            }
            tracing::info!(merchant = %merchant_id, %channel, "provider account removed on the board");
            done(
                format!("Removed: your new {channel} orders go through the operator's account."),
                None,
            )
        }
        Setting::CreateCode { name } => {
            use crate::shop_codes::ShopCodeError;
            let code = crate::shop_codes::create(db, merchant_id, &name)
                .await
                .map_err(|e| match e {
                    e @ (ShopCodeError::Name | ShopCodeError::TooMany) => {
                        invalid(format!("Not created: {e}."))
                    }
                    other => internal(other),
                })?;
            tracing::info!(merchant = %merchant_id, code = %code.code, "shop code created on the board");
            done(
                format!(
                    "Created \u{201c}{}\u{201d}: print its card and put it at the counter.",
                    code.name
                ),
                None,
            )
        }
        Setting::SetLogo { url } => {
            let url = url.trim();
            if !url.is_empty() && !crate::merchants::valid_logo_url(url) {
                return Err(invalid(format!(
                    "Logo: an https:// image URL of at most {} characters, without spaces or quotes.",
                    crate::merchants::MAX_LOGO_URL
                )));
            }
            crate::merchants::set_logo(db, merchant_id, Some(url).filter(|u| !u.is_empty()))
                .await
                .map_err(internal)?;
            done(
                match url.is_empty() {
                    true => "Logo removed: your customers' pages show your shop's name.".into(),
                    false => "Saved: your customers' pages show this logo beside your shop's name."
                        .into(),
                },
                None,
            )
        }
        Setting::DisableCode { code } => {
            if !crate::shop_codes::disable(db, merchant_id, &code)
                .await
                .map_err(internal)?
            {
                return Err(invalid("No such code in use."));
            }
            done(
                "Disabled: the code takes no more payments.".to_string(),
                None,
            )
        }
        Setting::CreateKey { name } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 64 {
                return Err(invalid("Key name: 1 to 64 characters, e.g. \"web shop\"."));
            }
            let (key, secret) = crate::api_keys::create(db, merchant_id, name)
                .await
                .map_err(internal)?;
            tracing::info!(merchant = %merchant_id, key = %key.id, "API key created on the board");
            done(
                format!(
                    "API key \"{}\" created. Copy it now: it is not shown again.",
                    key.name
                ),
                Some(secret),
            )
        }
        Setting::RevokeKey { key_id } => {
            if !crate::api_keys::revoke(db, merchant_id, &key_id)
                .await
                .map_err(internal)?
            {
                return Err(invalid("No such live API key."));
            }
            tracing::info!(merchant = %merchant_id, key = %key_id, "API key revoked on the board");
            done(
                "API key revoked: requests with it now get 401.".into(),
                None,
            )
        }
        Setting::SetWebhook { url } => {
            let (_, had_secret) = webhook_endpoint(db, merchant_id).await?;
            let secret = webhooks
                .set_endpoint(merchant_id, url.trim())
                .await
                .map_err(|e| match e {
                    WebhookError::Url(why) => invalid(format!("Webhook URL: {why}.")),
                    other => internal(other),
                })?;
            if had_secret {
                done(
                    "Webhook endpoint saved; its signing secret is unchanged.".into(),
                    None,
                )
            } else {
                done(
                    "Webhook endpoint saved. Copy its signing secret now: it is not shown again."
                        .into(),
                    Some(secret),
                )
            }
        }
        Setting::RotateSecret => {
            if webhook_endpoint(db, merchant_id).await?.0.is_none() {
                return Err(invalid("Set a webhook endpoint first."));
            }
            let secret = crate::webhooks::rotate_secret(db, merchant_id)
                .await
                .map_err(internal)?;
            done(
                "New signing secret: events are signed with it from now on. Copy it now: it is not shown again."
                    .into(),
                Some(secret),
            )
        }
    }
}
