//! Per-address limits on the routes anyone can call that cost ScanPay work: provider
//! notifications (a stored body and writes each), sign-in links (a password hash), new
//! orders from the customer pages (renew, the demo form) and prepay starts (checkout,
//! aggregate code). A flood from one address is answered 429 before any of that work.
//!
//! The address is the client's as the trusted proxies tell it (`crate::infra::client_addr`). Requests
//! from this host itself are not counted while the in-process sandbox serves (it delivers its
//! notifications over loopback); in the live posture they are, so a reverse proxy on the
//! same host must be declared in `SCANPAY_TRUSTED_PROXIES`.

use crate::limits::{LimitError, Limited, Rate};
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, StatusCode};
use std::net::SocketAddr;

/// Which limit a request falls under, if any, and its rate per address.
fn class_of(method: &Method, path: &str) -> Option<(&'static str, Rate)> {
    let post = method == Method::POST;
    if post && path.starts_with("/notify/") {
        // Providers retry on 429 like on any failure; 300 at once covers a burst of real
        // notifications from one provider address.
        return Some(("notify", Rate::per_minute(300)));
    }
    if post && path.starts_with("/auth/link/") {
        return Some(("link", Rate::per_minute(10)));
    }
    match path {
        "/api/renew" | "/api/demo_order" if post => Some(("new-order", Rate::per_minute(30))),
        "/api/checkout" | "/api/aggregate" if post => Some(("prepay", Rate::per_minute(120))),
        _ if method == Method::GET && path.starts_with("/q/") => {
            Some(("prepay", Rate::per_minute(120)))
        }
        _ => None,
    }
}

pub async fn throttle(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(request).await;
    };
    let client = state
        .settings
        .trusted_proxies
        .client(peer, request.headers());
    // The pages read the client's address from here (WeChat H5 needs the payer's).
    request
        .extensions_mut()
        .insert(app::model::checkout::ClientAddr(client.to_string()));
    let Some((class, rate)) = class_of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    if client.is_loopback() && state.sandbox.is_some() {
        return next.run(request).await;
    }
    match state.limiter.take(&format!("{class}:{client}"), rate).await {
        Ok(()) => next.run(request).await,
        Err(LimitError::Limited(Limited { retry_after_secs })) => {
            ::metrics::counter!("http_throttled_total", "class" => class).increment(1);
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many requests from {client}; retry in {retry_after_secs} s.\n"),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        // The limit's store failing must not stop payments: let the request through.
        Err(LimitError::Store(e)) => {
            tracing::warn!(error = %e, class, "rate limit store unavailable; not limiting");
            next.run(request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costly_public_routes_are_classed_and_others_are_not() {
        let class = |m: Method, p: &str| class_of(&m, p).map(|(c, _)| c);
        assert_eq!(class(Method::POST, "/notify/wechat"), Some("notify"));
        assert_eq!(class(Method::POST, "/auth/link/abc"), Some("link"));
        assert_eq!(class(Method::GET, "/auth/link/abc"), None);
        assert_eq!(class(Method::POST, "/api/renew"), Some("new-order"));
        assert_eq!(class(Method::POST, "/api/demo_order"), Some("new-order"));
        assert_eq!(class(Method::POST, "/api/checkout"), Some("prepay"));
        assert_eq!(class(Method::GET, "/q/abcdef"), Some("prepay"));
        assert_eq!(class(Method::GET, "/checkout/ORD_x"), None);
        assert_eq!(class(Method::GET, "/healthz"), None);
    }
}
