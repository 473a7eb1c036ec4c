//! The two wallets a customer can pay with. Shared by the UI and the server.

use serde::{Deserialize, Serialize};

/// Which provider (and wallet app) a payment goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Alipay,
    Wechat,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Alipay => "alipay",
            Channel::Wechat => "wechat",
        }
    }
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Alipay, Channel::Wechat];

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an attempt is paid: which of a provider's payment products made it. Every attempt
/// records one; query, close, refund and expiry work the same for all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PayMethod {
    /// A code drawn on a screen and scanned by the wallet (Alipay precreate, WeChat Native).
    #[default]
    Native,
    /// Inside the wallet's own browser: WeChat JSAPI after OAuth, Alipay `alipay.trade.create`
    /// + `tradePay` after `auth_base`.
    Jsapi,
    /// WeChat H5 in a plain mobile browser.
    H5,
    /// Alipay WAP (`alipay.trade.wap.pay`) in a plain mobile browser.
    Wap,
}

impl PayMethod {
    pub const ALL: [PayMethod; 4] = [
        PayMethod::Native,
        PayMethod::Jsapi,
        PayMethod::H5,
        PayMethod::Wap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PayMethod::Native => "native",
            PayMethod::Jsapi => "jsapi",
            PayMethod::H5 => "h5",
            PayMethod::Wap => "wap",
        }
    }

    pub fn parse(s: &str) -> Option<PayMethod> {
        PayMethod::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether `channel` offers this method (WeChat has no WAP, Alipay no H5).
    pub fn offered_by(self, channel: Channel) -> bool {
        !matches!(
            (self, channel),
            (PayMethod::Wap, Channel::Wechat) | (PayMethod::H5, Channel::Alipay)
        )
    }

    /// The method of a plain mobile browser for `channel`.
    pub fn mobile_web(channel: Channel) -> PayMethod {
        match channel {
            Channel::Alipay => PayMethod::Wap,
            Channel::Wechat => PayMethod::H5,
        }
    }
}

impl std::fmt::Display for PayMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of browser opened one of our customer links, from its user agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Browser {
    /// A wallet's own in-app browser.
    InApp(Channel),
    /// Any other phone browser.
    Mobile,
    Desktop,
}

impl Browser {
    pub fn of_user_agent(ua: &str) -> Browser {
        if ua.contains("AlipayClient") {
            Browser::InApp(Channel::Alipay)
        } else if ua.contains("MicroMessenger") {
            Browser::InApp(Channel::Wechat)
        } else if ["Mobile", "Android", "iPhone", "iPad"]
            .iter()
            .any(|m| ua.contains(m))
        {
            Browser::Mobile
        } else {
            Browser::Desktop
        }
    }
}
