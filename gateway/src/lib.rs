//! chat-gateway: a WebSocket chat gateway with durable, sequenced, acked delivery.
//!
//! From the socket inward: [`http`] (upgrade, push API, admin) → [`session`] (one connection:
//! a sans-IO core and the async shell around it) → [`handlers`] (one module per request kind
//! that needs the store) → [`routing`] (events to devices on any pod) → [`hub`] (this process's
//! connections), [`routes`] / [`bus`] / [`store`] (one trait each, two backends). [`delivery`]
//! (ack window, fan-out planning) and [`model`] are pure; [`presence`] keeps who watches whose
//! presence here; [`limits`] bounds what one client may take; [`app`] holds the dependencies, [`server`] assembles them; [`webhook`] posts
//! offline pushes. The wire protocol is the `chat-protocol` crate.

// For the library only; the root Cargo.toml says why this is not in [workspace.lints].

pub mod api;
pub mod app;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod drain;
pub mod error;
pub mod files;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
pub mod handlers;
pub mod health;
pub mod http;
pub mod hub;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod notice;
pub mod presence;
pub mod rebalance;
pub mod routes;
pub mod routing;
pub mod server;
pub mod session;

/// The allocator the `chat-gateway` binary runs on (mimalloc: per-message allocations — frames,
/// JSON values — made glibc malloc the largest user-space cost in profiles under load, and glibc's
/// per-thread arenas kept bursts' memory). A binary that runs the gateway declares it
/// `#[global_allocator]`, so a process-level test measures what ships.
pub type Allocator = mimalloc::MiMalloc;
pub mod startup;
pub mod store;
pub mod tls;
pub mod webhook;

pub use error::{Error, Result};
