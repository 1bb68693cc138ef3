//! Why a connection or a request failed, with a short stable [`Error::kind`] to count failures
//! by (the load tool prints failures grouped by it).

use std::time::Duration;

use chat_protocol::ErrorFrame;
use tokio_tungstenite::tungstenite;

/// Every way a client operation fails.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting, or waiting for an answer, took longer than allowed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The TCP connection failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The server refused the upgrade (401 bad token, 409 duplicate device, 503 draining…).
    #[error("upgrade refused with HTTP {0}")]
    Http(u16),
    /// A WebSocket protocol error.
    #[error("websocket: {0}")]
    WebSocket(#[source] tungstenite::Error),
    /// The connection ended before WELCOME.
    #[error("closed before WELCOME: {0}")]
    ClosedBeforeWelcome(String),
    /// The first frame was something else than WELCOME.
    #[error("first frame was not WELCOME: {0}")]
    NoWelcome(String),
    /// The connection ended; the reason is as [`crate::Event`]'s `Ended` gives it.
    #[error("connection ended: {0}")]
    Closed(String),
    /// The server answered the request with ERROR (500).
    #[error("ERROR {}: {} ({})", .0.status, .0.message, .0.code)]
    Server(ErrorFrame),
    /// The server sent a frame this client cannot read.
    #[error("unreadable frame: {0}")]
    Frame(#[source] serde_json::Error),
    /// An argument breaks a protocol rule (an id too long, …), or a reply is not the one asked.
    #[error("{0}")]
    Invalid(String),
    /// The URL is not a `ws://` URL with a host.
    #[error("bad URL {0:?}: {1}")]
    Url(String, &'static str),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<tungstenite::Error> for Error {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Http(response) => Self::Http(response.status().as_u16()),
            tungstenite::Error::Io(e) => Self::Io(e),
            e => Self::WebSocket(e),
        }
    }
}

impl Error {
    /// A short label to count failures by, e.g. `http 401`, `timeout`, `io ConnectionRefused`.
    pub fn kind(&self) -> String {
        match self {
            Self::Timeout(_) => "timeout".into(),
            Self::Io(e) => match e.raw_os_error() {
                Some(code) => format!("io {:?} (os {code})", e.kind()),
                None => format!("io {:?}", e.kind()),
            },
            Self::Http(status) => format!("http {status}"),
            Self::WebSocket(_) => "websocket".into(),
            Self::ClosedBeforeWelcome(_) => "closed before welcome".into(),
            Self::NoWelcome(_) => "no welcome".into(),
            Self::Closed(_) => "closed".into(),
            Self::Server(e) => format!("error {}", e.status),
            Self::Frame(_) => "unreadable frame".into(),
            Self::Invalid(_) => "invalid".into(),
            Self::Url(..) => "bad url".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_short_and_stable() {
        assert_eq!(Error::Http(401).kind(), "http 401");
        assert_eq!(Error::Timeout(Duration::from_secs(1)).kind(), "timeout");
        let refused = std::io::Error::from_raw_os_error(111);
        assert_eq!(Error::Io(refused).kind(), "io ConnectionRefused (os 111)");
        let http = tungstenite::http::Response::builder()
            .status(401)
            .body(None)
            .unwrap();
        let err: Error = tungstenite::Error::Http(Box::new(http)).into();
        assert_eq!(err.kind(), "http 401");
    }
}
