//! Durability: a message that got reply 0 survives SIGKILL of the process.

use chat_tests::fixtures::connect;
use chat_tests::gateway::GatewayProcess;
use chat_tests::Closed;
use chat_tests::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_gateway-under-test");

#[tokio::test]
async fn reply_zero_survives_sigkill() {
    let dir = TempDir::new("sigkill");

    let mut gw = GatewayProcess::spawn(BIN, dir.path(), &[]).await;
    let mut alice = connect(&gw.ws_url(), "alice", "phone").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = alice
            .send_to("bob", &format!("survive {i}"), Some(&format!("c-{i}")))
            .await;
        ids.push(r["params"]["messageId"].as_str().unwrap().to_owned());
    }
    // Killed right after the last reply 0: no drain, no flush.
    gw.kill9().await;

    let gw = GatewayProcess::spawn(BIN, dir.path(), &[]).await;
    let mut bob = connect(&gw.ws_url(), "bob", "phone").await;
    let mut got = Vec::new();
    for _ in 0..20 {
        let env = bob.push(2).await;
        got.push(env["messageId"].as_str().unwrap().to_owned());
        bob.ack(&env).await;
    }
    assert_eq!(got, ids, "every acknowledged message, in order");

    // Sequences continue after the restart; a resend is still recognised.
    let mut alice = connect(&gw.ws_url(), "alice", "phone").await;
    let r = alice.send_to("bob", "after restart", None).await;
    assert_eq!(r["params"]["seq"], 21);
    let dup = alice.send_to("bob", "survive 3", Some("c-3")).await;
    assert_eq!(dup["params"]["messageId"], ids[3].as_str());
}

#[tokio::test]
async fn sigterm_drains_then_exits_cleanly() {
    let dir = TempDir::new("sigterm");
    let mut gw = GatewayProcess::spawn(BIN, dir.path(), &["--drain-seconds", "1"]).await;
    let mut c = connect(&gw.ws_url(), "alice", "d").await;
    gw.signal("TERM");
    let drain = c.reply(22).await;
    assert_eq!(drain["params"]["reason"], "drain");
    assert!(drain["params"]["timelife"].as_u64().unwrap() <= 1);
    assert_eq!(c.closed().await, Closed::Code(1012));
    let status = gw.child.wait().await.unwrap();
    assert!(status.success(), "exit status {status}");
}
