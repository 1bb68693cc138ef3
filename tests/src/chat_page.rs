//! What the browser tests read from and do on the chat page (`GET /`): DOM snapshots as JS
//! expressions, the delivery-state texts, logging in, sending, and waiting for a message or a
//! conversation to be shown. Shared by `tests/browser.rs` and `tests/browser_sdk.rs`.

use anyhow::{ensure, Result};
use serde_json::{json, Value};

use crate::cdp::Page;

/// The header: connection status, error line, and which of login panel / chat app is shown.
pub const SHELL: &str = "(() => { const $ = (id) => document.getElementById(id); return {
    state: $('status').dataset.state, status: $('status').innerText, error: $('error').innerText,
    app: $('app').checkVisibility(), login: $('login-panel').checkVisibility(),
    title: $('conv-title').innerText, groupInfo: $('group-info').innerText,
    groupTools: $('members-form').checkVisibility() }; })()";

/// The messages of the open conversation, as shown.
pub const MESSAGES: &str = "[...document.querySelectorAll('#messages > li.msg')].map((li) => ({
    classes: li.className.split(/\\s+/), from: li.dataset.from ?? null,
    who: li.querySelector('.meta b')?.innerText ?? null,
    meta: [...li.querySelectorAll('.meta span')].map((s) => s.innerText),
    body: li.querySelector('.body')?.innerText ?? null,
    state: li.querySelector('.state')?.innerText ?? null, visible: li.checkVisibility() }))";

/// The conversation list, as shown.
pub const CONVERSATIONS: &str = "[...document.querySelectorAll('#conversations > li')].map((li) => ({
    title: li.querySelector('button > span')?.innerText ?? null, badge: li.querySelector('.badge')?.innerText ?? null,
    active: li.classList.contains('active'), kind: li.dataset.kind ?? null, peer: li.dataset.peer ?? null,
    visible: li.checkVisibility() }))";

/// Records, per own message text, every delivery state the page displays (`sending…`, `sent ✓`,
/// `delivered ✓✓`), so a state shown only between two polls is still seen. Each frame is its own
/// task and mutation observers run after each task, so no displayed state is missed.
pub const RECORD_STATES: &str = "(() => {
    window.__shownStates = {};
    const look = () => {
      for (const li of document.querySelectorAll('#messages > li.msg.own')) {
        const seen = (window.__shownStates[li.querySelector('.body').innerText] ||= []);
        const now = li.querySelector('.state').innerText;
        if (seen[seen.length - 1] !== now) seen.push(now);
      }
    };
    new MutationObserver(look).observe(document.getElementById('messages'),
      { childList: true, subtree: true, characterData: true, attributes: true });
    return true;
  })()";

pub const SENDING: &str = "sending…";
pub const SENT: &str = "sent ✓";
pub const DELIVERED: &str = "delivered ✓✓";
pub const READ: &str = "read ✓✓";

/// A message the other page read went sending → sent → (delivered →) read: the READ notice
/// may overtake the DELIVERED one, and "read" says "delivered" too.
pub fn went_to_read(states: &Value) -> bool {
    states == &json!([SENDING, SENT, DELIVERED, READ]) || states == &json!([SENDING, SENT, READ])
}

pub fn has_class(m: &Value, class: &str) -> bool {
    m["classes"]
        .as_array()
        .is_some_and(|c| c.iter().any(|x| x == class))
}

pub fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// Waits until the open conversation shows a message with this body that satisfies `done`;
/// it must be shown exactly once.
pub async fn wait_message(
    page: &Page,
    what: &str,
    body: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let expr = format!("({MESSAGES}).filter((m) => m.body === {})", json!(body));
    let shown = page
        .wait_for(what, &expr, |list| {
            list.as_array().is_some_and(|l| l.iter().any(&done))
        })
        .await?;
    let list = shown.as_array().expect("an array");
    ensure!(
        list.len() == 1,
        "{}: {body:?} is shown {} times: {shown}",
        page.name(),
        list.len()
    );
    ensure!(
        list[0]["visible"] == true,
        "{}: {body:?} is in the DOM but not visible: {shown}",
        page.name()
    );
    Ok(list[0].clone())
}

/// Waits until the conversation list shows an entry for `peer` that satisfies `done`.
pub async fn wait_conversation(
    page: &Page,
    what: &str,
    peer: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let expr = format!(
        "({CONVERSATIONS}).filter((c) => c.peer === {})",
        json!(peer)
    );
    let shown = page
        .wait_for(what, &expr, |list| {
            list.as_array().is_some_and(|l| l.len() == 1 && done(&l[0]))
        })
        .await?;
    Ok(shown[0].clone())
}

pub async fn log_in(page: &Page, user: &str, name: &str) -> Result<()> {
    page.type_into("#user", user).await?;
    page.type_into("#name", name).await?;
    page.click("#login").await?;
    let shell = page
        .wait_for(&format!("{user} to show connected"), SHELL, |s| {
            s["state"] == "connected"
        })
        .await?;
    ensure!(
        text(&shell, "status").contains(&format!("connected as {user}")),
        "{user}: status reads {shell}"
    );
    ensure!(
        shell["app"] == true && shell["login"] == false,
        "{user}: after login the chat must replace the login panel: {shell}"
    );
    ensure!(
        text(&shell, "error").is_empty(),
        "{user}: error shown after login: {shell}"
    );
    Ok(())
}

/// Types into the message box and clicks Send.
pub async fn send(page: &Page, message: &str) -> Result<()> {
    page.type_into("#text", message).await?;
    page.click("#send").await
}

/// The delivery states the page displayed for one of its own messages, in order.
pub async fn shown_states(page: &Page, body: &str) -> Result<Value> {
    page.eval(&format!("window.__shownStates[{}] ?? []", json!(body)))
        .await
}

/// A page at the end of a scenario: connected, no error shown, no problem reported (console
/// errors, failed requests).
pub async fn ensure_healthy(page: &Page) -> Result<()> {
    let shell = page.eval(SHELL).await?;
    ensure!(
        shell["state"] == "connected" && text(&shell, "error").is_empty(),
        "{}: at the end: {shell}",
        page.name()
    );
    ensure!(
        page.problems().is_empty(),
        "{}: the page reported problems: {:?}",
        page.name(),
        page.problems()
    );
    Ok(())
}
