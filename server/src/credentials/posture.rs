//! Which gateways a merchant's own account may use, by posture: the sandbox and real money
//! never serve side by side.

use super::AccountIds;

/// Which gateways a merchant's own account may point at, by posture: the sandbox and real
/// money never serve side by side. A gateway on a loopback address is a sandbox (no provider
/// is reached there); a sub-merchant goes through the operator's account, which the posture
/// already judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Gateways {
    /// The demo posture: only sandboxes.
    SandboxOnly,
    /// The live posture: only real providers.
    RealOnly,
    /// `SCANPAY_UNSAFE_SANDBOX_BESIDE_LIVE`, or a tool that serves nothing.
    #[default]
    Any,
}

impl Gateways {
    /// Why `ids` may not be used here, if it may not.
    pub fn refuses(self, ids: &AccountIds) -> Option<String> {
        let url = match ids {
            AccountIds::Alipay { gateway, .. } => gateway,
            AccountIds::Wechat { api_base, .. } => api_base,
            AccountIds::WechatPartner { .. } | AccountIds::AlipayPartner { .. } => return None,
        };
        let sandbox = is_loopback(url);
        match (self, sandbox) {
            (Gateways::SandboxOnly, false) => Some(format!(
                "this server runs in the demo posture (the sandbox and the demo shop), where real \
                 credentials ({url}) are refused; configure its own live credentials first"
            )),
            (Gateways::RealOnly, true) => Some(format!(
                "this server takes real money, where a sandbox gateway ({url}) is refused"
            )),
            // A merchant may type any URL on the board: with real money, only the providers'
            // own hosts are called, so an account cannot make this server reach an internal
            // address.
            (Gateways::RealOnly, false) if !is_official(ids, url) => Some(format!(
                "{url} is not the provider's gateway (https://{})",
                official_hosts(ids).join(" or https://")
            )),
            _ => None,
        }
    }
}

/// The hosts of the providers' production APIs.
fn official_hosts(ids: &AccountIds) -> &'static [&'static str] {
    match ids {
        AccountIds::Alipay { .. } | AccountIds::AlipayPartner { .. } => &["openapi.alipay.com"],
        AccountIds::Wechat { .. } | AccountIds::WechatPartner { .. } => {
            &["api.mch.weixin.qq.com", "api2.mch.weixin.qq.com"]
        }
    }
}

fn is_official(ids: &AccountIds, url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    uri.scheme_str() == Some("https")
        && uri.port().is_none()
        && uri
            .host()
            .is_some_and(|h| official_hosts(ids).contains(&h.to_ascii_lowercase().as_str()))
}

/// Whether a URL's host is a loopback address (`localhost`, 127.0.0.0/8, `[::1]`).
fn is_loopback(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    match uri.host() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::Gateways;
    use crate::credentials::AccountIds;

    #[test]
    fn the_posture_decides_which_gateways_own_accounts_may_use() {
        let alipay = |gateway: &str| AccountIds::Alipay {
            gateway: gateway.into(),
            app_id: "2021000000000001".into(),
            seller_id: "2088000000000001".into(),
        };
        let real = alipay("https://openapi.alipay.com/gateway.do");
        let sandbox = alipay("http://127.0.0.1:3100/sandbox/alipay/gateway.do");
        let local = alipay("http://localhost:3000/sandbox/alipay/gateway.do");
        let v6 = alipay("http://[::1]:3000/sandbox/alipay/gateway.do");
        let sub = AccountIds::WechatPartner {
            sub_mchid: "1900000109".into(),
            sub_appid: None,
        };
        let demo = Gateways::SandboxOnly;
        assert!(demo
            .refuses(&real)
            .is_some_and(|why| why.contains("demo posture")));
        for ok in [&sandbox, &local, &v6, &sub] {
            assert_eq!(demo.refuses(ok), None, "{ok:?}");
        }
        let live = Gateways::RealOnly;
        assert_eq!(live.refuses(&real), None);
        assert_eq!(live.refuses(&sub), None);
        let internal = alipay("https://10.0.0.7/gateway.do");
        let metadata = alipay("http://169.254.169.254/latest/meta-data/");
        let plain = alipay("http://openapi.alipay.com/gateway.do");
        let wechat_host_for_alipay = alipay("https://api.mch.weixin.qq.com/gateway.do");
        for refused in [
            &sandbox,
            &local,
            &v6,
            &internal,
            &metadata,
            &plain,
            &wechat_host_for_alipay,
        ] {
            assert!(live.refuses(refused).is_some(), "{refused:?}");
        }
        let wechat = AccountIds::Wechat {
            api_base: "https://api2.mch.weixin.qq.com".into(),
            appid: "wx8888888888888888".into(),
            mchid: "1900000109".into(),
            cert_serial: "3775B6A45ACD588826D15E583A95F5DD00000001".into(),
            public_key_id: "PUB_KEY_ID_0119000000012026112700000000000001".into(),
        };
        assert_eq!(live.refuses(&wechat), None);
        assert_eq!(Gateways::Any.refuses(&real), None);
        assert_eq!(Gateways::Any.refuses(&sandbox), None);
    }
}
