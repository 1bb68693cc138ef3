//! A small Chrome DevTools Protocol client for browser end-to-end tests.
//!
//! [`Browser::launch`] starts headless Chromium on a fresh profile, reads the DevTools WebSocket
//! URL it prints on stderr and connects to it with tokio-tungstenite. Pages are driven over flat
//! sessions (`Target.attachToTarget {flatten: true}`): one socket, each command tagged with its
//! page's `sessionId`. It offers what the tests need — navigate, evaluate, type, click, bounded
//! waits, screenshots, and the page's uncaught exceptions and console errors — and nothing more.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::TempDir;

/// Where Debian's `chromium` package installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a test waits for the page to show what it expects.
pub const WAIT: Duration = Duration::from_secs(10);
/// Chromium start-up until it prints its DevTools URL; slow when cargo builds on the same 2 cores.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// One CDP command; a browser that does not answer in this time is stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval between two looks at the page in [`Page::wait_for`].
const POLL: Duration = Duration::from_millis(50);
/// Chromium stderr lines kept for failure messages.
const STDERR_TAIL: usize = 40;
/// Viewport of every page: wide enough for the chat page's two-column layout.
const VIEWPORT: (u32, u32) = (1100, 720);

const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--remote-debugging-port=0",
];

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply = std::result::Result<Value, Value>;

/// The DevTools socket shared by the browser and its pages.
struct Connection {
    sink: tokio::sync::Mutex<SplitSink<Socket, Message>>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    closed: AtomicBool,
    /// Uncaught exceptions, console errors and error log entries, per session.
    problems: Mutex<HashMap<String, Vec<String>>>,
}

impl Connection {
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            frame["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        ensure!(
            !self.closed.load(Ordering::SeqCst),
            "{method}: the DevTools connection is closed"
        );
        self.sink
            .lock()
            .await
            .send(Message::Text(frame.to_string().into()))
            .await
            .with_context(|| format!("{method}: send"))?;
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(error))) => Err(anyhow!("{method} failed: {error}")),
            Ok(Err(_)) => Err(anyhow!(
                "{method}: the DevTools connection closed before the reply"
            )),
            Err(_) => {
                self.pending.lock().unwrap().remove(&id);
                Err(anyhow!("{method}: no reply within {CALL_TIMEOUT:?}"))
            }
        }
    }

    /// Routes replies to their callers and records the events that signal a broken page.
    async fn read_loop(self: Arc<Self>, mut stream: SplitStream<Socket>) {
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(text) = msg else { continue };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if let Some(id) = v["id"].as_u64() {
                if let Some(tx) = self.pending.lock().unwrap().remove(&id) {
                    let _ = tx.send(
                        v.get("error")
                            .map_or_else(|| Ok(v["result"].clone()), |e| Err(e.clone())),
                    );
                }
            } else if let (Some(session), Some(problem)) = (v["sessionId"].as_str(), problem(&v)) {
                self.problems
                    .lock()
                    .unwrap()
                    .entry(session.to_owned())
                    .or_default()
                    .push(problem);
            }
        }
        self.closed.store(true, Ordering::SeqCst);
        self.pending.lock().unwrap().clear();
    }
}

/// A one-line description of an event that means the page misbehaved, if it is one.
fn problem(event: &Value) -> Option<String> {
    let p = &event["params"];
    match event["method"].as_str()? {
        "Runtime.exceptionThrown" => {
            let d = &p["exceptionDetails"];
            Some(format!(
                "uncaught: {}",
                d["exception"]["description"]
                    .as_str()
                    .or(d["text"].as_str())
                    .unwrap_or("exception")
            ))
        }
        "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
            let args = p["args"].as_array().into_iter().flatten();
            let text: Vec<String> = args
                .map(|a| {
                    a["value"]
                        .as_str()
                        .or(a["description"].as_str())
                        .map_or_else(|| a["value"].to_string(), str::to_owned)
                })
                .collect();
            Some(format!("console.error: {}", text.join(" ")))
        }
        "Log.entryAdded" if p["entry"]["level"] == "error" => {
            let e = &p["entry"];
            Some(format!(
                "{}: {} {}",
                e["source"].as_str().unwrap_or("log"),
                e["text"].as_str().unwrap_or(""),
                e["url"].as_str().unwrap_or("")
            ))
        }
        _ => None,
    }
}

/// A headless Chromium process and its DevTools connection. Dropping it kills the browser;
/// [`Browser::close`] shuts it down cleanly.
pub struct Browser {
    conn: Arc<Connection>,
    child: tokio::process::Child,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Removed after the browser (declared after `child`, so dropped after it).
    _profile: TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile. Fails, saying how to install it, when it is missing.
    pub async fn launch() -> Result<Self> {
        let exe = find_chromium()?;
        let profile = TempDir::new("chromium");
        let mut child = tokio::process::Command::new(&exe)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (url_tx, url_rx) = oneshot::channel();
        tokio::spawn(read_stderr(
            child.stderr.take().expect("piped stderr"),
            stderr.clone(),
            url_tx,
        ));
        let url = match tokio::time::timeout(LAUNCH_TIMEOUT, url_rx).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => bail!(
                "Chromium exited without printing its DevTools URL; stderr:\n{}",
                tail(&stderr)
            ),
            Err(_) => bail!(
                "Chromium printed no DevTools URL within {LAUNCH_TIMEOUT:?}; stderr:\n{}",
                tail(&stderr)
            ),
        };
        let (socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("connecting to DevTools at {url}"))?;
        let (sink, stream) = socket.split();
        let conn = Arc::new(Connection {
            sink: tokio::sync::Mutex::new(sink),
            next_id: AtomicU64::new(1),
            pending: Mutex::default(),
            closed: AtomicBool::new(false),
            problems: Mutex::default(),
        });
        tokio::spawn(conn.clone().read_loop(stream));
        Ok(Self {
            conn,
            child,
            stderr,
            _profile: profile,
        })
    }

    /// Opens a page in its own browser context (its own cookies and storage, like a separate
    /// browser), `name` being what failure messages call it.
    pub async fn new_page(&self, name: &str) -> Result<Page> {
        let context = self
            .conn
            .call(None, "Target.createBrowserContext", json!({}))
            .await?;
        let target = self
            .conn
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context["browserContextId"]}),
            )
            .await?;
        let attached = self
            .conn
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .context("Target.attachToTarget: no sessionId")?
            .to_owned();
        let page = Page {
            conn: self.conn.clone(),
            session,
            name: name.to_owned(),
        };
        for method in ["Runtime.enable", "Log.enable", "Page.enable"] {
            page.call(method, json!({})).await?;
        }
        let (width, height) = VIEWPORT;
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        // Every page behaves as the focused one, as if each user had their own window.
        page.call(
            "Emulation.setFocusEmulationEnabled",
            json!({"enabled": true}),
        )
        .await?;
        Ok(page)
    }

    /// The last lines Chromium wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr)
    }

    /// Asks the browser to quit and waits for it; kills it if it does not.
    pub async fn close(mut self) -> Result<()> {
        // The browser may drop the connection before it replies: the exit is what counts.
        let _ = self.conn.call(None, "Browser.close", json!({})).await;
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status.context("waiting for Chromium")?;
            }
            Err(_) => {
                self.child.kill().await.context("killing Chromium")?;
                bail!(
                    "Chromium did not exit within 10 s of Browser.close; stderr:\n{}",
                    self.stderr_tail()
                );
            }
        }
        Ok(())
    }
}

fn find_chromium() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("chromium"));
    std::iter::once(PathBuf::from(CHROMIUM)).chain(on_path).find(|p| p.is_file()).ok_or_else(|| {
        anyhow!(
            "the browser tests need headless Chromium, which is not installed ({CHROMIUM} is missing). \
             Install it with: apt-get install -y chromium"
        )
    })
}

/// Forwards the `DevTools listening on ws://…` URL and keeps the last lines for diagnostics.
async fn read_stderr(
    stderr: tokio::process::ChildStderr,
    keep: Arc<Mutex<VecDeque<String>>>,
    url: oneshot::Sender<String>,
) {
    let mut url = Some(url);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(found) = line.strip_prefix("DevTools listening on ") {
            if let Some(tx) = url.take() {
                let _ = tx.send(found.trim().to_owned());
            }
        }
        let mut keep = keep.lock().unwrap();
        if keep.len() == STDERR_TAIL {
            keep.pop_front();
        }
        keep.push_back(line);
    }
}

fn tail(lines: &Mutex<VecDeque<String>>) -> String {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One page (tab), driven through its flat session.
pub struct Page {
    conn: Arc<Connection>,
    session: String,
    name: String,
}

impl Page {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one CDP command to this page.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.conn
            .call(Some(&self.session), method, params)
            .await
            .with_context(|| format!("page {}", self.name))
    }

    /// Loads `url` and waits until the document has loaded.
    pub async fn navigate(&self, url: &str) -> Result<()> {
        let r = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(e) = r["errorText"].as_str().filter(|e| !e.is_empty()) {
            bail!("page {}: navigating to {url} failed: {e}", self.name);
        }
        let loaded = format!(
            "document.readyState === 'complete' && location.href === {}",
            json!(url)
        );
        self.wait_for(&format!("{url} to load"), &loaded, truthy)
            .await
            .map(drop)
    }

    /// Evaluates a JavaScript expression (awaiting a promise) and returns its value as JSON;
    /// `undefined` becomes `null`, a thrown exception an error.
    pub async fn eval(&self, expression: &str) -> Result<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            let text = ex["exception"]["description"]
                .as_str()
                .or(ex["text"].as_str())
                .unwrap_or("exception");
            bail!(
                "page {}: evaluating `{expression}` threw: {text}",
                self.name
            );
        }
        Ok(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Evaluates `expression` every [`POLL`] until `done` accepts its value, for at most [`WAIT`].
    /// Evaluation errors (e.g. during a navigation) count as "not yet". On timeout the error tells
    /// the last value, the page's visible text and its problems.
    pub async fn wait_for(
        &self,
        what: &str,
        expression: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let last = match self.eval(expression).await {
                Ok(v) if done(&v) => return Ok(v),
                Ok(v) => v.to_string(),
                Err(e) => format!("error: {e:#}"),
            };
            if tokio::time::Instant::now() >= deadline {
                let text = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await
                    .unwrap_or_default();
                let text: String = text
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(2000)
                    .collect();
                bail!(
                    "page {}: waited {WAIT:?} for {what}\n  last value: {last}\n  problems: {:?}\n  page text:\n{text}",
                    self.name,
                    self.problems()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Types `text` into the element like a user: waits until it is visible and enabled, focuses it,
    /// selects what it holds and inserts the text (input events included).
    pub async fn type_into(&self, selector: &str, text: &str) -> Result<()> {
        let focus = format!(
            "(el => {{ if (!el || el.disabled || !el.checkVisibility()) return false; \
             el.focus(); el.select(); return document.activeElement === el; }})(document.querySelector({}))",
            json!(selector)
        );
        self.wait_for(&format!("{selector} to take input"), &focus, truthy)
            .await?;
        self.call("Input.insertText", json!({"text": text})).await?;
        let value = self
            .eval(&format!(
                "document.querySelector({}).value",
                json!(selector)
            ))
            .await?;
        ensure!(
            value == text,
            "page {}: typed {text:?} into {selector}, it holds {value}",
            self.name
        );
        Ok(())
    }

    /// Clicks the element's centre with the mouse once it is visible, enabled and not covered.
    pub async fn click(&self, selector: &str) -> Result<()> {
        let target = format!(
            "(el => {{ if (!el || el.disabled || !el.checkVisibility()) return null; \
             el.scrollIntoView({{block: 'nearest'}}); const r = el.getBoundingClientRect(); \
             const x = r.left + r.width / 2, y = r.top + r.height / 2; const hit = document.elementFromPoint(x, y); \
             return hit && (hit === el || el.contains(hit)) ? {{x, y}} : {{covered: hit && hit.outerHTML.slice(0, 120)}}; \
             }})(document.querySelector({}))",
            json!(selector)
        );
        let at = self
            .wait_for(&format!("{selector} to be clickable"), &target, |v| {
                v.get("x").is_some()
            })
            .await?;
        let (x, y) = (&at["x"], &at["y"]);
        self.call(
            "Input.dispatchMouseEvent",
            json!({"type": "mouseMoved", "x": x, "y": y}),
        )
        .await?;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await?;
        }
        Ok(())
    }

    /// Saves a PNG of the viewport to `path` (creating its directory).
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let png = base64_decode(
            r["data"]
                .as_str()
                .context("Page.captureScreenshot: no data")?,
        )?;
        ensure!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "page {}: the screenshot is not a PNG",
            self.name
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Uncaught exceptions, console errors and error log entries (failed loads, WebSocket errors)
    /// seen on this page so far.
    pub fn problems(&self) -> Vec<String> {
        self.conn
            .problems
            .lock()
            .unwrap()
            .get(&self.session)
            .cloned()
            .unwrap_or_default()
    }
}

/// JavaScript truthiness of a JSON value, for [`Page::wait_for`].
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Standard base64 with padding (what CDP uses for binary data).
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("invalid base64 byte {c:#04x}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("AAEC/w==").unwrap(), [0, 1, 2, 255]);
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a*b=").is_err());
    }

    #[test]
    fn truthiness_follows_javascript() {
        for v in [json!(null), json!(false), json!(0), json!("")] {
            assert!(!truthy(&v), "{v}");
        }
        for v in [json!(true), json!(1), json!("x"), json!([]), json!({})] {
            assert!(truthy(&v), "{v}");
        }
    }
}
