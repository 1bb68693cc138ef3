//! Where a [`super::Client`] connects ([`Endpoints`]) and how it behaves ([`Options`]).

use std::time::Duration;

use crate::connect::TokenIn;

/// Default for [`Options::stall`].
const STALL: Duration = Duration::from_secs(10);
/// Default for [`Options::connect_timeout`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the client connects: asked again for every new connection, so a list can be walked
/// (the next pod after one died) or a load balancer stood in for.
pub trait Endpoints: Send {
    /// The `ws://` URL of the next connection, or `None` when there is nowhere to go now.
    fn next_url(&mut self) -> Option<String>;
}

impl<F: FnMut() -> Option<String> + Send> Endpoints for F {
    fn next_url(&mut self) -> Option<String> {
        self()
    }
}

/// The URLs of a list in turn: the first, then the next one on every new connection.
pub struct RoundRobin {
    urls: Vec<String>,
    next: usize,
}

impl RoundRobin {
    /// Starts at `urls[0]`.
    pub fn new(urls: Vec<String>) -> Self {
        Self { urls, next: 0 }
    }
}

impl Endpoints for RoundRobin {
    fn next_url(&mut self) -> Option<String> {
        let url = self.urls.get(self.next % self.urls.len().max(1)).cloned();
        self.next += 1;
        url
    }
}

/// How a [`Client`] connects and behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The JWT.
    pub token: String,
    /// The device id; the server assigns one when `None`.
    pub device: Option<String>,
    /// Where the token goes in the upgrade.
    pub token_in: TokenIn,
    /// Heartbeat interval; WELCOME's when `None`.
    pub heartbeat: Option<Duration>,
    /// Follow DRAIN (22) to a new connection (true), or stay until the server closes (an app
    /// that predates DRAIN).
    pub follow_drain: bool,
    /// A connection that sends nothing for this long while answers are owed is given up.
    pub stall: Duration,
    /// How long one connect may take, WELCOME included.
    pub connect_timeout: Duration,
}

impl Options {
    /// `token`, every other option at its default.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            device: None,
            token_in: TokenIn::Query,
            heartbeat: None,
            follow_drain: true,
            stall: STALL,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }

    /// Connects as `device`.
    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }
}
