//! How a server-side fault crosses the UI seam (`app::services::ServiceError`).

use app::services::ServiceError;

/// A fault as the UI seam reports it: a database whose pool is saturated (or closing) is
/// `Busy` (the page says "try again in a moment", 503); anything else is `Internal` (500).
/// The detail is for the server's log either way.
pub fn fault(e: impl std::fmt::Display + 'static) -> ServiceError {
    let any: &dyn std::any::Any = &e;
    let busy = any
        .downcast_ref::<sqlx::Error>()
        .is_some_and(|e| matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed));
    if busy {
        ServiceError::Busy(e.to_string())
    } else {
        ServiceError::Internal(e.to_string())
    }
}
