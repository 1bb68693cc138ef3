//! Opening the load's connections: one per user, many at a time, round-robin over the gateways.
//! Everything about one connection (source addresses, read buffer, WELCOME, keepalive, close) is
//! `chat_client`'s.

use chat_client::{Connection, Connector};
use futures_util::{stream, StreamExt};

use crate::identity::{User, DEVICE};

/// Opens one connection per user, `concurrency` at a time, in order. User `i` connects to
/// `connectors[(i + shift) % n]` (round-robin over the gateways) as connection number
/// `first_index + i` for source-address selection.
pub async fn connect_all(
    connectors: &[Connector],
    shift: usize,
    users: &[User],
    first_index: usize,
    concurrency: usize,
) -> Vec<chat_client::Result<Connection>> {
    stream::iter(users.iter().enumerate())
        .map(|(i, user)| {
            let connector = &connectors[(i + shift) % connectors.len()];
            connector.connect(first_index + i, &user.token, Some(DEVICE))
        })
        .buffered(concurrency.max(1))
        .collect()
        .await
}
