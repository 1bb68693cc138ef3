//! The gateway's one error type and its error-handling policy.
//!
//! Policy: every failure a client can cause or recover from becomes an [`Error`] variant with an
//! HTTP-like status and a stable `code`. The session turns it into an ERROR (500) frame, the HTTP
//! layer into a JSON response, in exactly one place each. Internal failures (database, Redis,
//! Pulsar) are logged once where they are turned into a response, and the client sees only
//! `internal` with a generic message — never driver text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_protocol::api::ApiError;

/// This crate's result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can fail in the gateway, each variant with the status and code the client sees
/// (see the policy above).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: a frame, call or setting is malformed; the text says how, and a client is shown it.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or one that does not verify.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the token's user may not do this (not a participant, not a service token).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such message or group (or `/dev/login` when it is off).
    #[error("{0}")]
    NotFound(String),
    /// 409: the (user, device) is connected already and `--duplicate-login reject` keeps the first.
    #[error("{0}")]
    Conflict(String),
    /// 413: a body or frame over the protocol's limit.
    #[error("{0}")]
    TooLarge(String),
    /// 429: the connection sends faster than its rate limit and burst allow.
    #[error("{0}")]
    RateLimited(String),
    /// 503: not now (draining, full, a backend away); retrying, here or on another pod, can
    /// succeed.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a database call failed; logged, the client sees `internal`.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// 500: the schema migrations did not apply (at start-up or `migrate`).
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// 500: something that should not happen did; logged, the client sees `internal`.
    #[error("{0}")]
    Internal(String),
    /// A store write failed with the whole batch it was in (503): the batch rolled back, and
    /// every command of it shares the error that failed it as its source.
    #[error("store write failed; try again")]
    StoreWrite(#[source] std::sync::Arc<Error>),
    /// A backend did not answer (503); `source` is its driver's error.
    #[error("{context}: {source}")]
    UnavailableFrom {
        /// What was being done; the client sees it, with `unavailable` in place of the source.
        context: String,
        /// The backend driver's error: logged, never sent.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An internal failure (500) with its cause kept as the source.
    #[error("{context}: {source}")]
    InternalFrom {
        /// What was being done: logged with the source; the client sees only `internal`.
        context: String,
        /// The cause: logged, never sent.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The SQLite writer's calls (rusqlite): a 500 with the cause kept, as sqlx's are.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::internal("sqlite", e)
    }
}

impl Error {
    /// A backend that did not answer (503), its driver's error kept as the source.
    pub fn unavailable(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::UnavailableFrom {
            context: context.into(),
            source: source.into(),
        }
    }

    /// An internal failure (500), its cause kept as the source.
    pub fn internal(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::InternalFrom {
            context: context.into(),
            source: source.into(),
        }
    }

    /// The HTTP-like status carried in ERROR frames and HTTP responses.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::TooLarge(_) => 413,
            Error::RateLimited(_) => 429,
            Error::Unavailable(_) => 503,
            Error::Database(e) if database_away(e) => 503,
            Error::Database(_) | Error::Migrate(_) | Error::Internal(_) => 500,
            Error::StoreWrite(_) | Error::UnavailableFrom { .. } => 503,
            Error::InternalFrom { .. } => 500,
        }
    }

    /// A stable machine-readable code (`params.code` of ERROR frames).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too_large",
            Error::RateLimited(_) => "rate_limited",
            Error::Unavailable(_) => "unavailable",
            Error::Database(e) if database_away(e) => "unavailable",
            Error::Database(_) | Error::Migrate(_) | Error::Internal(_) => "internal",
            Error::StoreWrite(_) | Error::UnavailableFrom { .. } => "unavailable",
            Error::InternalFrom { .. } => "internal",
        }
    }

    /// What the client is told. Internal details stay in the log.
    pub fn client_message(&self) -> String {
        match self {
            Error::Database(e) if database_away(e) => "store unavailable; try again".to_owned(),
            Error::Database(_) | Error::Migrate(_) | Error::Internal(_) => {
                "internal error; try again".to_owned()
            }
            Error::InternalFrom { .. } => "internal error; try again".to_owned(),
            Error::UnavailableFrom { context, .. } => format!("{context}: unavailable"),
            other => other.to_string(),
        }
    }

    /// Whether the server failed (5xx), not the client: such errors are logged and their details
    /// hidden.
    pub fn is_internal(&self) -> bool {
        self.status() >= 500
    }

    /// Logs server-side errors (once, here) and counts every error by code. A 503 is expected
    /// operation (draining, full, a backend away and coming back): a warning, not an error.
    pub fn record(&self) {
        match self {
            Error::Unavailable(_) => tracing::warn!(error = %self, "unavailable"),
            Error::Database(e) if database_away(e) => {
                tracing::warn!(error = %self, "store unavailable")
            }
            Error::StoreWrite(_) | Error::UnavailableFrom { .. } => {
                tracing::warn!(error = %self, "unavailable")
            }
            e if e.is_internal() => tracing::error!(error = %e, "internal error"),
            _ => {}
        }
        metrics::counter!("chat_errors_total", "code" => self.status().to_string()).increment(1);
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.record();
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(ApiError {
                code: self.code().to_owned(),
                message: self.client_message(),
            }),
        )
            .into_response()
    }
}

/// Whether a database error says the database cannot be reached (down, restarting, cut off, its
/// pool exhausted waiting for it) rather than that a statement failed: 503, the client tries
/// again, as DESIGN's "degrade, don't lie" wants.
fn database_away(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}
