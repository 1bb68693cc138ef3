//! Gateway integration tests: a real server on port 0 (or a real process), real WebSocket clients.
//! One test binary for all of them keeps link time down.

mod abuse;
mod admin;
mod auth;
mod auth_jwks;
mod auth_ports;
mod authz;
mod backend_api;
mod bad_input;
mod delivery;
mod durability;
mod files;
mod frames;
mod http_api;
mod lifecycle;
mod lifecycle_data;
mod pending_fanouts;
mod presence;
mod rebalance;
mod v11;
mod webhook;
mod webhook_queue;
