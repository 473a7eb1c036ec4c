//! The one error of the server functions, typed so that a page can tell a signed-out visitor
//! from a stale form, bad input, a busy server or our own fault, and say each in its words.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// What went wrong, as the browser receives it (JSON). Its `Display` is the sentence a page
/// shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// No live session: sign in again (401).
    #[error("Your session has ended. Sign in again.")]
    SignedOut,
    /// The form's security token is not its session's (403).
    #[error(
        "This page is out of date (its security token did not match). Reload it and try again."
    )]
    Stale,
    /// Nothing of the caller's by that name (404).
    #[error("No such page.")]
    NotFound,
    /// Bad input; the message says which field and why (400).
    #[error("{0}")]
    Invalid(String),
    /// The server cannot take it now (starting, or its database is saturated): try again (503).
    #[error("The server is busy. Please try again in a moment.")]
    Busy,
    /// Our fault; the detail is in the server's log (500).
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// The request or its answer did not make it (the network, or a malformed exchange).
    #[error("The server could not be reached ({0}). Please try again.")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> AppError {
        match value {
            // The arguments the page sent did not parse: bad input, said as the framework says it.
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) => AppError::Invalid(m),
            ServerFnErrorErr::ServerError(_) => AppError::Internal,
            other => AppError::Transport(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_survives_the_wire_and_reads_as_a_sentence() {
        for e in [
            AppError::SignedOut,
            AppError::Stale,
            AppError::NotFound,
            AppError::Invalid("Amount: not a number".into()),
            AppError::Busy,
            AppError::Internal,
            AppError::Transport("reset".into()),
        ] {
            assert_eq!(AppError::de(e.ser()), e);
            if !matches!(e, AppError::Invalid(_)) {
                assert!(e.to_string().ends_with('.'), "{e}");
            }
        }
        assert_eq!(
            AppError::Invalid("Amount: not a number".into()).to_string(),
            "Amount: not a number"
        );
        // What the framework reports maps to a kind the page can act on.
        assert_eq!(
            AppError::from_server_fn_error(ServerFnErrorErr::Args("amount".into())),
            AppError::Invalid("amount".into())
        );
        assert!(matches!(
            AppError::from_server_fn_error(ServerFnErrorErr::Request("refused".into())),
            AppError::Transport(_)
        ));
        // Something that is not an AppError at all reads as a transport failure, not a panic.
        assert!(matches!(
            AppError::de(leptos::server_fn::Bytes::from_static(b"not json")),
            AppError::Transport(_)
        ));
    }
}
