//! A Pulsar-protocol test broker: enough of Pulsar's binary protocol, on the `pulsar` crate's
//! own `Codec` and protobuf types, for the real `pulsar` client to produce and consume, plus the
//! admin REST calls an operator makes. Topics live in memory. It is test support, not a product.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let broker = pulsar_test_broker::Broker::start("127.0.0.1:0", "127.0.0.1:0").await?;
//! let client = pulsar::Pulsar::builder(broker.service_url(), pulsar::TokioExecutor)
//!     .build()
//!     .await?;
//! # drop(client);
//! broker.drop_all_connections(); // fault hook
//! # Ok(()) }
//! ```
//!
//! Layout: `topic` (one topic's log and subscription cursors) and `state` (tenants,
//! namespaces, topics, who owns which producer and consumer) are synchronous and hold every
//! decision; `commands` builds the frames; `connection` (one socket), `broker` (listeners,
//! [`BrokerHandle`]) and `admin` (REST) are the I/O around them; `tls` puts both listeners
//! behind TLS (`pulsar+ssl://`, `https://`) when [`BrokerConfig::tls`] is set, and
//! [`BrokerConfig::auth_token`] makes both want a token.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

mod admin;
mod broker;
mod commands;
mod connection;
mod error;
mod name;
mod state;
mod tls;
mod topic;

pub use broker::{Broker, BrokerConfig, BrokerHandle};
pub use error::{Error, Result};
pub use tls::{ServerTls, TlsListener};
pub use topic::{SubscriptionStats, TopicStats};
