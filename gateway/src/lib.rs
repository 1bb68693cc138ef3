//! chat-gateway: a WebSocket chat gateway with durable, sequenced, acked delivery.
//!
//! Layout: [`protocol`] (frames), [`session`] (one connection), [`delivery`] (ack window and
//! fan-out planning, pure), [`store`] / [`routes`] / [`bus`] (one trait each, two backends),
//! [`hub`] (this process's connections), [`router`] (getting events to devices on any pod),
//! [`http`] (upgrade, push API, admin), [`drain`], [`auth`], [`config`], [`server`] (assembly).

pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod drain;
pub mod error;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod router;
pub mod routes;
pub mod server;
pub mod session;
pub mod store;

pub use error::{Error, Result};
