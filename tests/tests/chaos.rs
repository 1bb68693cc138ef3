//! The chaos soak (issue 17): 3 gateway processes in network namespaces on real Redis,
//! PostgreSQL and the Pulsar test broker, devices on the `chat-client` crate sending 1:1 and
//! group messages while faults arrive at random; then the checker. Bounded by default (about
//! 80 s: every fault kind once); a long run:
//!
//! ```sh
//! CHAOS_SECONDS=600 cargo test -p chat-tests --release --test chaos -- --nocapture
//! ```
//!
//! Needs root (network namespaces, a bridge, `tc`): without it the test fails and says so.

use chat_tests::chaos::{run, Config};

const BIN: &str = env!("CARGO_BIN_EXE_gateway-under-test");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_loses_nothing_and_delivers_live() {
    let report = run(Config::from_env(BIN)).await;
    eprintln!("{}", report.text);
    assert!(report.faults >= 1 && report.messages > 0, "{}", report.text);
    assert!(
        report.safety.is_empty(),
        "safety violations: {:#?}\n{}",
        report.safety,
        report.text
    );
    // Live delivery within 30 s (issue 17, point 2): every message with reply 0 reached every
    // recipient device online from its commit until due. Failed fan-outs outlive a SIGKILLed
    // pod in the store (`pending_fanouts`), so no fault mix is exempt. `CHAOS_REQUIRE_LIVE=0`
    // only reports the late messages (printed above every run) instead of failing.
    let require_live = std::env::var("CHAOS_REQUIRE_LIVE").as_deref() != Ok("0");
    assert!(
        !require_live || report.late.is_empty(),
        "live delivery: {} messages did not reach an online device within 30 s of their \
         commit or of the end of the fault in effect:\n{}\n{}",
        report.late.len(),
        report.late.join("\n"),
        report.text
    );
    assert!(
        report.rss_growth.is_empty(),
        "RSS not flat: {:?}\n{}",
        report.rss_growth,
        report.text
    );
}
