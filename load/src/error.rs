//! Why a load connection failed, with a short stable [`Error::kind`] to count failures by.

use std::time::Duration;

use tokio_tungstenite::tungstenite;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no WELCOME within {0:?}")]
    Timeout(Duration),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("upgrade refused with HTTP {0}")]
    Http(u16),
    #[error("websocket: {0}")]
    WebSocket(tungstenite::Error),
    #[error("closed before WELCOME: {0}")]
    ClosedBeforeWelcome(String),
    #[error("first frame was not WELCOME: {0}")]
    NoWelcome(String),
}

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
