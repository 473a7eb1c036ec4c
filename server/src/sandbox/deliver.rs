//! Notification delivery: each paid trade gets signed notifications, sent at once and then
//! again on the provider's real schedule (multiplied by the time scale) until the merchant
//! acknowledges one (Alipay: the body `success`; WeChat: any 2xx). Deliveries are rows in the
//! sandbox database, so a restart resumes them; every attempt and its answer is recorded.

use super::faults::Faults;
use super::{now_ms, token, Sandbox, Trade, WECHAT_KEY_ID};
use crate::providers::alipay::{china_time, wire as alipay_wire};
use crate::providers::crypto::{aes_256_gcm_encrypt, Signer};
use crate::providers::wechat::wire as wechat_wire;
use futures::future::join_all;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Alipay's waits between attempts: 8 notifications over about 25 hours.
pub const ALIPAY_SCHEDULE_SECS: &[u64] = &[
    4 * 60,
    10 * 60,
    10 * 60,
    3600,
    2 * 3600,
    6 * 3600,
    15 * 3600,
];
/// WeChat Pay's waits between attempts: 16 notifications over about 24 hours.
pub const WECHAT_SCHEDULE_SECS: &[u64] = &[
    15,
    15,
    30,
    180,
    600,
    1200,
    1800,
    1800,
    1800,
    3600,
    3 * 3600,
    3 * 3600,
    3 * 3600,
    6 * 3600,
    6 * 3600,
];
/// How long after the paid notification an out-of-order stale one is due.
const STALE_AFTER_MS: i64 = 300;

pub(super) async fn run(sb: Arc<Sandbox>) {
    loop {
        if let Err(e) = sb.deliver_due().await {
            tracing::warn!(error = %e, "sandbox: notification delivery failed; retrying");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Delivery {
    id: i64,
    trade_id: String,
    notify_id: String,
    stale: i64,
    attempts: i64,
    /// A refund notification (WeChat) about this refund; `None`: the trade's.
    out_refund_no: Option<String>,
}

impl Sandbox {
    /// Schedules the notifications of a trade that was just paid, as its faults say.
    pub(super) async fn enqueue_notifications(
        &self,
        trade: &Trade,
        faults: &Faults,
    ) -> Result<(), sqlx::Error> {
        if faults.drop {
            return Ok(());
        }
        let notify_id = match trade.channel.as_str() {
            "alipay" => format!("{}{}", now_ms(), token(18).to_ascii_lowercase()),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let due = now_ms() + faults.delay_ms as i64;
        let mut tx = self.pool.begin().await?;
        for _ in 0..=faults.duplicates {
            sqlx::query("INSERT INTO sandbox_deliveries (trade_id, notify_id, stale, next_at, created_at) VALUES (?1, ?2, 0, ?3, ?4)")
                .bind(&trade.id)
                .bind(&notify_id)
                .bind(due)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        if faults.out_of_order {
            let stale_id = format!("{notify_id}-stale");
            sqlx::query("INSERT INTO sandbox_deliveries (trade_id, notify_id, stale, next_at, created_at) VALUES (?1, ?2, 1, ?3, ?4)")
                .bind(&trade.id)
                .bind(stale_id)
                .bind(due + STALE_AFTER_MS)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Sends every delivery that is due, concurrently (stale copies last).
    async fn deliver_due(&self) -> Result<(), sqlx::Error> {
        let due: Vec<Delivery> = sqlx::query_as(
            "SELECT id, trade_id, notify_id, stale, attempts, out_refund_no FROM sandbox_deliveries \
             WHERE next_at IS NOT NULL AND next_at <= ?1 ORDER BY id LIMIT 64",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        // Out-of-order copies go after the paid ones even when a slow loop finds both due at
        // once: that order is the point of the fault.
        let (stale, fresh): (Vec<Delivery>, Vec<Delivery>) =
            due.into_iter().partition(|d| d.stale == 1);
        for batch in [fresh, stale] {
            for result in join_all(batch.into_iter().map(|d| self.deliver(d))).await {
                result?;
            }
        }
        Ok(())
    }

    async fn deliver(&self, d: Delivery) -> Result<(), sqlx::Error> {
        let Some(trade) = self.trade(&d.trade_id).await? else {
            return Ok(());
        };
        let faults = self.faults_for(&trade.faults);
        let stale = d.stale == 1;
        let (request, url) = match (&d.out_refund_no, trade.channel.as_str()) {
            (Some(no), _) => match self
                .wechat_refund_notification(&trade, no, &d.notify_id)
                .await?
            {
                Some(found) => found,
                None => return Ok(()),
            },
            (None, "alipay") => (
                self.alipay_notification(&trade, &d.notify_id, stale, &faults),
                trade.notify_url.clone(),
            ),
            (None, _) => (
                self.wechat_notification(&trade, &d.notify_id, stale, &faults),
                trade.notify_url.clone(),
            ),
        };
        let mut req = self.http.post(&url).body(request.body);
        for (k, v) in request.headers {
            req = req.header(k, v);
        }
        let (status, body) = match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (Some(status), r.text().await.unwrap_or_default())
            }
            Err(e) => (None, e.to_string()),
        };
        let acknowledged = match (trade.channel.as_str(), status) {
            ("alipay", Some(200)) => body.trim() == "success",
            (_, Some(s)) if trade.channel == "wechat" => (200..300).contains(&s),
            _ => false,
        };
        let attempt = d.attempts + 1;
        let schedule = if trade.channel == "alipay" {
            ALIPAY_SCHEDULE_SECS
        } else {
            WECHAT_SCHEDULE_SECS
        };
        let next_at = if acknowledged {
            None
        } else {
            schedule.get(d.attempts as usize).map(|secs| {
                now_ms() + (*secs as f64 * 1000.0 * self.settings.time_scale).round() as i64
            })
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO sandbox_attempts (delivery_id, attempt, at, status, body) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(d.id)
            .bind(attempt)
            .bind(now_ms())
            .bind(status.map(i64::from))
            .bind(body.chars().take(500).collect::<String>())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE sandbox_deliveries SET attempts = ?1, next_at = ?2, acknowledged = ?3 WHERE id = ?4")
            .bind(attempt)
            .bind(next_at)
            .bind(acknowledged)
            .bind(d.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// WeChat's refund notification about a refund as it is now (`REFUND.SUCCESS`,
    /// `REFUND.ABNORMAL`, `REFUND.CLOSED`), to the refund request's `notify_url`; `None` while
    /// it is still processing or has no URL.
    async fn wechat_refund_notification(
        &self,
        t: &Trade,
        out_refund_no: &str,
        notify_id: &str,
    ) -> Result<Option<(Outgoing, String)>, sqlx::Error> {
        let url: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT notify_url FROM sandbox_refunds WHERE channel = 'wechat' AND out_refund_no = ?1",
        )
        .bind(out_refund_no)
        .fetch_optional(&self.pool)
        .await?;
        let Some((Some(url),)) = url else {
            return Ok(None);
        };
        let Some((r, _)) = self.refund_by_no("wechat", out_refund_no).await? else {
            return Ok(None);
        };
        let (event_type, summary) = match r.status.as_str() {
            "SUCCESS" => ("REFUND.SUCCESS", "退款成功"),
            "ABNORMAL" => ("REFUND.ABNORMAL", "退款异常"),
            "CLOSED" => ("REFUND.CLOSED", "退款关闭"),
            _ => return Ok(None),
        };
        let mut resource = json!({
            "out_trade_no": t.out_trade_no,
            "transaction_id": t.trade_no,
            "out_refund_no": r.out_refund_no,
            "refund_id": r.refund_id,
            "refund_status": r.status,
            "user_received_account": "支付用户零钱",
            "amount": { "total": t.amount, "refund": r.amount, "payer_total": t.amount, "payer_refund": r.amount },
        });
        if r.status == "SUCCESS" {
            resource["success_time"] = json!(super::wechat::rfc3339(now_ms()));
        }
        // A partner trade's refund names the service provider and the sub-merchant.
        match &t.via {
            Some(sp) => {
                resource["sp_mchid"] = json!(sp);
                resource["sub_mchid"] = json!(t.account);
            }
            None => resource["mchid"] = json!(t.account),
        }
        let event = WechatEvent {
            id: notify_id,
            event_type,
            summary,
            original_type: "refund",
        };
        let account = self.signer_of(t);
        let out = sign_wechat_event(
            &account.keys.wechat_gateway,
            &account.keys.wechat_apiv3_key,
            &event,
            &resource,
            now_ms() / 1000,
            &token(32),
            false,
        );
        Ok(Some((out.with_serial(&account.wechat_key_id), url)))
    }

    /// An Alipay trade notification: form fields signed over all but `sign` and `sign_type`.
    fn alipay_notification(
        &self,
        t: &Trade,
        notify_id: &str,
        stale: bool,
        faults: &Faults,
    ) -> Outgoing {
        let amount = |fen: i64| {
            app::money::Amount::from_fen(fen)
                .map(alipay_wire::format_amount)
                .unwrap_or_default()
        };
        let notified = amount(t.amount + i64::from(faults.wrong_amount));
        let at = |ms: i64| {
            china_time(
                time::OffsetDateTime::from_unix_timestamp(ms / 1000)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            )
        };
        let mut f: BTreeMap<String, String> = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            f.insert(k.to_string(), v);
        };
        put("notify_time", at(now_ms()));
        put("notify_type", "trade_status_sync".into());
        put("notify_id", notify_id.into());
        // To the app that made the trade, about the merchant whose money it is (the same app
        // unless a third-party app made it with the merchant's app_auth_token).
        let account = self.account_of(t);
        let signer = self.signer_of(t);
        put("app_id", signer.alipay_app_id.clone());
        put("auth_app_id", account.alipay_app_id.clone());
        put("charset", "utf-8".into());
        put("version", "1.0".into());
        put("sign_type", "RSA2".into());
        put("trade_no", t.trade_no.clone());
        put("out_trade_no", t.out_trade_no.clone());
        put("buyer_id", "2088102177846880".into());
        put("buyer_logon_id", "san***@sandbox.scanpay".into());
        put("seller_id", account.alipay_seller_id.clone());
        put("seller_email", "merchant@sandbox.scanpay".into());
        put(
            "trade_status",
            if stale {
                "WAIT_BUYER_PAY"
            } else {
                "TRADE_SUCCESS"
            }
            .into(),
        );
        put("total_amount", notified.clone());
        put("subject", t.subject.clone());
        put("gmt_create", at(t.created_at));
        if !stale {
            put("receipt_amount", notified.clone());
            put("invoice_amount", notified.clone());
            put("buyer_pay_amount", notified.clone());
            put("point_amount", "0.00".into());
            put("gmt_payment", at(t.paid_at.unwrap_or(t.created_at)));
            put(
                "fund_bill_list",
                json!([{ "amount": notified, "fundChannel": "ALIPAYACCOUNT" }]).to_string(),
            );
        }
        sign_alipay_notification(&signer.keys.alipay_gateway, f, faults.bad_signature)
    }

    /// A WeChat Pay payment notification: the transaction encrypted with the APIv3 key, the
    /// envelope signed in the `Wechatpay-*` headers.
    fn wechat_notification(
        &self,
        t: &Trade,
        notify_id: &str,
        stale: bool,
        faults: &Faults,
    ) -> Outgoing {
        let state = if stale { "NOTPAY" } else { "SUCCESS" };
        let account = self.signer_of(t);
        let mut transaction = super::wechat::transaction_json(self, t, state);
        if faults.wrong_amount {
            transaction["amount"]["total"] = json!(t.amount + 1);
            transaction["amount"]["payer_total"] = json!(t.amount + 1);
        }
        let ts = now_ms() / 1000 - if faults.stale_timestamp { 600 } else { 0 };
        sign_wechat_notification(
            &account.keys.wechat_gateway,
            &account.keys.wechat_apiv3_key,
            notify_id,
            &transaction,
            ts,
            &token(32),
            faults.bad_signature,
        )
        .with_serial(&account.wechat_key_id)
    }
}

/// An Alipay notification's body: `fields` signed over all but `sign` and `sign_type` with
/// the gateway key (`tamper`: over something else). Public for tests and benchmarks that
/// play the provider.
pub fn sign_alipay_notification(
    gateway: &dyn Signer,
    mut fields: BTreeMap<String, String>,
    tamper: bool,
) -> Outgoing {
    let mut content = alipay_wire::sign_content(&fields, &["sign", "sign_type"]);
    if tamper {
        content.push_str("&tampered=1");
    }
    let sign = gateway.sign_base64(content.as_bytes()).unwrap_or_default();
    fields.insert("sign".into(), sign);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    Outgoing {
        headers: vec![(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        body: body.into_bytes(),
    }
}

/// A WeChat Pay notification: `transaction` encrypted with the APIv3 key, the envelope
/// signed at `ts` with `header_nonce` in the `Wechatpay-*` headers (`tamper`: wrongly).
pub fn sign_wechat_notification(
    gateway: &dyn Signer,
    apiv3_key: &[u8; 32],
    notify_id: &str,
    transaction: &serde_json::Value,
    ts: i64,
    header_nonce: &str,
    tamper: bool,
) -> Outgoing {
    let paid = transaction["trade_state"] == "SUCCESS";
    let event = WechatEvent {
        id: notify_id,
        event_type: if paid {
            "TRANSACTION.SUCCESS"
        } else {
            "TRANSACTION.NOTPAY"
        },
        summary: if paid { "支付成功" } else { "未支付" },
        original_type: "transaction",
    };
    sign_wechat_event(
        gateway,
        apiv3_key,
        &event,
        transaction,
        ts,
        header_nonce,
        tamper,
    )
}

/// What a WeChat Pay notification envelope says about its resource.
pub struct WechatEvent<'a> {
    pub id: &'a str,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, …
    pub event_type: &'a str,
    pub summary: &'a str,
    /// `transaction` or `refund`; also the resource's associated data.
    pub original_type: &'a str,
}

/// A WeChat Pay notification of any kind: `resource` encrypted with the APIv3 key, the
/// envelope signed at `ts` with `header_nonce` (`tamper`: wrongly).
pub fn sign_wechat_event(
    gateway: &dyn Signer,
    apiv3_key: &[u8; 32],
    event: &WechatEvent<'_>,
    resource: &serde_json::Value,
    ts: i64,
    header_nonce: &str,
    tamper: bool,
) -> Outgoing {
    let nonce = token(12);
    let nonce_bytes: [u8; 12] = nonce.as_bytes().try_into().unwrap_or([b'0'; 12]);
    let ciphertext = aes_256_gcm_encrypt(
        apiv3_key,
        &nonce_bytes,
        event.original_type.as_bytes(),
        resource.to_string().as_bytes(),
    )
    .unwrap_or_default();
    let body = json!({
        "id": event.id,
        "create_time": super::wechat::rfc3339(ts * 1000),
        "resource_type": "encrypt-resource",
        "event_type": event.event_type,
        "summary": event.summary,
        "resource": {
            "original_type": event.original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ciphertext,
            "associated_data": event.original_type,
            "nonce": nonce,
        },
    })
    .to_string();
    let ts = ts.to_string();
    let mut message = wechat_wire::response_message(&ts, header_nonce, body.as_bytes());
    if tamper {
        message.push(b'!');
    }
    let signature = gateway.sign_base64(&message).unwrap_or_default();
    Outgoing {
        headers: vec![
            ("content-type", "application/json".into()),
            ("wechatpay-timestamp", ts),
            ("wechatpay-nonce", header_nonce.to_string()),
            ("wechatpay-signature", signature),
            ("wechatpay-serial", WECHAT_KEY_ID.into()),
            ("wechatpay-signature-type", wechat_wire::AUTH_SCHEME.into()),
        ],
        body: body.into_bytes(),
    }
}

/// A notification ready to send.
pub struct Outgoing {
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Outgoing {
    /// The same, naming the key of the account that signed it (`Wechatpay-Serial`).
    pub fn with_serial(mut self, key_id: &str) -> Outgoing {
        for (name, value) in &mut self.headers {
            if *name == "wechatpay-serial" {
                *value = key_id.to_string();
            }
        }
        self
    }
}
