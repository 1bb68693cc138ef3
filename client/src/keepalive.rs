//! Heartbeats and timelife renewals (DESIGN §3): what every held connection must send so the
//! server neither closes it for silence (4000) nor for an expired timelife (4002).

use std::time::Duration;

use chat_protocol::server::Welcome;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

/// HEARTBEAT (type 3); the server answers with type 4.
pub const HEARTBEAT: &str = r#"{"type":3}"#;
/// RENEW timelife (type 21); the server answers with type 21.
pub const RENEW: &str = r#"{"type":21}"#;

/// Heartbeats and timelife renewals for one connection.
#[derive(Debug)]
pub struct Keepalive {
    heartbeat: Interval,
    renew: Interval,
}

impl Keepalive {
    /// Heartbeats every `WELCOME.heartbeat` seconds (or `heartbeat_override`) and renews every
    /// half timelife. `phase` in `[0, 1)` shifts the first heartbeat within its interval, so ten
    /// thousand connections opened in one burst do not all beat in the same millisecond.
    pub fn new(welcome: &Welcome, heartbeat_override: Option<Duration>, phase: f64) -> Self {
        let beat = heartbeat_override.unwrap_or(Duration::from_secs(welcome.heartbeat.max(1)));
        let renew_every = Duration::from_secs((welcome.timelife / 2).max(1));
        let now = Instant::now();
        let phase = phase.clamp(0.0, 1.0);
        let mut heartbeat = interval_at(now + beat.mul_f64(phase), beat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut renew = interval_at(now + renew_every + beat.mul_f64(phase), renew_every);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { heartbeat, renew }
    }

    /// Waits for the next keepalive frame to send.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.heartbeat.tick() => HEARTBEAT,
            _ = self.renew.tick() => RENEW,
        }
    }
}

/// A well-spread phase in `[0, 1)` for connection `index` (golden-ratio sequence).
pub fn phase(index: usize) -> f64 {
    (index as f64 * 0.618_033_988_749_895).fract()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome(heartbeat: u64, timelife: u64) -> Welcome {
        Welcome {
            session_id: "s".into(),
            user_id: chat_protocol::UserId::parse("u").unwrap(),
            device_id: chat_protocol::DeviceId::parse("d").unwrap(),
            server: "pod-0".into(),
            timelife,
            heartbeat,
            expires_at: 0,
        }
    }

    #[test]
    fn phases_spread_over_the_interval() {
        let mut phases: Vec<f64> = (0..100).map(phase).collect();
        assert!(phases.iter().all(|p| (0.0..1.0).contains(p)));
        phases.sort_by(f64::total_cmp);
        let widest_gap = phases.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        assert!(widest_gap < 0.03, "{widest_gap}");
    }

    #[tokio::test(start_paused = true)]
    async fn keepalive_beats_and_renews() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(&welcome(30, 100), None, 0.5);
        assert_eq!(keepalive.next().await, HEARTBEAT);
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        assert_eq!(keepalive.next().await, HEARTBEAT);
        assert_eq!(start.elapsed(), Duration::from_secs(45));
        assert_eq!(keepalive.next().await, RENEW);
        assert_eq!(start.elapsed(), Duration::from_secs(65));
    }
}
