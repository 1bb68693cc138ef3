//! End-to-end: the browser page on the TypeScript SDK (`/chatcluster-client.js`) in real headless
//! Chromium — what only a page on the SDK does: a message written while offline waits in the
//! IndexedDB outbox across a page reload and is delivered once afterwards; and a drain moves the
//! page to another pod behind a balancer without a sign-out or a lost message.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Result};
use chat_tests::cdp::{Browser, Page};
use chat_tests::chat_page::*;
use chat_tests::cluster::TestCluster;
use chat_tests::fixtures;
use chat_tests::TestGateway;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

/// Status texts the page showed, recorded by a mutation observer so a short-lived one is seen.
const RECORD_STATUS: &str = "(() => {
    window.__status = [document.getElementById('status').dataset.state];
    new MutationObserver(() => {
      const s = document.getElementById('status').dataset.state;
      if (window.__status[window.__status.length - 1] !== s) window.__status.push(s);
    }).observe(document.getElementById('status'), { attributes: true, childList: true, subtree: true });
    return true;
  })()";

async fn open_chat(page: &Page, peer: &str) -> Result<()> {
    page.type_into("#peer", peer).await?;
    page.click("#open").await?;
    page.wait_for(&format!("the chat with {peer}"), SHELL, |s| {
        text(s, "title").contains(peer)
    })
    .await
    .map(drop)
}

/// How many times the open conversation shows a message with this body.
async fn shown_count(page: &Page, body: &str) -> Result<usize> {
    let expr = format!(
        "({MESSAGES}).filter((m) => m.body === {}).length",
        json!(body)
    );
    Ok(page.eval(&expr).await?.as_u64().unwrap_or(0) as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_written_offline_survives_a_reload_in_the_outbox() -> Result<()> {
    let mut gw = TestGateway::start_with(|cfg| cfg.dev_login = true).await;
    let browser = Browser::launch().await?;
    let alice = browser.new_page("alice-outbox").await?;
    let bob = browser.new_page("bob-outbox").await?;
    for (page, user, name) in [(&alice, "alice", "Alice"), (&bob, "bob", "Bob")] {
        page.navigate(&gw.http("/")).await?;
        log_in(page, user, name).await?;
    }
    open_chat(&alice, "bob").await?;
    send(&alice, "online first").await?;
    wait_message(&alice, "the first message delivered", "online first", |m| {
        m["state"] == DELIVERED
    })
    .await?;
    open_chat(&bob, "alice").await?;

    // The connection goes away; the message typed now waits in the outbox (IndexedDB).
    alice.eval("chat.offline()").await?;
    send(&alice, "written offline").await?;
    wait_message(
        &alice,
        "the offline message pending",
        "written offline",
        |m| m["state"] == SENDING,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        shown_count(&bob, "written offline").await? == 0,
        "bob got a message that was never sent"
    );

    // A reload loses the page's memory; the outbox brings the message back and sends it.
    alice.navigate(&gw.http("/")).await?;
    log_in(&alice, "alice", "Alice").await?;
    open_chat(&alice, "bob").await?;
    // Bob has the chat open, so it may go on to "read" at once.
    wait_message(
        &alice,
        "the restored message delivered",
        "written offline",
        |m| m["state"] == DELIVERED || m["state"] == READ,
    )
    .await?;
    wait_message(&bob, "bob to get it", "written offline", |_| true).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        shown_count(&bob, "written offline").await? == 1,
        "bob must see it exactly once"
    );
    let left = alice.eval("chat.client.pending().length").await?;
    ensure!(
        left == json!(0),
        "the outbox is empty after the send: {left}"
    );
    for page in [&alice, &bob] {
        ensure!(
            page.problems().is_empty(),
            "{}: {:?}",
            page.name(),
            page.problems()
        );
    }
    browser.close().await?;
    gw.stop().await;
    Ok(())
}

/// A TCP balancer: each new connection goes to the first backend whose `/readyz` answers 200
/// (a draining pod answers 503), as a Kubernetes Service routes to ready pods.
async fn balancer(backends: Vec<(SocketAddr, String)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let backends = backends.clone();
            tokio::spawn(async move {
                for (target, readyz) in &backends {
                    if fixtures::status_of(readyz, Duration::from_secs(1)).await == 200 {
                        if let Ok(mut upstream) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_moves_the_page_to_another_pod_without_losing_a_message() -> Result<()> {
    let mut cluster = TestCluster::start(0).await;
    for i in 0..2 {
        let pod = cluster
            .start_pod_with(&format!("pod-{i}"), |cfg| cfg.dev_login = true)
            .await;
        cluster.pods.push(Some(pod));
    }
    let backends = (0..2)
        .map(|i| {
            let pod = cluster.pod(i);
            (pod.running.addr, pod.admin("/readyz"))
        })
        .collect();
    let lb = balancer(backends).await;
    let url = format!("http://{lb}/");
    let browser = Browser::launch().await?;
    let alice = browser.new_page("alice-drain").await?;
    let bob = browser.new_page("bob-drain").await?;
    for (page, user, name) in [(&alice, "alice", "Alice"), (&bob, "bob", "Bob")] {
        page.navigate(&url).await?;
        log_in(page, user, name).await?;
    }
    open_chat(&alice, "bob").await?;
    open_chat(&bob, "alice").await?;
    send(&alice, "before the drain").await?;
    wait_message(&bob, "bob gets the first", "before the drain", |_| true).await?;

    // Drain the pod alice's page is on: it must hop to the other one before the deadline.
    let status = text(&alice.eval(SHELL).await?, "status").to_owned();
    let from = if status.ends_with("pod-0") { 0 } else { 1 };
    ensure!(
        status.ends_with(&format!("pod-{from}")),
        "alice's status: {status}"
    );
    alice.eval(RECORD_STATUS).await?;
    let (code, body) = fixtures::post_json(
        &cluster.pod(from).admin("/admin/drain"),
        None,
        json!({"deadlineSeconds": 6}),
    )
    .await;
    ensure!(code == 202 || code == 200, "drain: {code} {body}");
    let to = format!("connected as alice on pod-{}", 1 - from);
    alice
        .wait_for("alice's page on the other pod", SHELL, |s| {
            s["state"] == "connected" && text(s, "status") == to
        })
        .await?;
    let shown: Value = alice.eval("window.__status").await?;
    ensure!(
        shown == json!(["connected", "draining", "connected"]),
        "a hand-over shows draining then connected, never offline: {shown}"
    );
    send(&alice, "after the drain").await?;
    wait_message(&alice, "delivered after the hop", "after the drain", |m| {
        m["state"] == DELIVERED || m["state"] == READ
    })
    .await?;
    wait_message(&bob, "bob gets the second once", "after the drain", |_| {
        true
    })
    .await?;
    ensure!(
        shown_count(&bob, "before the drain").await? == 1,
        "no duplicate of the first message after the hop"
    );
    // Bob's page was on the drained pod too: it moves at its own turn, before the deadline.
    let bob_to = format!("connected as bob on pod-{}", 1 - from);
    bob.wait_for("bob's page on the other pod", SHELL, |s| {
        s["state"] == "connected" && text(s, "status") == bob_to
    })
    .await?;
    for page in [&alice, &bob] {
        ensure_healthy(page).await?;
    }
    browser.close().await?;
    Ok(())
}
