//! The two languages of the customer pages: English and Simplified Chinese.
//!
//! The server picks one per request (`?lang=`, then the `scanpay_lang` cookie, then
//! `Accept-Language`) and writes it into `<html lang>`; the browser starts from that attribute,
//! so the hydrated page speaks the language the server rendered. Texts sit in pairs where
//! they are used (`lang.pick("Paid", "支付成功")`), so the two versions never drift apart.

use crate::channel::Channel;
use crate::status::{OrderStatus, RefundStatus};
use leptos::prelude::*;

/// The cookie that remembers a visitor's choice.
pub const COOKIE: &str = "scanpay_lang";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// The BCP 47 tag, as in `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// `en`, `en-GB`, `zh`, `zh-CN`, `zh-Hans-CN`… (case-insensitive); others are not ours.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The first language of an `Accept-Language` header we speak, by quality.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(u16, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or_default();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let q = (q.clamp(0.0, 1.0) * 1000.0) as u16;
            if let Some(lang) = Lang::from_tag(tag) {
                if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, lang));
                }
            }
        }
        best.map(|(_, l)| l)
    }

    pub fn pick(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    /// The other language, for the switch.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// The language's own name, as the switch shows it.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "中文",
        }
    }

    /// An order status as the board shows it.
    pub fn status(self, status: OrderStatus) -> &'static str {
        match status {
            OrderStatus::Created => self.pick("Created", "已创建"),
            OrderStatus::Pending => self.pick("Awaiting payment", "待支付"),
            OrderStatus::Paid => self.pick("Paid", "已支付"),
            OrderStatus::PartiallyRefunded => self.pick("Partly refunded", "部分退款"),
            OrderStatus::Refunded => self.pick("Refunded", "已退款"),
            OrderStatus::Expired => self.pick("Expired", "已过期"),
            OrderStatus::Closed => self.pick("Closed", "已关闭"),
        }
    }

    /// A refund's status for people.
    pub fn refund_status(self, status: RefundStatus) -> &'static str {
        match status {
            RefundStatus::Pending => self.pick("Pending", "处理中"),
            RefundStatus::Succeeded => self.pick("Refunded", "退款成功"),
            RefundStatus::Failed => self.pick("Failed", "退款失败"),
            RefundStatus::Abnormal => self.pick("Abnormal: action needed", "退款异常，需处理"),
        }
    }

    pub fn wallet(self, channel: Channel) -> &'static str {
        match channel {
            Channel::Alipay => self.pick("Alipay", "支付宝"),
            Channel::Wechat => self.pick("WeChat Pay", "微信支付"),
        }
    }
}

/// The language a request asks for explicitly with `?lang=`.
#[cfg(feature = "ssr")]
pub fn requested(parts: &http::request::Parts) -> Option<Lang> {
    parts.uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("lang="))
            .and_then(Lang::from_tag)
    })
}

/// The language of the current request, on the server: `?lang=`, the cookie, then
/// `Accept-Language`, then English.
#[cfg(feature = "ssr")]
pub fn from_request(parts: &http::request::Parts) -> Lang {
    let from_query = requested(parts);
    let from_cookie = || {
        parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .and_then(Lang::from_tag)
    };
    let from_header = || {
        parts
            .headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Lang::from_accept_language)
    };
    from_query
        .or_else(from_cookie)
        .or_else(from_header)
        .unwrap_or_default()
}

/// The language the page starts in: on the server from the request, in the browser from
/// `<html lang>` (which the server wrote).
pub fn initial() -> Lang {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .map(|p| from_request(&p))
            .unwrap_or_default()
    }
    #[cfg(not(feature = "ssr"))]
    {
        document()
            .document_element()
            .and_then(|e| e.get_attribute("lang"))
            .and_then(|l| Lang::from_tag(&l))
            .unwrap_or_default()
    }
}

/// The page's language signal (provided by `App`).
pub fn use_lang() -> RwSignal<Lang> {
    use_context::<RwSignal<Lang>>().unwrap_or_else(|| RwSignal::new(Lang::default()))
}

/// A text in both languages that follows the page's language. One component for every
/// fixed text keeps the WASM small: each inline `move || lang.get().pick(…)` closure is a type
/// of its own, with its own copy of the render and hydrate code.
#[component]
pub fn T(en: &'static str, zh: &'static str) -> impl IntoView {
    let lang = use_lang();
    move || lang.get().pick(en, zh)
}

/// Switches the language in the browser without a reload, and remembers it for a year.
pub fn switch_to(lang: RwSignal<Lang>, to: Lang) {
    lang.set(to);
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let doc = document();
        if let Some(root) = doc.document_element() {
            let _ = root.set_attribute("lang", to.tag());
        }
        if let Ok(html) = doc.dyn_into::<web_sys::HtmlDocument>() {
            let _ = html.set_cookie(&format!(
                "{COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
                to.tag()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn accept_language_picks_the_best_language_we_speak() {
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Some(Lang::Zh)
        );
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Some(Lang::En));
        assert_eq!(
            Lang::from_accept_language("fr-FR, en;q=0.5, zh;q=0.7"),
            Some(Lang::Zh)
        );
        assert_eq!(Lang::from_accept_language("de, fr;q=0.5"), None);
        assert_eq!(
            Lang::from_accept_language("zh;q=0, en;q=0.1"),
            Some(Lang::En)
        );
        assert_eq!(Lang::from_tag("ZH-hans-cn"), Some(Lang::Zh));
    }
}
