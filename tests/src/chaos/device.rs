//! The chaos test's devices: `chat_client::Client`s that send 1:1 and group messages at a
//! steady pace (one in flight at a time, resent with the same `clientMsgId` after reconnects,
//! and again after an ERROR), ACK, de-duplicate and SYNC gaps as the client does, follow DRAIN,
//! and log what they were answered and what reached them, when, and when they were online.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_client::{Client, Event, Options, RoundRobin};
use chat_protocol::envelope::{Envelope, PushMsg};
use chat_protocol::{Reply, Request, RequestId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where a message went.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    User(String),
    Group(String),
}

/// One reply 0 a device got for its own message.
#[derive(Clone, Debug)]
pub struct Sent {
    pub client_msg_id: String,
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub body: String,
    pub target: Target,
    /// The pod of the connection that got reply 0.
    pub pod: String,
    pub at: Instant,
}

/// What one message looked like when it reached a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    pub conversation_id: String,
    pub seq: i64,
    pub from: String,
    pub body: String,
    pub recalled: bool,
}

/// A message that reached a device: its content, when, and whether by push (else a gap SYNC).
#[derive(Clone, Debug)]
pub struct Got {
    pub content: Content,
    pub at: Instant,
    pub pushed: bool,
}

/// Everything one device did and saw.
#[derive(Debug, Default)]
pub struct DeviceLog {
    pub sent: Vec<Sent>,
    /// messageId → its first arrival.
    pub got: HashMap<String, Got>,
    /// Pushes of a messageId the device already had (wire duplicates, removed by messageId).
    pub duplicates: usize,
    /// Duplicates whose content differed from the first copy's: messageId, first, again.
    pub conflicts: Vec<(String, Content, Content)>,
    /// Connected intervals: start, end (None while connected).
    pub online: Vec<(Instant, Option<Instant>)>,
    /// ERROR statuses met by sends: status → count.
    pub errors: HashMap<u16, usize>,
    /// The clientMsgId of the send in flight (without reply 0 yet), if any.
    pub pending: Option<String>,
}

impl DeviceLog {
    /// Whether the device was connected through the whole of `[from, to]`.
    pub fn online_through(&self, from: Instant, to: Instant) -> bool {
        self.online
            .iter()
            .any(|(s, e)| *s <= from && e.is_none_or(|e| e >= to))
    }
}

/// A device's identity and where it starts.
#[derive(Clone, Debug)]
pub struct DeviceSpec {
    pub user: String,
    pub device: String,
    /// Pod URLs, the first one first.
    pub urls: Vec<String>,
    /// Users it sends 1:1 messages to, and groups it sends to.
    pub peers: Vec<String>,
    pub groups: Vec<String>,
    /// Mean pause between two sends (±50 %).
    pub interval: Duration,
    /// Share of sends that go to a group.
    pub group_share: f64,
    pub seed: u64,
}

/// A running device.
pub struct Device {
    pub spec: DeviceSpec,
    pub log: Arc<Mutex<DeviceLog>>,
    /// Cancelled: no new sends (what is in flight still goes until answered).
    pub quiet: CancellationToken,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Device {
    /// Connects (returns once WELCOME arrived) and runs until [`Device::stop`].
    pub async fn start(spec: DeviceSpec) -> Self {
        let token = crate::fixtures::user_token(&spec.user);
        let options = Options {
            stall: Duration::from_secs(10),
            ..Options::new(token).device(spec.device.clone())
        };
        let mut client = None;
        for _ in 0..50 {
            match Client::connect(RoundRobin::new(spec.urls.clone()), options.clone()).await {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let client =
            client.unwrap_or_else(|| panic!("{}:{} cannot connect", spec.user, spec.device));
        let log = Arc::new(Mutex::new(DeviceLog::default()));
        log.lock().unwrap().online.push((Instant::now(), None));
        let (quiet, stop) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(run(
            client,
            spec.clone(),
            log.clone(),
            quiet.clone(),
            stop.clone(),
        ));
        Self {
            spec,
            log,
            quiet,
            stop,
            task,
        }
    }

    /// Whether a send of its is still without reply 0.
    pub fn in_flight(&self) -> bool {
        self.log.lock().unwrap().pending.is_some()
    }

    /// Stops the device (closing its connection); returns its log.
    pub async fn stop(self) -> Arc<Mutex<DeviceLog>> {
        self.stop.cancel();
        let _ = self.task.await;
        self.log
    }
}

/// A send in flight: its clientMsgId, request, where it goes, and the request id now.
struct InFlight {
    cmid: String,
    request: Request,
    body: String,
    target: Target,
    request_id: Option<RequestId>,
}

async fn run(
    mut client: Client,
    spec: DeviceSpec,
    log: Arc<Mutex<DeviceLog>>,
    quiet: CancellationToken,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut next_send = tokio::time::Instant::now() + spec.interval.mul_f64(rng.random::<f64>());
    let mut flight: Option<InFlight> = None;
    let mut n = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            event = client.next_event() => match event {
                Ok(e) => on_event(e, &mut client, &mut flight, &log),
                Err(_) => break,
            },
            _ = tokio::time::sleep_until(next_send) => {
                next_send += spec.interval.mul_f64(0.5 + rng.random::<f64>());
                match &mut flight {
                    // An ERROR answered it: the same message again.
                    Some(f) if f.request_id.is_none() => {
                        f.request_id = Some(client.submit(f.request.clone()));
                    }
                    Some(_) => {}
                    None if quiet.is_cancelled() => {}
                    None => {
                        n += 1;
                        let f = new_send(&spec, n, &mut rng);
                        flight = Some(InFlight {
                            request_id: Some(client.submit(f.request.clone())),
                            ..f
                        });
                    }
                }
            }
        }
        log.lock().unwrap().pending = flight.as_ref().map(|f| f.cmid.clone());
    }
    if let Some((_, end)) = log.lock().unwrap().online.last_mut() {
        end.get_or_insert_with(Instant::now);
    }
    client.close().await;
}

fn new_send(spec: &DeviceSpec, n: u64, rng: &mut StdRng) -> InFlight {
    let cmid = format!("{}-{}-{n}", spec.user, spec.device);
    let to_group = !spec.groups.is_empty() && rng.random::<f64>() < spec.group_share;
    let (target, body) = if to_group {
        let g = spec.groups[rng.random_range(0..spec.groups.len())].clone();
        let body = format!("{cmid} to group {g}");
        (Target::Group(g), body)
    } else {
        let u = spec.peers[rng.random_range(0..spec.peers.len())].clone();
        let body = format!("{cmid} to {u}");
        (Target::User(u), body)
    };
    let request = match &target {
        Target::User(u) => Request::Send {
            to: u.clone().try_into().expect("user id"),
            message: body.clone(),
            file_type: 0,
            file: None,
            client_msg_id: Some(cmid.clone()),
        },
        Target::Group(g) => Request::SendGroup {
            group_id: g.clone().try_into().expect("group id"),
            message: body.clone(),
            file_type: 0,
            file: None,
            client_msg_id: Some(cmid.clone()),
        },
    };
    InFlight {
        cmid,
        request,
        body,
        target,
        request_id: None,
    }
}

fn on_event(e: Event, client: &mut Client, flight: &mut Option<InFlight>, log: &Mutex<DeviceLog>) {
    let now = Instant::now();
    let mut l = log.lock().unwrap();
    match e {
        Event::Reply {
            reply: Reply::Received(r),
            ..
        } => {
            let Some(f) = flight.take_if(|f| r.client_msg_id.as_deref() == Some(&f.cmid)) else {
                return;
            };
            l.sent.push(Sent {
                client_msg_id: f.cmid,
                message_id: r.message_id,
                conversation_id: r.conversation_id.into_string(),
                seq: r.seq,
                body: f.body,
                target: f.target,
                pod: client.welcome().server.clone(),
                at: now,
            });
        }
        Event::Error {
            request_id: Some(id),
            error,
        } => {
            if let Some(f) = flight
                .as_mut()
                .filter(|f| f.request_id.as_ref() == Some(&id))
            {
                *l.errors.entry(error.status).or_default() += 1;
                f.request_id = None;
            }
        }
        Event::Message(env) => {
            if let Some(content) = content(&env) {
                let got = Got {
                    content,
                    at: now,
                    pushed: true,
                };
                l.got.entry(env.message_id.clone()).or_insert(got);
            }
        }
        Event::Duplicate(env) => {
            l.duplicates += 1;
            if let (Some(again), Some(first)) = (content(&env), l.got.get(&env.message_id)) {
                if again != first.content {
                    let first = first.content.clone();
                    l.conflicts.push((env.message_id.clone(), first, again));
                }
            }
        }
        Event::Connected(_) if l.online.last().is_none_or(|(_, end)| end.is_some()) => {
            l.online.push((now, None));
        }
        Event::Connected(_) => {}
        Event::Disconnected(_) => {
            if let Some((_, end)) = l.online.last_mut() {
                end.get_or_insert(now);
            }
        }
        _ => {}
    }
}

/// The content of a DELIVER (2) or DELIVER GROUP (10).
pub fn content(env: &Envelope) -> Option<Content> {
    Some(match &env.msg {
        PushMsg::Deliver(m) => Content {
            conversation_id: m.conversation_id.as_str().to_owned(),
            seq: m.seq,
            from: m.from_user.openid.as_str().to_owned(),
            body: m.message.clone(),
            recalled: m.recalled,
        },
        PushMsg::DeliverGroup(m) => Content {
            conversation_id: m.conversation_id.as_str().to_owned(),
            seq: m.seq,
            from: m.from_user.openid.as_str().to_owned(),
            body: m.message.clone(),
            recalled: m.recalled,
        },
        _ => return None,
    })
}
