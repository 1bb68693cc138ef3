//! The crate's one error type. It becomes a Pulsar `ServerError` code (binary protocol) in
//! [`Error::server_error`] and an HTTP status (admin REST) in `admin.rs` — nowhere else.

use pulsar::message::proto::ServerError;

/// Everything that can go wrong in the broker: socket and framing failures end a connection;
/// the rest are answers to one request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket could not be bound, accepted or written.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame could not be decoded or encoded by the crate's `Codec`.
    #[error("framing: {0}")]
    Codec(#[from] pulsar::error::ConnectionError),
    /// The client did not open the connection with CONNECT.
    #[error("handshake: {0}")]
    Handshake(String),
    /// A topic name the broker cannot parse (`persistent://tenant/namespace/topic` or a short form).
    #[error("invalid topic name {0:?}")]
    InvalidTopicName(String),
    /// A tenant, namespace, topic, producer or consumer that does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A tenant, namespace or topic that already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// Another consumer holds the subscription (exclusive, or a different subscription type).
    #[error("consumer busy: {0}")]
    ConsumerBusy(String),
    /// A TLS certificate or key that cannot be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// CONNECT carried no token, or not the broker's (`BrokerConfig::auth_token`).
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The request is valid but the current state does not allow it.
    #[error("not allowed: {0}")]
    NotAllowed(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The code a Pulsar broker sends for this error. `ConsumerBusy` matters: the client retries
    /// it (as a real broker's answer to a second exclusive consumer).
    pub fn server_error(&self) -> ServerError {
        match self {
            Error::InvalidTopicName(_) => ServerError::InvalidTopicName,
            Error::NotFound(_) => ServerError::TopicNotFound,
            Error::ConsumerBusy(_) => ServerError::ConsumerBusy,
            Error::Conflict(_) | Error::NotAllowed(_) => ServerError::NotAllowedError,
            Error::Authentication(_) => ServerError::AuthenticationError,
            Error::Io(_) | Error::Codec(_) | Error::Handshake(_) | Error::Tls(_) => {
                ServerError::UnknownError
            }
        }
    }
}
