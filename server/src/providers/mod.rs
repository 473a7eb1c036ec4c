//! Payment providers: the one [`PaymentProvider`] trait and its two implementations,
//! [`alipay::Alipay`] (OpenAPI v2, RSA2) and [`wechat::WechatPay`] (API v3).
//!
//! Each implementation keeps its wire structs and state mappings beside it (`wire.rs`), signs
//! every request, verifies every response and notification, and turns every failure into a
//! typed [`ProviderError`]: a timeout, a 5xx, a truncated body or a missing or bad signature is
//! never a panic and never "paid". Unknown trade states map to [`TradeState::Pending`]; only
//! an explicit success is paid. Signing is behind [`crypto::Signer`] (constant-time `ring`;
//! see `crypto.rs` for why), verification behind [`crypto::Verifier`] (`rsa`), WeChat's
//! resource decryption in [`crypto::aes_gcm_decrypt`] (`aes-gcm`). Keys are parsed once at
//! start-up (`keys.rs`). The wire rules are in `shared/docs/providers.md`.

pub mod alipay;
pub mod config;
pub mod crypto;
pub mod keys;
mod payer;
pub mod wechat;

use app::money::Amount;
use async_trait::async_trait;
use std::time::Duration;

pub use crate::ids::OutTradeNo;
pub use app::channel::Channel;

/// A merchant served in service-provider mode: the money goes to its own account at the
/// provider, the calls are signed with the operator's keys.
#[derive(Clone)]
pub enum SubMerchant {
    Wechat {
        sub_mchid: String,
        /// The sub-merchant's own official account, when it gave one: payers sign in to it
        /// and are its `sub_openid`s (providers.md §2.12).
        sub_app: Option<SubApp>,
    },
    Alipay(alipay::Isv),
}

/// A WeChat sub-merchant's own official account: its `sub_appid` and AppSecret.
#[derive(Clone, Debug)]
pub struct SubApp {
    pub appid: String,
    pub secret: crate::infra::secret::Secret<String>,
}

pub use app::channel::PayMethod;
pub use payer::Payer;

/// What we ask a provider for when a customer chooses to pay.
#[derive(Clone, Debug)]
pub struct PrepayRequest {
    /// Our order id: ≤ 32 chars of `[0-9A-Za-z_]`, valid for both providers.
    pub out_trade_no: OutTradeNo,
    pub amount: Amount,
    /// What the customer sees in the wallet (≤ 127 chars for WeChat, 256 for Alipay).
    pub subject: String,
    /// When the code stops working, in Unix milliseconds like every time ScanPay keeps (each
    /// provider's adapter writes it in its own format).
    pub expires_at: i64,
    /// Where the provider sends the asynchronous notification.
    pub notify_url: String,
    /// Which of the provider's products to use.
    pub method: PayMethod,
    /// Jsapi: who pays (required there).
    pub payer: Option<Payer>,
    /// H5: the payer's own address (WeChat's `payer_client_ip`).
    pub client_ip: Option<String>,
    /// H5 and WAP: where the cashier sends the customer back (never proof of payment), and
    /// WAP's `quit_url`.
    pub return_url: Option<String>,
}

impl PrepayRequest {
    /// The refusal of a request whose method this provider does not have, or that lacks
    /// what its method needs.
    pub(crate) fn unsupported(&self, channel: Channel) -> ProviderError {
        ProviderError::Malformed(format!(
            "{} has no {} payment with these parameters",
            channel, self.method
        ))
    }
}

/// A created prepay: what the method hands the customer (the QR's URL for native, the
/// `prepay_id=…` package for WeChat JSAPI, the trade number for Alipay's in-app payment,
/// the cashier's URL for H5 and WAP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepay {
    pub code_url: String,
}

/// The provider's view of a trade, reduced to what ScanPay acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradeState {
    /// Not paid yet, or a state we do not know: keep waiting, ask again later.
    Pending,
    /// Paid (also after a later refund: the money did arrive).
    Paid,
    /// Closed unpaid; no payment can arrive any more.
    Closed,
    /// The payment attempt failed at the provider (WeChat `PAYERROR`).
    Failed,
}

/// A provider's word for a state, as a serde enum of the words its documentation lists plus
/// an `#[serde(other)] Unknown`: each listed word maps to one of our states, exhaustively.
pub trait StateWord: serde::de::DeserializeOwned {
    type State: Unsettled;
    /// Our state for a listed word; `None` for a word this code does not know.
    fn known(self) -> Option<Self::State>;
}

/// A state that says "not settled: ask again".
pub trait Unsettled {
    const UNSETTLED: Self;
}

impl Unsettled for TradeState {
    const UNSETTLED: TradeState = TradeState::Pending;
}

impl Unsettled for RefundState {
    const UNSETTLED: RefundState = RefundState::Pending;
}

/// The one rule for providers' state words: a word this code does not know (a new state, a
/// stray space, a changed case) is pending: never paid, never failed; asked again later.
pub fn state_of<W: StateWord>(word: &str) -> W::State {
    use serde::de::value::{Error, StrDeserializer};
    W::deserialize(StrDeserializer::<Error>::new(word))
        .ok()
        .and_then(W::known)
        .unwrap_or(W::State::UNSETTLED)
}

/// The answer of a trade query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeStatus {
    pub state: TradeState,
    /// The provider's own state word, kept for the timeline.
    pub provider_state: String,
    pub provider_trade_no: Option<String>,
    /// The amount the provider holds for this trade, when it says.
    pub amount: Option<Amount>,
}

/// A refund request. `out_refund_no` is the idempotency key: the same key refunds once.
#[derive(Clone, Debug)]
pub struct RefundRequest {
    pub out_trade_no: OutTradeNo,
    pub out_refund_no: String,
    pub refund: Amount,
    /// The order's full amount (WeChat requires it).
    pub total: Amount,
    pub reason: Option<String>,
    /// Where WeChat sends the refund's notification (Alipay sends none for refunds).
    pub notify_url: Option<String>,
}

/// What a provider says about a refund. Only `Succeeded` and `Failed` are final; anything
/// the provider does not say for sure is `Pending` (asked again), never failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundState {
    /// The money went back to the buyer.
    Succeeded,
    /// Accepted (or unknown) and not done yet: ask again with the same refund number.
    Pending,
    /// Closed: nothing was refunded (WeChat `CLOSED`).
    Failed,
    /// WeChat `ABNORMAL`: the original route failed (the buyer's card is gone); the money
    /// waits at the provider until the merchant applies for the abnormal refund.
    Abnormal,
    /// The refund query knows no such refund: the refund request may never have arrived.
    NotFound,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundStatus {
    pub state: RefundState,
    pub provider_state: String,
    pub provider_refund_no: Option<String>,
}

/// A notification whose signature (and for WeChat, timestamp and encryption) checked out,
/// parsed into the fields ScanPay acts on. Whether it matches an order of ours (amount, app,
/// merchant account) is for the callback processor to decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNotification {
    pub channel: Channel,
    /// The provider's id of this notification, stable across redeliveries (Alipay `notify_id`,
    /// WeChat event `id`).
    pub notification_id: String,
    pub out_trade_no: OutTradeNo,
    /// The provider's trade number; always present when the state is paid (an unpaid WeChat
    /// transaction has none yet).
    pub provider_trade_no: Option<String>,
    pub state: TradeState,
    pub provider_state: String,
    pub amount: Amount,
    pub currency: String,
    /// Alipay `app_id` / WeChat `appid`.
    pub app_id: String,
    /// Alipay `seller_id` / WeChat `mchid`.
    pub merchant_account: String,
    /// WeChat: the signed nonce, to refuse a replay within the timestamp window.
    pub replay_guard: Option<ReplayGuard>,
    /// What it is about: a payment, or a refund (then `state` is never `Paid`).
    pub kind: NotificationKind,
}

/// What a verified notification is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// The trade's payment state (the only kind that can pay an order).
    Payment,
    /// Alipay's `trade_status_sync` after a refund (it carries `refund_fee` / `gmt_refund` /
    /// `out_biz_no`): an echo of our own refund, never a payment and never a close.
    RefundEcho,
    /// WeChat's refund notification (`REFUND.SUCCESS|ABNORMAL|CLOSED`).
    Refund(RefundNotice),
}

/// A refund's outcome as a verified notification reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundNotice {
    /// Our refund id (WeChat `out_refund_no`).
    pub out_refund_no: String,
    /// WeChat's `refund_id`.
    pub provider_refund_no: Option<String>,
    pub state: RefundState,
    pub provider_state: String,
    /// The amount refunded.
    pub refund: Amount,
}

/// What makes a signed notification unique: its nonce, and a digest of everything signed
/// (timestamp, nonce, body) and the signature. The same nonce with another digest is a replay;
/// with the same digest it is an identical copy of one notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayGuard {
    pub nonce: String,
    /// The signed Unix second.
    pub signed_at: i64,
    /// Hex SHA-256 over the timestamp, nonce, body and signature.
    pub digest: String,
}

/// How we answer a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Processed, or a duplicate of one processed: stop sending it.
    Accepted,
    /// Refused (forged, malformed, not ours): the provider may send again, we will refuse again.
    Rejected,
    /// Our own transient fault: please send again.
    RetryLater,
}

/// The exact HTTP reply a provider expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyReply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

/// Why a provider call failed. Messages never contain keys or full bodies.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot reach the provider: {0}")]
    Connect(String),
    #[error("the provider did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the provider answered HTTP {status}")]
    Status { status: u16 },
    #[error("the provider's response is malformed: {0}")]
    Malformed(String),
    #[error("the provider's response is not signed")]
    Unsigned,
    #[error("the provider's response signature does not verify")]
    BadSignature,
    #[error("the provider refused: {code} {message}{}", sub_code.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())]
    Business {
        code: String,
        message: String,
        sub_code: Option<String>,
    },
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    /// A call this provider does not have (Alipay has no abnormal refunds).
    #[error("{0} is not offered by this provider")]
    Unsupported(&'static str),
    /// A provider failure another node of the cluster met, as it described it.
    #[error("{message}")]
    Relayed { message: String, transient: bool },
}

impl ProviderError {
    /// Whether trying the same call again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ProviderError::Connect(_) | ProviderError::Timeout(_) => true,
            ProviderError::Status { status } => *status >= 500,
            ProviderError::Relayed { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Whether this answer to a refund request means, for sure, that nothing was refunded
    /// and never will be under this refund number. Only the refusals both providers document
    /// as definitive; anything else (unknown codes, `SYSTEM_ERROR`, a cut-off or unverifiable
    /// answer, a timeout) may hide a refund that was made, so the refund stays pending and is
    /// asked about again. (`shared/docs/providers.md` part two, 1.11 and 2.10.)
    pub fn refund_refused(&self) -> bool {
        const DEFINITIVE: &[&str] = &[
            // Alipay sub codes.
            "ACQ.TRADE_NOT_EXIST",
            "ACQ.TRADE_STATUS_ERROR",
            "ACQ.TRADE_HAS_FINISHED",
            "ACQ.TRADE_NOT_ALLOW_REFUND",
            "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
            "ACQ.REASON_TRADE_REFUND_FEE_ERR",
            "ACQ.REFUND_FEE_ERROR",
            "ACQ.INVALID_PARAMETER",
            // WeChat codes.
            "NOT_ENOUGH",
            "USER_ACCOUNT_ABNORMAL",
            "NO_AUTH",
            "INVALID_REQUEST",
            "PARAM_ERROR",
            "RESOURCE_NOT_EXISTS",
        ];
        match self {
            // Alipay's argument errors (40001/40002/40006, with isv.* sub codes): nothing
            // was taken.
            ProviderError::Business { code, sub_code, .. } => {
                ["40001", "40002", "40006"].contains(&code.as_str())
                    || DEFINITIVE.contains(&code.as_str())
                    || sub_code.as_deref().is_some_and(|s| DEFINITIVE.contains(&s))
            }
            _ => false,
        }
    }
}

/// Why a notification was refused. Each becomes a recorded risk event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("the body is not valid: {0}")]
    Malformed(String),
    #[error("required field {0} is missing")]
    MissingField(&'static str),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("a WECHATPAY/SIGNTEST probe signature")]
    ProbeSignature,
    #[error("signed with key {got:?}, expected {expected:?}")]
    UnknownSerial { got: String, expected: String },
    #[error("the timestamp is {skew_secs} s away from now (limit 300 s)")]
    StaleTimestamp { skew_secs: i64 },
    #[error("the resource cannot be decrypted")]
    Decrypt,
    #[error("amount {0:?} is not a valid amount")]
    BadAmount(String),
}

/// One payment provider. Implementations hold their keys and one shared HTTP client.
/// Who we are at a provider: what a notification must name to be ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// Alipay `app_id` / WeChat `appid`.
    pub app_id: String,
    /// Alipay `seller_id` / WeChat `mchid`; `None` when not configured (then not checked).
    pub merchant_account: Option<String>,
}

#[async_trait]
pub trait PaymentProvider: Send + Sync {
    fn channel(&self) -> Channel;

    /// Our account ids at this provider.
    fn identity(&self) -> ProviderIdentity;

    /// This (service-provider) account acting for a sub-merchant: WeChat Pay's partner APIs
    /// with its `sub_mchid`, or our Alipay app with a merchant's `app_auth_token`. `None`:
    /// not a sub-merchant of this provider.
    fn for_sub_merchant(&self, _sub: &SubMerchant) -> Option<std::sync::Arc<dyn PaymentProvider>> {
        None
    }

    /// Creates a prepay order of `request.method` and returns what that method hands the
    /// customer (see [`Prepay`]).
    async fn create_prepay(&self, request: &PrepayRequest) -> Result<Prepay, ProviderError>;

    /// Where a wallet's own browser signs in silently (WeChat `snsapi_base`, Alipay
    /// `auth_base`) and comes back to `redirect_uri` with a one-time code and our `state`.
    /// `None`: this account cannot (WeChat without the official account's AppSecret).
    fn authorize_url(&self, _redirect_uri: &str, _state: &str) -> Option<String> {
        None
    }

    /// Whether [`PaymentProvider::authorize_url`] gives a sign-in for this account.
    fn signs_in(&self) -> bool {
        self.authorize_url("", "").is_some()
    }

    /// Who is paying, from the one-time code of [`PaymentProvider::authorize_url`] (server
    /// to server; the code is used once whatever the answer).
    async fn payer_of_code(&self, _code: &str) -> Result<Payer, ProviderError> {
        Err(ProviderError::Unsupported("a wallet sign-in"))
    }

    /// The in-page call that pays a jsapi attempt whose prepay gave `code`, signed now.
    fn wallet_call(&self, _code: &str) -> Result<app::model::checkout::WalletCall, ProviderError> {
        Err(ProviderError::Unsupported("an in-page payment"))
    }

    /// Verifies a cashier's return to us (Alipay WAP's `return_url` query) and returns the
    /// trade it names. Never proof of payment: only which order to look at.
    fn verify_return(&self, _query: &[(String, String)]) -> Result<OutTradeNo, NotificationError> {
        Err(NotificationError::BadSignature)
    }

    /// Asks the provider about a trade by our order id.
    async fn query(&self, out_trade_no: &OutTradeNo) -> Result<TradeStatus, ProviderError>;

    /// Closes an unpaid trade so it can no longer be paid.
    async fn close(&self, out_trade_no: &OutTradeNo) -> Result<(), ProviderError>;

    /// Refunds all or part of a paid trade; idempotent by `out_refund_no`.
    async fn refund(&self, request: &RefundRequest) -> Result<RefundStatus, ProviderError>;

    /// Asks how a refund went (Alipay `alipay.trade.fastpay.refund.query`, WeChat
    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`).
    async fn refund_query(
        &self,
        out_trade_no: &OutTradeNo,
        out_refund_no: &str,
    ) -> Result<RefundStatus, ProviderError>;

    /// Sends an abnormal refund to the merchant's bank card instead (WeChat only).
    async fn apply_abnormal_refund(
        &self,
        _provider_refund_no: &str,
        _out_refund_no: &str,
    ) -> Result<RefundStatus, ProviderError> {
        Err(ProviderError::Unsupported("an abnormal refund"))
    }

    /// Verifies and parses an asynchronous notification (headers and raw body as received).
    fn verify_notification(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedNotification, NotificationError>;

    /// The exact reply the provider expects for an outcome.
    fn notification_reply(&self, outcome: NotifyOutcome) -> NotifyReply {
        match outcome {
            NotifyOutcome::Accepted => self.acceptance_reply(),
            NotifyOutcome::Rejected => self.refusal_reply(400, "notification refused"),
            NotifyOutcome::RetryLater => self.refusal_reply(500, "temporary failure, please retry"),
        }
    }

    /// The reply that tells the provider a notification is taken.
    fn acceptance_reply(&self) -> NotifyReply;

    /// A refusal in the provider's format with an HTTP status of our choosing (400 refused,
    /// 413 too large, 500 our own transient fault).
    fn refusal_reply(&self, status: u16, message: &str) -> NotifyReply;

    /// The trade number a notification that did NOT verify claims to be about, read without
    /// trusting it, so the refusal can be shown in that order's timeline. Never acted on.
    fn claimed_trade(&self, body: &[u8]) -> Option<String>;
}

/// The one HTTP client of the process's provider calls: connect and total timeouts, no
/// redirects (a gateway that redirects is misconfigured, not to be followed with our signature).
pub fn http_client(connect_timeout: Duration, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ScanPay/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| panic!("the HTTP client cannot be built at start-up: {e}"))
}

/// Maps a transport failure to a typed error.
pub(crate) fn transport_error(err: reqwest::Error, timeout: Duration) -> ProviderError {
    if err.is_timeout() {
        ProviderError::Timeout(timeout)
    } else if err.is_connect() {
        ProviderError::Connect(err.to_string())
    } else if err.is_body() || err.is_decode() {
        ProviderError::Malformed(format!("the body could not be read: {err}"))
    } else {
        ProviderError::Connect(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::ProviderError;

    fn business(code: &str, sub_code: Option<&str>) -> ProviderError {
        ProviderError::Business {
            code: code.into(),
            message: String::new(),
            sub_code: sub_code.map(str::to_string),
        }
    }

    #[test]
    fn only_documented_refusals_end_a_refund() {
        for refused in [
            business("40004", Some("ACQ.TRADE_NOT_ALLOW_REFUND")),
            business("40004", Some("ACQ.TRADE_HAS_FINISHED")),
            business("40002", Some("isv.invalid-refund-amount")),
            business("NOT_ENOUGH", None),
            business("PARAM_ERROR", None),
        ] {
            assert!(refused.refund_refused(), "{refused:?}");
        }
        for unknown in [
            business("20000", Some("ACQ.SYSTEM_ERROR")),
            business("40004", Some("AQC.SYSTEM_ERROR")),
            business("40004", Some("ACQ.DISCORDANT_REPEAT_REQUEST")),
            business("40004", Some("ACQ.SELLER_BALANCE_NOT_ENOUGH")),
            business("40004", Some("ACQ.SOMETHING_NEW")),
            business("SYSTEM_ERROR", None),
            business("FREQUENCY_LIMITED", None),
            ProviderError::BadSignature,
            ProviderError::Unsigned,
            ProviderError::Malformed("cut off".into()),
            ProviderError::Status { status: 502 },
            ProviderError::Timeout(std::time::Duration::from_secs(5)),
        ] {
            assert!(!unknown.refund_refused(), "{unknown:?}");
        }
    }
}
