//! Signing in and out of the order board, its one-time links, and the guard every request
//! passes:
//!
//! - `POST /auth/login` (form: email, password, next): a session cookie (HttpOnly,
//!   SameSite=Lax, Secure when the public URL is https) and a redirect to the board; failures
//!   go back to `/login?error=…`; too many failures answer 429 with `Retry-After`.
//! - `POST /auth/logout` (form: csrf), `POST /auth/demo` (the demo shop, while the demo is on).
//! - `GET|POST /auth/link/{token}`: a one-time sign-in link; the person chooses a password.
//! - [`guard`]: a state-changing request from another origin is refused (403) when it carries
//!   our session cookie or targets `/auth/`; a board page without a session redirects to
//!   `/login`. Changes made by the board also carry the session's CSRF token
//!   (`app::merchant::change_order`).

use crate::accounts::{self, AccountError, LoginLimiter};
use crate::limits::{LimitError, Limited};
use crate::state::AppState;
use app::merchant::{cookie, SESSION_COOKIE};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/demo", post(demo))
        .route("/auth/link/{token}", get(link_page).post(redeem_link))
        .layer(Extension(Arc::new(LoginLimiter::new(
            state.limiter.clone(),
        ))))
}

fn session_cookie(state: &AppState, token: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A redirect that also sets the session cookie.
fn signed_in_redirect(state: &AppState, token: &str, next: &str) -> Response {
    let mut response = Redirect::to(safe_next(next)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(state, token, accounts::SESSION_TTL_MS / 1000),
    );
    response
}

/// Where to go after signing in: a board path, never another site.
fn safe_next(next: &str) -> &str {
    let board_path = next == "/board" || next.starts_with("/board/") || next.starts_with("/board?");
    if board_path && !next.contains("//") && !next.contains('\\') {
        next
    } else {
        "/board"
    }
}

/// The client's address: the connection's, or what a trusted proxy says it was.
fn client_address(
    state: &AppState,
    request_addr: Option<&ConnectInfo<SocketAddr>>,
    headers: &HeaderMap,
) -> String {
    request_addr
        .map(|c| {
            state
                .settings
                .trusted_proxies
                .client(c.0.ip(), headers)
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

#[derive(serde::Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(state): State<AppState>,
    Extension(limiter): Extension<Arc<LoginLimiter>>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return Redirect::to("/login?error=bad").into_response();
    };
    let addr = client_address(&state, addr.as_ref().map(|e| &e.0), &headers);
    let wait = match limiter.begin(&form.email, &addr).await {
        Ok(()) => None,
        Err(LimitError::Limited(Limited { retry_after_secs })) => Some(retry_after_secs),
        Err(LimitError::Store(e)) => return internal(e),
    };
    if let Some(wait) = wait {
        ::metrics::counter!("board_logins_total", "outcome" => "limited").increment(1);
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Html(format!(
                "<!DOCTYPE html><meta charset=utf-8><title>Too many attempts</title>\
                 <p>Too many failed sign-ins. Try again in {} minutes. <a href=\"/login\">Back</a></p>",
                wait.div_ceil(60)
            )),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    match accounts::sign_in(&state.db, &form.email, &form.password).await {
        Ok(Some(token)) => {
            if let Err(e) = limiter.succeeded(&form.email, &addr).await {
                tracing::warn!(error = %e, "could not reset the sign-in limit");
            }
            ::metrics::counter!("board_logins_total", "outcome" => "ok").increment(1);
            signed_in_redirect(&state, &token, &form.next)
        }
        Ok(None) => {
            ::metrics::counter!("board_logins_total", "outcome" => "refused").increment(1);
            tracing::info!(%addr, "board sign-in refused");
            let next = app::merchant::encode(safe_next(&form.next));
            Redirect::to(&format!("/login?error=bad&next={next}")).into_response()
        }
        Err(e) => internal(e),
    }
}

pub(super) fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "board sign-in failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side. Please try again.",
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    match accounts::session(&state.db, &token).await {
        Ok(Some(user))
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                user.csrf.as_bytes(),
                csrf.as_bytes(),
            )) =>
        {
            if let Err(e) = accounts::end_session(&state.db, &token).await {
                return internal(e);
            }
        }
        Ok(Some(_)) => {
            return (
                StatusCode::FORBIDDEN,
                "The sign-out form is out of date; reload the board.",
            )
                .into_response()
        }
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    response
}

#[derive(serde::Deserialize)]
struct NextForm {
    #[serde(default)]
    next: String,
}

/// Signs in as the demo shop's user, while the demo is on.
async fn demo(
    State(state): State<AppState>,
    form: Result<Form<NextForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !state.settings.demo {
        return Redirect::to("/login?error=demo").into_response();
    }
    let next = form.map(|Form(f)| f.next).unwrap_or_default();
    let user_id = match accounts::ensure_demo_user(&state.db).await {
        Ok(id) => id,
        Err(e) => return internal(e),
    };
    match accounts::open_session(&state.db, &user_id).await {
        Ok(token) => signed_in_redirect(&state, &token, &next),
        Err(e) => internal(e),
    }
}

fn link_token_ok(token: &str) -> bool {
    !token.is_empty() && token.len() <= 64 && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The page of a sign-in link: choose a password (the link works once).
async fn link_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    parts: http::request::Parts,
) -> Response {
    if !link_token_ok(&token) {
        return Redirect::to("/login?error=link").into_response();
    }
    // In the person's language, as every page is (`?lang=`, the cookie, `Accept-Language`).
    let lang = app::i18n::from_request(&parts);
    let t = |en, zh| lang.pick(en, zh);
    match accounts::link_usable(&state.db, &token).await {
        Ok(true) => Html(format!(
            "<!DOCTYPE html><html lang={tag}><meta charset=utf-8>\
             <meta name=viewport content=\"width=device-width, initial-scale=1\">\
             <title>{title} · ScanPay</title><link rel=stylesheet href=\"/pkg/scanpay.css\">\
             <main class=site-main><section class=\"card login\"><h1>{welcome}</h1>\
             <p>{choose}</p>\
             <form method=post action=\"/auth/link/{token}\" class=form>\
             <label><span>{password}</span><input type=password name=password minlength={min} \
             autocomplete=new-password required data-testid=link-password></label>\
             <button type=submit class=primary data-testid=link-submit>{save}</button>\
             </form></section></main></html>",
            tag = lang.tag(),
            title = t("Choose a password", "设置密码"),
            welcome = t("Welcome to ScanPay", "欢迎使用 ScanPay"),
            choose = match lang {
                app::i18n::Lang::En => format!(
                    "Choose the password you will sign in with (at least {} characters). \
                     This link works once.",
                    accounts::MIN_PASSWORD_CHARS
                ),
                app::i18n::Lang::Zh => format!(
                    "请设置登录密码（至少 {} 个字符）。此链接只能使用一次。",
                    accounts::MIN_PASSWORD_CHARS
                ),
            },
            password = t("Password", "密码"),
            save = t("Save and open the board", "保存并打开订单看板"),
            min = accounts::MIN_PASSWORD_CHARS
        ))
        .into_response(),
        Ok(false) => Redirect::to("/login?error=link").into_response(),
        Err(e) => internal(e),
    }
}

#[derive(serde::Deserialize)]
struct PasswordForm {
    password: String,
}

async fn redeem_link(
    State(state): State<AppState>,
    Path(token): Path<String>,
    form: Result<Form<PasswordForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return Redirect::to(&format!("/auth/link/{token}")).into_response();
    };
    if !link_token_ok(&token) {
        return Redirect::to("/login?error=link").into_response();
    }
    match accounts::redeem_link(&state.db, &token, &form.password).await {
        Ok(session) => signed_in_redirect(&state, &session, "/board"),
        Err(AccountError::Password) => Redirect::to("/login?error=password").into_response(),
        Err(AccountError::Link) => Redirect::to("/login?error=link").into_response(),
        Err(e) => internal(e),
    }
}

/// Whether a request comes from a page of another origin, by `Origin` (or, without it,
/// `Sec-Fetch-Site`). Requests without either (curl, servers) are not from a browser page.
fn cross_origin(headers: &HeaderMap, public_url: &str) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let same_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|h| h == host);
        return !(same_host || origin == public_url);
    }
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s == "cross-site" || s == "same-site")
}

/// The guard in front of every route (see the module documentation).
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let has_session = cookie(request.headers(), SESSION_COOKIE).is_some();
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes
        && (has_session || path.starts_with("/auth/"))
        && cross_origin(request.headers(), &state.settings.public_url)
    {
        ::metrics::counter!("cross_origin_refused_total").increment(1);
        return (
            StatusCode::FORBIDDEN,
            "Refused: this request came from another site.",
        )
            .into_response();
    }
    let board_page =
        (path == "/board" || path.starts_with("/board/")) && path != "/board/orders.csv";
    if method == Method::GET && board_page {
        let token = cookie(request.headers(), SESSION_COOKIE).unwrap_or_default();
        match accounts::session(&state.db, &token).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let wanted = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/board");
                return Redirect::to(&format!("/login?next={}", app::merchant::encode(wanted)))
                    .into_response();
            }
            Err(e) => return internal(e),
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_board_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/board/orders/x"), "/board/orders/x");
        assert_eq!(safe_next("/board?status=paid"), "/board?status=paid");
        for bad in [
            "https://evil.example/board",
            "//evil.example",
            "/boardroom",
            "/board/..//x",
            "",
        ] {
            assert_eq!(safe_next(bad), "/board", "{bad}");
        }
    }

    #[test]
    fn another_origin_is_told_apart_from_ours() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert!(
            !cross_origin(&h, "http://127.0.0.1:3000"),
            "no Origin: not a page"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3000"),
        );
        assert!(!cross_origin(&h, "https://pay.example"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://pay.example"),
        );
        assert!(!cross_origin(&h, "https://pay.example"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(cross_origin(&h, "https://pay.example"));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_origin(&h, "https://pay.example"));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_origin(&h, "https://pay.example"));
    }
}
