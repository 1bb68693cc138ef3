//! Chat users through the ingress: `chat_client::Client`s on `ws://localhost:<nginx>/ws`, each
//! writing to the next one in a ring with a `clientMsgId`, ACKing every delivery and following
//! DRAIN (22). What they see goes in one [`Ledger`]: reply 0s, deliveries by `messageId`, and
//! the pod (WELCOME's `server`) of every connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_client::{Client, Error, Event, Options};
use chat_protocol::envelope::PushMsg;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Pause between one message's reply 0 and the next one of the same user.
const SEND_PAUSE: Duration = Duration::from_millis(50);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection a user made: to which pod, when.
#[derive(Clone, Debug)]
pub struct Connection {
    pub user: String,
    pub pod: String,
    pub at: Instant,
    /// Made while following a DRAIN.
    pub moved: bool,
}

/// What every user saw.
#[derive(Default, Debug)]
pub struct Ledger {
    /// `clientMsgId` → (`messageId` of its reply 0, recipient).
    pub acknowledged: HashMap<String, (String, String)>,
    /// (recipient, `messageId`) → deliveries the client passed on (it de-duplicates: once).
    pub delivered: HashMap<(String, String), u32>,
    /// Every connection, in order.
    pub connections: Vec<Connection>,
    /// DRAIN frames received, by user.
    pub drains: HashMap<String, usize>,
    /// Broken promises: a resend answered with another `messageId`, a stranger's message…
    pub problems: Vec<String>,
    /// SENDs written and not yet answered: the ledger is final only when this is 0.
    pub in_flight: usize,
}

impl Ledger {
    /// Acknowledged messages their recipient never got.
    pub fn missing(&self) -> Vec<String> {
        let mut missing: Vec<String> = self
            .acknowledged
            .iter()
            .filter(|(_, (id, to))| !self.delivered.contains_key(&(to.clone(), id.clone())))
            .map(|(cmid, (id, to))| format!("{id} ({cmid} to {to})"))
            .collect();
        missing.sort();
        missing
    }

    /// Whether every SEND is answered and every acknowledged message delivered.
    pub fn settled(&self) -> bool {
        self.in_flight == 0 && self.missing().is_empty()
    }

    /// Deliveries beyond the first of a message.
    pub fn duplicates(&self) -> u32 {
        self.delivered.values().map(|n| n - 1).sum()
    }

    /// The pod `user` was last connected to.
    pub fn pod_of(&self, user: &str) -> Option<String> {
        let last = self.connections.iter().rev().find(|c| c.user == user);
        last.map(|c| c.pod.clone())
    }
}

/// One user: name, token, the user it writes to, where it connects.
pub struct User {
    pub name: String,
    pub token: String,
    pub peer: String,
    pub url: String,
}

/// Connects `user` (WELCOME read) and records the connection.
pub async fn connect(user: &User, ledger: &Mutex<Ledger>) -> Client {
    let options = Options {
        stall: Duration::from_secs(3),
        ..Options::new(user.token.clone()).device("phone")
    };
    let url = user.url.clone();
    let client = Client::connect(move || Some(url.clone()), options)
        .await
        .unwrap_or_else(|e| panic!("{} connects through nginx: {e}", user.name));
    lock(ledger).connections.push(Connection {
        user: user.name.clone(),
        pod: client.welcome().server.clone(),
        at: Instant::now(),
        moved: false,
    });
    client
}

/// Runs `user` on `client` until `quit`: sends while `sending` is not cancelled, receives and
/// ACKs always.
pub async fn run(
    user: User,
    mut client: Client,
    ledger: Arc<Mutex<Ledger>>,
    sending: CancellationToken,
    quit: CancellationToken,
) {
    let mut sent = 0_u64;
    let mut following_drain = false;
    while !quit.is_cancelled() {
        if !sending.is_cancelled() {
            sent += 1;
            let cmid = format!("{}-{sent}", user.name);
            let text = format!("hello {sent}");
            lock(&ledger).in_flight += 1;
            // Answered (reply 0 or given up) on every way out of the loop below.
            let _answered = InFlight(&ledger);
            loop {
                let result = tokio::select! {
                    r = client.send_to(&user.peer, &text, &cmid) => r,
                    () = quit.cancelled() => return,
                };
                for event in client.take_events() {
                    record(&user, &ledger, event, &mut following_drain);
                }
                match result {
                    Ok(r) => {
                        let mut l = lock(&ledger);
                        let entry = l
                            .acknowledged
                            .entry(cmid.clone())
                            .or_insert_with(|| (r.message_id.to_string(), user.peer.clone()));
                        if entry.0 != r.message_id.as_str() {
                            let problem = format!("{cmid} acknowledged twice, differently");
                            l.problems.push(problem);
                        }
                        break;
                    }
                    Err(Error::Server(e)) => {
                        lock(&ledger).problems.push(format!("{cmid}: ERROR {e:?}"));
                        tokio::time::sleep(SEND_PAUSE).await;
                    }
                    Err(e) => {
                        lock(&ledger).problems.push(format!("{}: {e}", user.name));
                        return;
                    }
                }
            }
        }
        let pause = tokio::time::sleep(SEND_PAUSE);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                event = client.next_event() => match event {
                    Ok(event) => record(&user, &ledger, event, &mut following_drain),
                    Err(e) => {
                        lock(&ledger).problems.push(format!("{}: {e}", user.name));
                        return;
                    }
                },
                () = &mut pause, if !sending.is_cancelled() => break,
                () = quit.cancelled() => break,
            }
        }
    }
    client.close().await;
}

/// Counts a SEND as answered when dropped.
struct InFlight<'a>(&'a Mutex<Ledger>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.0).in_flight -= 1;
    }
}

fn record(user: &User, ledger: &Mutex<Ledger>, event: Event, following_drain: &mut bool) {
    let mut l = lock(ledger);
    match event {
        Event::Message(envelope) => {
            let PushMsg::Deliver(params) = &envelope.msg else {
                l.problems.push(format!("{} got {envelope:?}", user.name));
                return;
            };
            if params.to_user.openid != user.name {
                l.problems
                    .push(format!("{} got another's {envelope:?}", user.name));
            }
            let key = (user.name.clone(), envelope.message_id.to_string());
            *l.delivered.entry(key).or_default() += 1;
        }
        Event::Drain(_) => {
            *l.drains.entry(user.name.clone()).or_default() += 1;
            *following_drain = true;
        }
        Event::Connected(welcome) => {
            l.connections.push(Connection {
                user: user.name.clone(),
                pod: welcome.server.clone(),
                at: Instant::now(),
                moved: std::mem::take(following_drain),
            });
        }
        Event::Error { error, .. } => {
            l.problems.push(format!("{}: ERROR {error:?}", user.name));
        }
        _ => {}
    }
}
