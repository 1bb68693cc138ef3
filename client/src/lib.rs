//! A typed async client for chatcluster's WebSocket protocol (DESIGN §3, docs/protocol.md),
//! built on [`chat_protocol`]'s frames and ids and tokio-tungstenite.
//!
//! - [`Client`]: a user's device as a careful app is written — it sends with a `clientMsgId` and
//!   returns reply 0, ACKs every push and passes each `messageId` on once, SYNCs a seq gap,
//!   heartbeats and renews, resends unanswered sends after a reconnect, and follows DRAIN by
//!   opening the new connection before closing the old one.
//! - [`session::Session`]: the protocol decisions behind it, without I/O or clocks (frames and
//!   timer expiries in, frames to write and events out), unit-tested on their own; [`track`]
//!   holds its de-duplication and gap bookkeeping.
//! - [`connect`]: opening connections (query or `Authorization: Bearer` token, device id,
//!   source addresses, small read buffers), as the load tool needs by the ten thousand, with
//!   [`keepalive`] for held connections and [`peek`] for reading frames on a hot path without
//!   building them whole.
//! - [`raw::RawClient`]: the low-level mode for tests that send bad input or watch exact frames.

pub mod client;
pub mod connect;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
pub mod keepalive;
pub mod peek;
pub mod raw;
pub mod session;
pub mod track;

pub use client::{Client, Endpoints, Options, RoundRobin};
pub use connect::{connect, Connection, Connector, TokenIn};
pub use error::{Error, Result};
pub use session::Event;
