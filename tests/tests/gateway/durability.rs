//! Durability: a message that got reply 0 survives SIGKILL of the process.

use chat_gateway::auth::Auth;
use chat_tests::gateway::{GatewayProcess, SECRET};
use chat_tests::{Client, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_gateway-under-test");

#[tokio::test]
async fn reply_zero_survives_sigkill() {
    let dir = TempDir::new("sigkill");
    let auth = Auth::new(SECRET.as_bytes());
    let token = |u: &str| auth.issue(u, None, false, 3600).unwrap();

    let mut gw = GatewayProcess::spawn(BIN, dir.path(), &[]).await;
    let mut alice = Client::connect(&gw.ws_url(), &token("alice"), Some("phone"))
        .await
        .unwrap();
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
    let mut bob = Client::connect(&gw.ws_url(), &token("bob"), Some("phone"))
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        let env = bob.push(2).await;
        got.push(env["messageId"].as_str().unwrap().to_owned());
        bob.ack(&env).await;
    }
    assert_eq!(got, ids, "every acknowledged message, in order");

    // Sequences continue after the restart; a resend is still recognised.
    let mut alice = Client::connect(&gw.ws_url(), &token("alice"), Some("phone"))
        .await
        .unwrap();
    let r = alice.send_to("bob", "after restart", None).await;
    assert_eq!(r["params"]["seq"], 21);
    let dup = alice.send_to("bob", "survive 3", Some("c-3")).await;
    assert_eq!(dup["params"]["messageId"], ids[3].as_str());
}

#[tokio::test]
async fn sigterm_drains_then_exits_cleanly() {
    let dir = TempDir::new("sigterm");
    let auth = Auth::new(SECRET.as_bytes());
    let mut gw = GatewayProcess::spawn(BIN, dir.path(), &["--drain-seconds", "1"]).await;
    let mut c = Client::connect(
        &gw.ws_url(),
        &auth.issue("alice", None, false, 60).unwrap(),
        Some("d"),
    )
    .await
    .unwrap();
    let pid = gw.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let drain = c.reply(22).await;
    assert_eq!(drain["params"]["reason"], "drain");
    assert!(drain["params"]["timelife"].as_u64().unwrap() <= 1);
    assert_eq!(c.closed().await, chat_tests::client::Closed::Code(1012));
    let status = gw.child.wait().await.unwrap();
    assert!(status.success(), "exit status {status}");
}
