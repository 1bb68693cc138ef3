//! chatcluster's wire protocol (DESIGN §3), as types: what a client sends ([`client`]), what the
//! server answers and pushes ([`server`], [`envelope`]), the ids both sides validate the same way
//! ([`ids`]), and the names the gateway and the operator must spell alike ([`names`], [`admin`]).
//!
//! Pure: serde and nothing else. No socket, runtime, database or broker crate may be added here;
//! the gateway, the operator, the client and the load tool all build on this crate.

// For the library only; the root Cargo.toml says why this is not in [workspace.lints].

pub mod admin;
pub mod api;
pub mod client;
pub mod codes;
pub mod date;
pub mod envelope;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
pub mod groups;
pub mod ids;
pub mod names;
pub mod server;

pub use client::{ClientFrame, FrameError, LoginStatus, Request, RequestId, TypingState};
pub use codes::{close, kind, limits, msg_type, trigger};
pub use envelope::{Envelope, PreparedPush, PushMsg};
pub use groups::{GroupEvent, Role, SystemEvent};
pub use ids::{ConversationId, DeviceId, GroupId, IdError, MessageId, UserId};
pub use server::{ErrorFrame, KickReason, Reply, ServerFrame};
