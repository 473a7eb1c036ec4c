//! `GET /board/orders.csv?<filters>`: the signed-in merchant's filtered orders as CSV,
//! streamed in batches (the board's own search and CSV lines, `board/csv.rs`).

use super::auth::internal;
use crate::accounts;
use crate::state::AppState;
use app::merchant::{cookie, BoardFilter, SESSION_COOKIE};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, HeaderValue, StatusCode};

pub fn router() -> Router<AppState> {
    Router::new().route("/board/orders.csv", get(export_csv))
}

/// The filtered orders as CSV, streamed in batches (yuan with two decimals, China time), with
/// a UTF-8 byte-order mark so spreadsheets read Chinese subjects correctly.
async fn export_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<BoardFilter>,
) -> Response {
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    let user = match accounts::session(&state.db, &token).await {
        Ok(Some(u)) => u,
        Ok(None) => return (StatusCode::UNAUTHORIZED, "Sign in to export orders.").into_response(),
        Err(e) => return internal(e),
    };
    let search = match crate::board::search_of(&filter) {
        Ok(s) => s,
        Err(app::services::ServiceError::Invalid(m)) => {
            return (StatusCode::BAD_REQUEST, m).into_response()
        }
        Err(app::services::ServiceError::Internal(m) | app::services::ServiceError::Busy(m)) => {
            return internal(m)
        }
    };
    let db = state.db.clone();
    let merchant = user.merchant_id;
    let first = futures::stream::once(async {
        Ok::<_, std::io::Error>(format!("\u{feff}{}", crate::board::CSV_HEADER))
    });
    let batches = futures::stream::unfold(Some(search), move |search| {
        let (db, merchant) = (db.clone(), merchant.clone());
        async move {
            let mut search = search?;
            match crate::orders::list(&db, &merchant, &search, crate::board::EXPORT_BATCH).await {
                Ok(batch) if batch.is_empty() => None,
                Ok(batch) => {
                    let full = batch.len() as i64 == crate::board::EXPORT_BATCH;
                    search.starting_after = batch.last().map(|o| o.id.as_str().to_string());
                    let lines = crate::board::csv_lines(&batch);
                    Some((Ok(lines), full.then_some(search)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "CSV export failed midway");
                    Some((Err(std::io::Error::other("export failed")), None))
                }
            }
        }
    });
    let date = app::clock::beijing(crate::infra::clock::now_ms())
        .get(..10)
        .unwrap_or("orders")
        .replace('-', "");
    let mut response = Body::from_stream(futures::StreamExt::chain(first, batches)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"scanpay-orders-{date}.csv\""
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
