//! Rebalancing: a pod that holds more than its share of the cluster's connections moves some of
//! them away while it stays ready (the operator asks, `POST /admin/rebalance`).
//!
//! Each connection chosen is told exactly what a drain tells it (DESIGN §7): DRAIN (22) with the
//! seconds left to its deadline and a `reconnectAfterMs` spread uniformly over the first half of
//! the pace window, so the moves arrive elsewhere as a ramp. The client opens its new connection
//! through the Service (this pod, the busiest, is the least likely target), then closes this one;
//! what is still here at the deadline is closed with 1012 after its queued frames, as in a drain.
//! The pod does not go unready and keeps accepting upgrades.
//!
//! The longest-lived connections go first (lowest epoch): they are the ones that outlived the
//! rollout or scale-up that unbalanced the cluster, and the closest to their timelife renewal
//! anyway. A connection already told to move is not chosen again, and [`Rebalance::moving`]
//! counts those still here, so the operator does not ask twice for the same connections.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::drain::{reconnect_delay, RAMP_SHARE};
use crate::hub::{Conn, DrainNotice, Hub, Outbound};

/// The connections this pod told to move, by (user, device): the epoch told and its deadline.
#[derive(Default)]
pub struct Rebalance {
    moving: Mutex<HashMap<(String, String), (u64, Instant)>>,
}

impl Rebalance {
    /// Tells up to `count` of the longest-lived connections not already moving to move within
    /// `pace`. Returns how many were told.
    pub fn shed(&self, hub: &Hub, count: usize, pace: Duration) -> usize {
        let now = Instant::now();
        let deadline = now + pace;
        let mut moving = self.moving.lock().expect("rebalance lock");
        prune(&mut moving, hub, now);
        let chosen = pick(hub.all(), &moving, count);
        let n = chosen.len();
        let ramp = pace.mul_f64(RAMP_SHARE);
        for (i, (user, device, conn)) in chosen.into_iter().enumerate() {
            conn.send(Outbound::Drain(Box::new(DrainNotice {
                deadline,
                reconnect_after: reconnect_delay(ramp, i, n),
            })));
            moving.insert((user, device), (conn.epoch, deadline));
        }
        tracing::info!(
            asked = count,
            told = n,
            pace_ms = pace.as_millis() as u64,
            "rebalancing: moving connections"
        );
        metrics::counter!("chat_rebalanced_connections_total").increment(n as u64);
        n
    }

    /// Connections told to move that are still here (same device, same epoch, deadline ahead).
    pub fn moving(&self, hub: &Hub) -> usize {
        let mut moving = self.moving.lock().expect("rebalance lock");
        prune(&mut moving, hub, Instant::now());
        moving.len()
    }
}

/// Forgets the moves that are over: the connection left (or was replaced), or its deadline passed.
fn prune(moving: &mut HashMap<(String, String), (u64, Instant)>, hub: &Hub, now: Instant) {
    moving.retain(|(user, device), (epoch, deadline)| {
        *deadline > now && hub.get(user, device).is_some_and(|c| c.epoch == *epoch)
    });
}

/// The `count` longest-lived connections (lowest epoch) of `conns` not in `moving`.
fn pick(
    conns: Vec<(String, String, Conn)>,
    moving: &HashMap<(String, String), (u64, Instant)>,
    count: usize,
) -> Vec<(String, String, Conn)> {
    let mut free: Vec<_> = conns
        .into_iter()
        .filter(|(user, device, conn)| {
            moving
                .get(&(user.clone(), device.clone()))
                .is_none_or(|(epoch, _)| *epoch != conn.epoch)
        })
        .collect();
    free.sort_by_key(|(_, _, conn)| conn.epoch);
    free.truncate(count);
    free
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hub with connections of epochs `epochs` (user `u<epoch>`, device `d`), and their inboxes.
    fn hub_with(epochs: &[u64]) -> (Hub, Vec<tokio::sync::mpsc::Receiver<Outbound>>) {
        let hub = Hub::new();
        let mut inboxes = Vec::new();
        for &epoch in epochs {
            let (conn, rx, _) = Conn::new(epoch, format!("s{epoch}"));
            hub.insert(&format!("u{epoch}"), "d", conn);
            inboxes.push(rx);
        }
        (hub, inboxes)
    }

    fn told(rx: &mut tokio::sync::mpsc::Receiver<Outbound>) -> Option<DrainNotice> {
        match rx.try_recv() {
            Ok(Outbound::Drain(notice)) => Some(*notice),
            _ => None,
        }
    }

    #[tokio::test]
    async fn the_longest_lived_move_first_with_spread_delays() {
        let (hub, mut inboxes) = hub_with(&[30, 10, 40, 20]);
        let rebalance = Rebalance::default();
        assert_eq!(rebalance.shed(&hub, 2, Duration::from_secs(10)), 2);
        let notices: Vec<Option<DrainNotice>> = inboxes.iter_mut().map(told).collect();
        // Epochs 10 and 20 (inboxes 1 and 3) were told; 30 and 40 were not.
        assert!(notices[0].is_none() && notices[2].is_none(), "{notices:?}");
        let mut delays: Vec<u64> = [&notices[1], &notices[3]]
            .iter()
            .map(|n| n.as_ref().expect("told").reconnect_after.as_millis() as u64)
            .collect();
        delays.sort_unstable();
        assert_eq!(delays, vec![0, 2500], "spread over half the pace");
        assert_eq!(rebalance.moving(&hub), 2);
        assert_eq!(hub.len(), 4, "nothing closed before the deadline");
    }

    #[tokio::test]
    async fn a_moving_connection_is_not_told_twice_and_leaves_the_count_when_gone() {
        let (hub, mut inboxes) = hub_with(&[1, 2, 3]);
        let rebalance = Rebalance::default();
        rebalance.shed(&hub, 1, Duration::from_secs(30));
        assert_eq!(rebalance.shed(&hub, 1, Duration::from_secs(30)), 1);
        let told_now: Vec<bool> = inboxes.iter_mut().map(|rx| told(rx).is_some()).collect();
        assert_eq!(told_now, vec![true, true, false], "epoch 1, then epoch 2");
        assert_eq!(rebalance.moving(&hub), 2);
        // Epoch 1 left; epoch 2's device reconnected here (a new epoch): neither is moving now.
        assert!(hub.remove("u1", "d", 1));
        let (newer, _rx, _) = Conn::new(9, "s9".into());
        hub.insert("u2", "d", newer);
        assert_eq!(rebalance.moving(&hub), 0);
        assert_eq!(
            rebalance.shed(&hub, 5, Duration::from_secs(30)),
            2,
            "only what is here"
        );
    }

    #[tokio::test]
    async fn moves_past_their_deadline_are_forgotten() {
        tokio::time::pause();
        let (hub, _inboxes) = hub_with(&[1]);
        let rebalance = Rebalance::default();
        rebalance.shed(&hub, 1, Duration::from_secs(2));
        assert_eq!(rebalance.moving(&hub), 1);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(rebalance.moving(&hub), 0);
    }
}
