//! Who pays: the buyer's id a wallet's sign-in gave, tagged with its kind.

use super::Channel;

/// Who pays, as a wallet's OAuth named them. Alipay's ids come in two kinds (apps made since
/// about 2023 get only `open_id`), and an order must carry the id in the field of its kind
/// (`buyer_id` / `buyer_open_id`), or Alipay answers `ACQ.BUYER_NOT_EXIST`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Payer {
    WechatOpenId(String),
    AlipayUserId(String),
    AlipayOpenId(String),
}

impl Payer {
    /// Its stored form, `kind:id`.
    pub fn stored(&self) -> String {
        let (kind, id) = match self {
            Payer::WechatOpenId(id) => ("wechat_openid", id),
            Payer::AlipayUserId(id) => ("alipay_user_id", id),
            Payer::AlipayOpenId(id) => ("alipay_open_id", id),
        };
        format!("{kind}:{id}")
    }

    pub fn parse(stored: &str) -> Option<Payer> {
        let (kind, id) = stored.split_once(':')?;
        let valid = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        if !valid {
            return None;
        }
        let id = id.to_string();
        match kind {
            "wechat_openid" => Some(Payer::WechatOpenId(id)),
            "alipay_user_id" => Some(Payer::AlipayUserId(id)),
            "alipay_open_id" => Some(Payer::AlipayOpenId(id)),
            _ => None,
        }
    }

    pub fn channel(&self) -> Channel {
        match self {
            Payer::WechatOpenId(_) => Channel::Wechat,
            Payer::AlipayUserId(_) | Payer::AlipayOpenId(_) => Channel::Alipay,
        }
    }
}

impl From<Payer> for String {
    fn from(p: Payer) -> String {
        p.stored()
    }
}

impl TryFrom<String> for Payer {
    type Error = String;
    fn try_from(s: String) -> Result<Payer, String> {
        Payer::parse(&s).ok_or_else(|| "not a payer id".to_string())
    }
}

/// A payer's id is personal data: logs show only its kind.
impl std::fmt::Debug for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self.stored();
        let kind = kind.split(':').next().unwrap_or_default();
        write!(f, "Payer({kind}:…)")
    }
}
