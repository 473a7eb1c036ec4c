//! A phone scanning our codes, for the tests: its browsers' user agents, requests that do
//! not follow redirects, the wallets' silent sign-in, the aggregate code's answer as the page
//! gets it, and the sandbox's stand-in for the wallets' JS bridges.

use super::TestApp;
use serde_json::Value;

pub const WECHAT_UA: &str =
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36 MicroMessenger/8.0.50";
pub const ALIPAY_UA: &str =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile AlipayClient/10.6.0";
pub const PHONE_UA: &str =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Version/18.0 Mobile/15E148 Safari/604.1";
pub const DESKTOP_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";

/// A GET as a phone would send it (redirects not followed), with the sandbox's cookies.
pub async fn open(app: &TestApp, url: &str, ua: &str, cookie: Option<&str>) -> reqwest::Response {
    let url = match url.starts_with('/') {
        true => app.url(url),
        false => url.to_string(),
    };
    let mut req = app.client.get(url).header("user-agent", ua);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.expect("response")
}

pub fn location(r: &reqwest::Response) -> String {
    assert!(
        r.status().is_redirection(),
        "a redirect, got {}",
        r.status()
    );
    r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string()
}

/// The aggregate code, then the wallet's silent sign-in: the URL the wallet sends the
/// browser back to (`/q/<token>?code=…&state=…`).
pub async fn sign_in(app: &TestApp, token: &str, ua: &str, cookie: Option<&str>) -> String {
    let authorize = location(&open(app, &format!("/q/{token}"), ua, None).await);
    let (url, _fragment) = authorize.split_once('#').unwrap_or((&authorize, ""));
    location(&open(app, url, ua, cookie).await)
}

/// The aggregate answer for `search` as the page's server function gives it (JSON).
pub async fn answer(app: &TestApp, token: &str, search: &str, ua: &str) -> Value {
    let r = app
        .client
        .post(app.url("/api/aggregate"))
        .header("user-agent", ua)
        .form(&[("token", token), ("search", search)])
        .send()
        .await
        .expect("aggregate");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    r.json().await.expect("JSON")
}

pub fn search_of(url: &str) -> String {
    url.split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default()
}

/// Posts to one of the sandbox's bridge stand-ins, as `bridge.js` does.
pub async fn bridge(app: &TestApp, path: &str, body: &Value) -> Value {
    bridge_with(app, path, body, "").await
}

/// [`bridge`] with the browser's sandbox cookies (`sandbox_wallet=cancel`: the buyer closes
/// the pay sheet).
pub async fn bridge_with(app: &TestApp, path: &str, body: &Value, cookie: &str) -> Value {
    app.client
        .post(app.url(path))
        .header("content-type", "text/plain")
        .header("cookie", cookie)
        .body(body.to_string())
        .send()
        .await
        .expect("bridge")
        .json()
        .await
        .expect("JSON")
}

/// Signs in from the aggregate code `token` inside a wallet (`ua`), and returns the page's
/// in-app answer for the way back (JSON: `{"InApp": …}` or `{"Problem": …}`).
pub async fn sign_in_and_answer(app: &TestApp, token: &str, ua: &str) -> Value {
    let back = sign_in(app, token, ua, None).await;
    answer(app, token, &search_of(&back), ua).await
}
