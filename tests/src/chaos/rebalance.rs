//! The operator's rebalancing step, taken by the harness when `CHAOS_REBALANCE=1`.

use std::time::Duration;

use super::pods::Pod;

/// How often the harness rebalances connections, as the operator does (its default interval).
pub const INTERVAL: Duration = Duration::from_secs(30);

/// One rebalancing step as the operator takes it with its defaults (`chat_operator::rebalance`:
/// 20 % tolerance, a tenth of a pod's connections a step, at least 10 a pod, nothing while
/// earlier moves are in flight), over pods that all answer. Without it a pod that is never
/// killed collects the devices of every pod that is (they reconnect elsewhere and stay), and its
/// memory grows with them: in production the operator spreads them again.
pub async fn step(pods: &[Pod]) {
    let mut loads = Vec::new();
    for p in pods {
        match p.load().await {
            Some(load) => loads.push(load),
            None => return,
        }
    }
    let total: i64 = loads.iter().map(|(n, _)| n).sum();
    let mean = total as f64 / loads.len() as f64;
    let worst = loads
        .iter()
        .map(|(n, _)| (*n as f64 - mean).abs())
        .fold(0.0, f64::max);
    if total < 10 * loads.len() as i64 || worst * 100.0 / mean <= 20.0 {
        return;
    }
    if loads.iter().any(|(_, moving)| *moving > 0) {
        return;
    }
    for (p, (n, _)) in pods.iter().zip(&loads) {
        let shed = ((*n as f64 - mean).floor() as i64).min((n / 10).max(1));
        if shed > 0 {
            let status = p.shed(shed, Duration::from_secs(2)).await;
            eprintln!(
                "chaos: rebalance: {} sheds {shed} of {n} ({status})",
                p.name()
            );
        }
    }
}
