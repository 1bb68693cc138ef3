//! End-to-end: the browser chat page (`GET /`) in real headless Chromium, driven over the Chrome
//! DevTools Protocol. Two pages, alice and bob, log in through `--dev-login`, chat 1:1 (with the
//! sent → delivered ticks driven by the other page's ACKs) and in a group. Every assertion is on
//! what the pages show — DOM text, classes, visibility — never only on the page's JS state.
//! Screenshots land in `target/browser-e2e/` for a person to look at.

use std::path::PathBuf;

use anyhow::{ensure, Result};
use chat_tests::cdp::{Browser, Page};
use chat_tests::chat_page::*;
use chat_tests::TestGateway;
use serde_json::json;

/// How far the page and the sidebar overflow horizontally, in pixels (0 when they fit).
const OVERFLOW: &str = "(() => { const aside = document.querySelector('aside');
    return { page: document.documentElement.scrollWidth - innerWidth,
             sidebar: aside.scrollWidth - aside.clientWidth }; })()";

/// Saves a screenshot as `target/browser-e2e/{file}.png` (CARGO_TARGET_TMPDIR is `<target>/tmp`)
/// after checking that nothing runs off the side of the page.
async fn screenshot(page: &Page, file: &str) -> Result<()> {
    let overflow = page.eval(OVERFLOW).await?;
    ensure!(
        overflow == json!({"page": 0, "sidebar": 0}),
        "{}: content overflows horizontally by {overflow} px",
        page.name()
    );
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = tmp
        .parent()
        .unwrap_or(&tmp)
        .join("browser-e2e")
        .join(format!("{file}.png"));
    page.screenshot(&path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_chat_one_to_one_and_in_a_group() -> Result<()> {
    let mut gw = TestGateway::start_with(|cfg| cfg.dev_login = true).await;
    let browser = Browser::launch().await?;
    let alice = browser.new_page("alice").await?;
    let bob = browser.new_page("bob").await?;

    for (page, user, name) in [(&alice, "alice", "Alice"), (&bob, "bob", "Bob")] {
        page.navigate(&gw.http("/")).await?;
        ensure!(
            page.eval("document.title").await? == "chatcluster",
            "{user}: unexpected page title"
        );
        let shell = page.eval(SHELL).await?;
        ensure!(
            shell["login"] == true && shell["app"] == false,
            "{user}: a fresh page must show only the login panel: {shell}"
        );
        log_in(page, user, name).await?;
        page.eval(RECORD_STATES).await?;
    }

    // Alice opens a chat with bob and says hello: sent once stored, delivered once bob's page acked.
    alice.type_into("#peer", "bob").await?;
    alice.click("#open").await?;
    alice
        .wait_for("the chat with bob to open", SHELL, |s| {
            text(s, "title").contains("bob")
        })
        .await?;
    send(&alice, "hello bob").await?;
    let mine = wait_message(
        &alice,
        "alice's message to show delivered",
        "hello bob",
        |m| has_class(m, "delivered"),
    )
    .await?;
    ensure!(
        text(&mine, "state") == DELIVERED && text(&mine, "who") == "me" && has_class(&mine, "own"),
        "alice's message: {mine}"
    );
    ensure!(
        mine["meta"]
            .as_array()
            .is_some_and(|m| m.iter().any(|s| s == "#1")),
        "alice's message must show seq #1: {mine}"
    );
    let states = shown_states(&alice, "hello bob").await?;
    ensure!(
        states == json!([SENDING, SENT, DELIVERED]),
        "alice's message must show sending, then sent, then delivered; showed {states}"
    );

    // Bob's page lists the new chat with an unread badge; opening it shows the message from Alice.
    let conv = wait_conversation(&bob, "the chat with alice to be listed", "alice", |c| {
        c["badge"] == "1"
    })
    .await?;
    ensure!(
        text(&conv, "title") == "Alice (alice)"
            && conv["kind"] == "direct"
            && conv["visible"] == true,
        "bob's list entry: {conv}"
    );
    bob.click("#conversations li[data-peer=\"alice\"] button")
        .await?;
    bob.wait_for("the chat with alice to open", SHELL, |s| {
        s["title"] == "Alice (alice)"
    })
    .await?;
    let theirs = wait_message(&bob, "alice's message on bob's page", "hello bob", |_| true).await?;
    ensure!(
        theirs["from"] == "alice" && theirs["who"] == "Alice" && has_class(&theirs, "in"),
        "bob sees: {theirs}"
    );
    ensure!(
        theirs["state"].is_null(),
        "an incoming message has no delivery state: {theirs}"
    );
    wait_conversation(&bob, "the unread badge to clear", "alice", |c| {
        c["badge"].is_null() && c["active"] == true
    })
    .await?;

    // Bob replies; alice's page shows it in the open chat, and bob's reply gets its ticks too.
    send(&bob, "hi alice").await?;
    let reply = wait_message(&alice, "bob's reply on alice's page", "hi alice", |_| true).await?;
    ensure!(
        reply["from"] == "bob" && reply["who"] == "Bob" && has_class(&reply, "in"),
        "alice sees: {reply}"
    );
    ensure!(
        reply["meta"]
            .as_array()
            .is_some_and(|m| m.iter().any(|s| s == "#2")),
        "bob's reply must show seq #2: {reply}"
    );
    // Alice's page has the chat open: it reads bob's reply at once.
    wait_message(&bob, "bob's reply to show read", "hi alice", |m| {
        m["state"] == READ
    })
    .await?;
    let states = shown_states(&bob, "hi alice").await?;
    ensure!(
        went_to_read(&states),
        "bob's reply must show sending, sent, (delivered,) read; showed {states}"
    );
    alice
        .wait_for("the chat title to use bob's name", SHELL, |s| {
            s["title"] == "Bob (bob)"
        })
        .await?;

    screenshot(&alice, "alice-direct").await?;
    screenshot(&bob, "bob-direct").await?;

    // Alice creates a group with bob: it opens at once, titled with its name, listing its members.
    alice.type_into("#group-name", "weekend plans").await?;
    alice.type_into("#group-members", "bob").await?;
    alice.click("#create-group").await?;
    let shell = alice
        .wait_for("the new group to open", SHELL, |s| {
            s["title"] == "# weekend plans"
        })
        .await?;
    ensure!(
        shell["groupTools"] == true && text(&shell, "groupInfo").contains("bob"),
        "alice's group header: {shell}"
    );
    let group_id = alice
        .eval("document.querySelector('#conversations li.active')?.dataset.peer ?? null")
        .await?;
    let group_id = group_id
        .as_str()
        .filter(|g| !g.is_empty())
        .map(str::to_owned);
    let Some(group_id) = group_id else {
        anyhow::bail!("the new group is not the active entry of alice's list")
    };
    let fields = alice.eval("[document.getElementById('group-name').value, document.getElementById('group-members').value]").await?;
    ensure!(
        fields == json!(["", ""]),
        "the group form must clear after creating: {fields}"
    );

    send(&alice, "hello team").await?;
    let mine = wait_message(
        &alice,
        "alice's group message to show sent",
        "hello team",
        |m| has_class(m, "sent"),
    )
    .await?;
    ensure!(
        text(&mine, "state") == SENT
            && mine["meta"]
                .as_array()
                .is_some_and(|m| m.iter().any(|s| s == "#2")),
        "alice's group message follows the group's creation (#1): {mine}"
    );

    // Bob's page lists the group with an unread badge; opening it shows the message from Alice.
    let conv = wait_conversation(&bob, "the group to be listed", &group_id, |c| {
        c["badge"] == "1"
    })
    .await?;
    ensure!(
        conv["kind"] == "group" && text(&conv, "title").starts_with("# "),
        "bob's group entry: {conv}"
    );
    bob.click(&format!(
        "#conversations li[data-peer={}] button",
        json!(group_id)
    ))
    .await?;
    // Bob did not create the group, yet his page names it (from the SYNC conversation list).
    let shell = bob
        .wait_for("the group to open under its name", SHELL, |s| {
            text(s, "title") == "# weekend plans"
        })
        .await?;
    ensure!(shell["groupTools"] == true, "bob's group header: {shell}");
    let theirs = wait_message(
        &bob,
        "the group message on bob's page",
        "hello team",
        |_| true,
    )
    .await?;
    ensure!(
        theirs["from"] == "alice" && theirs["who"] == "Alice" && has_class(&theirs, "in"),
        "bob sees: {theirs}"
    );

    for page in [&alice, &bob] {
        screenshot(page, page.name()).await?;
        ensure_healthy(page).await?;
    }
    browser.close().await?;
    gw.stop().await;
    Ok(())
}

/// The open conversation's group events (v1.1), typing line and group header, as shown.
const V11: &str = "(() => ({
    events: [...document.querySelectorAll('#messages > li.event')].map((li) => li.innerText),
    typing: document.getElementById('typing').innerText,
    groupInfo: document.getElementById('group-info').innerText,
    title: document.getElementById('conv-title').innerText,
    adminTools: document.getElementById('admin-form').checkVisibility() }))()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_show_read_marks_typing_recall_and_group_administration() -> Result<()> {
    let mut gw = TestGateway::start_with(|cfg| cfg.dev_login = true).await;
    let browser = Browser::launch().await?;
    let alice = browser.new_page("alice-v11").await?;
    let bob = browser.new_page("bob-v11").await?;
    for (page, user, name) in [(&alice, "alice", "Alice"), (&bob, "bob", "Bob")] {
        page.navigate(&gw.http("/")).await?;
        log_in(page, user, name).await?;
        page.eval(RECORD_STATES).await?;
    }

    // Read marks: alice's message turns "read" when bob's page opens the chat.
    alice.type_into("#peer", "bob").await?;
    alice.click("#open").await?;
    send(&alice, "read me").await?;
    wait_message(&alice, "delivered before bob looks", "read me", |m| {
        m["state"] == DELIVERED
    })
    .await?;
    wait_conversation(&bob, "the chat with alice to be listed", "alice", |c| {
        c["badge"] == "1"
    })
    .await?;
    bob.click("#conversations li[data-peer=\"alice\"] button")
        .await?;
    wait_message(&alice, "read once bob's page shows it", "read me", |m| {
        m["state"] == READ && has_class(m, "read")
    })
    .await?;
    let states = shown_states(&alice, "read me").await?;
    ensure!(
        states == json!([SENDING, SENT, DELIVERED, READ]),
        "read me: {states}"
    );

    // Presence: each page shows the other as online in its list.
    for (page, peer) in [(&alice, "bob"), (&bob, "alice")] {
        let expr = format!(
            "document.querySelector('#conversations li[data-peer=\"{peer}\"] .dot')?.dataset.online ?? null"
        );
        page.wait_for(&format!("{peer} shown online"), &expr, |v| v == "true")
            .await?;
    }

    // Files: alice sends an image; bob's page shows it, loaded through its signed URL.
    alice
        .eval("(async () => { const png = Uint8Array.from(atob('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=='), (c) => c.charCodeAt(0)); await chat.sendFile(new File([png], 'dot.png', { type: 'image/png' })); return true; })()")
        .await?;
    bob.wait_for(
        "the image on bob's page",
        "[...document.querySelectorAll('#messages > li.msg img')].map((img) => ({ alt: img.alt, loaded: img.complete && img.naturalWidth > 0 }))",
        |v| v.as_array().is_some_and(|l| l.iter().any(|i| i["alt"] == "dot.png" && i["loaded"] == true)),
    )
    .await?;

    // Typing: bob types, alice's page says so; sending clears it.
    bob.type_into("#text", "typing…").await?;
    alice
        .wait_for("bob typing on alice's page", V11, |v| {
            // alice's page has no message from bob yet, so it knows his id, not his name
            text(v, "typing") == "bob is typing…"
        })
        .await?;
    bob.click("#send").await?;
    alice
        .wait_for("the typing line to clear", V11, |v| {
            text(v, "typing").is_empty()
        })
        .await?;

    // Recall: alice takes "read me" back; both pages show the tombstone.
    let id = alice
        .eval("[...document.querySelectorAll('#messages > li.msg.own')].find((li) => li.querySelector('.body').innerText === 'read me')?.dataset.messageId ?? null")
        .await?;
    let id = id.as_str().unwrap_or_default().to_owned();
    ensure!(id.len() == 32, "alice's message id: {id:?}");
    alice
        .click(&format!("#messages li[data-message-id=\"{id}\"] .recall"))
        .await?;
    for page in [&alice, &bob] {
        let shown = wait_message(page, "the tombstone", "message recalled", |m| {
            has_class(m, "recalled")
        })
        .await?;
        ensure!(shown["from"] == "alice", "{}: {shown}", page.name());
    }

    // Group administration: create, rename, make bob an admin, dissolve; bob's page shows each.
    alice.type_into("#group-name", "ops").await?;
    alice.type_into("#group-members", "bob").await?;
    alice.click("#create-group").await?;
    alice
        .wait_for("the group to open", V11, |v| text(v, "title") == "# ops")
        .await?;
    let group_id = alice
        .eval("document.querySelector('#conversations li.active')?.dataset.peer ?? null")
        .await?;
    let group_id = group_id.as_str().unwrap_or_default().to_owned();
    ensure!(!group_id.is_empty(), "no active group on alice's page");
    alice.type_into("#rename", "ops team").await?;
    alice.click("#rename-btn").await?;
    alice.type_into("#admin-user", "bob").await?;
    alice.click("#make-admin").await?;
    alice
        .wait_for("bob shown as admin", V11, |v| {
            text(v, "groupInfo").contains("bob (admin)")
        })
        .await?;
    bob.click(&format!(
        "#conversations li[data-peer={}] button",
        json!(group_id)
    ))
    .await?;
    let shown = bob
        .wait_for("the group's events on bob's page", V11, |v| {
            v["events"].as_array().is_some_and(|e| e.len() == 3) && text(v, "title") == "# ops team"
        })
        .await?;
    ensure!(
        shown["events"]
            == json!([
                "Alice created the group “ops”",
                "Alice renamed the group to “ops team”",
                "Alice made you admin"
            ])
            && shown["adminTools"] == true
            && text(&shown, "groupInfo").contains("alice (owner)"),
        "bob's page: {shown}"
    );
    screenshot(&bob, "bob-v11-group").await?;
    alice.click("#dissolve").await?;
    bob.wait_for("the dissolution on bob's page", V11, |v| {
        text(v, "groupInfo") == "this group was dissolved" && v["adminTools"] == false
    })
    .await?;
    screenshot(&alice, "alice-v11").await?;
    for page in [&alice, &bob] {
        ensure_healthy(page).await?;
    }
    browser.close().await?;
    gw.stop().await;
    Ok(())
}
