//! The `session` target's driver: plays a script ([`super::input`]) against one
//! [`Connection`] the way the shell (`session::run`) would — frames only while the core wants
//! them, store calls finished in call order, one page read at a time, the timer fired when its
//! deadline passed — and checks what comes out. `FUZZ_TRACE=1` prints each step and the effects
//! it caused (to read a crash input: `FUZZ_TRACE=1 cargo test -p chat-gateway --lib fuzz::`).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::envelope::PushMsg;
use chat_protocol::{
    kind, ClientFrame, DeviceId, KickReason, Request, RequestId, ServerFrame, UserId,
};
use serde_json::Value;
use tokio::time::Instant;

use super::input::{Bytes, Step};
use crate::delivery::PullRequest;
use crate::error::Error;
use crate::hub::{DrainNotice, Outbound};
use crate::model::{DeliveredNotice, Prepared, StoredMessage, Target};
use crate::session::core::{Connection, Effect, Incoming, Settings, MAX_OPS};
use crate::session::ops::{Call, Done, Finished, Op};
use crate::session::Identity;
use crate::store::{Backlog, Page};

const WALL: i64 = 1_795_397_103_801;
const CONVERSATIONS: [&str; 3] = ["dm:alice:bob", "grp:g1", "dm:bob:carol"];

/// Runs the script in `data`; panics when the connection breaks a rule.
pub(super) fn run(data: &[u8]) {
    let mut input = Bytes::new(data);
    let settings = Arc::new(Settings {
        pod: "gw-0".into(),
        heartbeat: Duration::from_secs(1 + u64::from(input.byte().unwrap_or(29) % 60)),
        timelife: Duration::from_secs(1 + u64::from(input.u16().unwrap_or(1799))),
        ack_timeout: Duration::from_millis(1 + u64::from(input.u16().unwrap_or(9999))),
        ack_window: usize::from(input.byte().unwrap_or(4) % 8),
        rate_limit: u32::from(input.byte().unwrap_or(100)),
        rate_burst: u32::from(input.byte().unwrap_or(200)),
        write_timeout: Duration::from_secs(10),
    });
    let mut d = Driver::new(settings);
    d.drain_effects(None, None);
    while let Some(step) = input.step() {
        if d.closed {
            break;
        }
        if std::env::var_os("FUZZ_TRACE").is_some() {
            eprintln!("STEP {step:?}");
        }
        d.step(step);
    }
}

/// The connection and what the shell and the client know about it.
struct Driver {
    c: Connection,
    settings: Arc<Settings>,
    now: Instant,
    closed: bool,
    /// Store calls in flight, oldest first.
    calls: VecDeque<Call>,
    read: Option<PullRequest>,
    /// Messages stored per conversation (seqs 1..=n).
    stored: [i64; 3],
    /// Live messages offered so far.
    offered: Vec<Arc<Prepared>>,
    /// Message ids pushed and neither acked nor given up on.
    in_flight: Vec<String>,
    /// Every message id pushed (what an ACK picks from).
    pushed: Vec<String>,
    acked: HashSet<String>,
    /// The last step fired the timer.
    timer_fired: bool,
}

impl Driver {
    fn new(settings: Arc<Settings>) -> Self {
        let who = Arc::new(Identity {
            user: UserId::parse("bob").expect("an id"),
            name: "Bob".into(),
            device: DeviceId::parse("phone").expect("an id"),
            epoch: 7,
            session_id: "gw-0_bob_7".into(),
            token_expires_ms: i64::MAX,
        });
        let now = Instant::now();
        Self {
            c: Connection::new(settings.clone(), who, now, WALL),
            settings,
            now,
            closed: false,
            calls: VecDeque::new(),
            read: None,
            stored: [0; 3],
            offered: Vec::new(),
            in_flight: Vec::new(),
            pushed: Vec::new(),
            acked: HashSet::new(),
            timer_fired: false,
        }
    }

    fn step(&mut self, step: Step) {
        let mut request = None;
        let mut answering = None;
        match step {
            Step::Raw(text) => {
                if self.c.wants_frames() {
                    request = Some(text);
                }
            }
            Step::Request(mut frame) => {
                if let Some(pick) = frame["params"]
                    .as_object_mut()
                    .and_then(|p| p.remove("pick"))
                {
                    let pick = pick.as_u64().unwrap_or(0) as usize;
                    let msgid = match self.pushed.len() {
                        0 => "m0".to_owned(),
                        n => self.pushed[pick % n].clone(),
                    };
                    frame["params"]["msgid"] = Value::String(msgid);
                }
                if self.c.wants_frames() {
                    request = Some(frame.to_string());
                }
            }
            Step::Binary => self.c.handle_frame(Incoming::Binary, self.now),
            Step::Control => self.c.handle_frame(Incoming::Control, self.now),
            Step::Close => self.c.handle_frame(Incoming::Close, self.now),
            Step::Advance(ms) => {
                self.now += Duration::from_millis(ms);
                if self.c.poll_timeout() <= self.now {
                    self.timeout();
                }
            }
            Step::Spurious => self.timeout(),
            Step::Live(n) => {
                let conv = usize::from(n) % 3;
                self.stored[conv] += 1;
                let m = Arc::new(Prepared::new(Arc::new(message(conv, self.stored[conv]))));
                self.offered.push(m.clone());
                self.c.handle_event(Outbound::Message(m), self.now);
            }
            Step::Again(n) if !self.offered.is_empty() => {
                let m = self.offered[usize::from(n) % self.offered.len()].clone();
                self.c.handle_event(Outbound::Message(m), self.now);
            }
            Step::Again(_) => {}
            Step::Notice => {
                let notice = DeliveredNotice {
                    message_id: "m1".into(),
                    conversation_id: CONVERSATIONS[0].into(),
                    seq: 1,
                    by: "alice".into(),
                };
                self.c
                    .handle_event(Outbound::Notice(Arc::new(notice.prepare())), self.now);
            }
            Step::Kick => self
                .c
                .handle_event(Outbound::Kick(KickReason::Replaced), self.now),
            Step::Drain(deadline, reconnect) => {
                let notice = DrainNotice {
                    deadline: self.now + Duration::from_millis(u64::from(deadline) * 10),
                    reconnect_after: Duration::from_millis(u64::from(reconnect)),
                };
                self.c
                    .handle_event(Outbound::Drain(Box::new(notice)), self.now);
            }
            Step::Finish(outcome) => answering = self.finish(outcome),
            Step::Page(outcome) => self.page(outcome),
            Step::Resync => self.c.handle_resync(),
        }
        if let Some(text) = &request {
            self.hand_over(text);
        }
        self.drain_effects(request.as_deref(), answering.as_ref());
        if std::mem::take(&mut self.timer_fired) && !self.closed {
            assert!(
                self.c.poll_timeout() > self.now,
                "the timer would fire again at once: a busy loop"
            );
        }
    }

    fn timeout(&mut self) {
        self.c.handle_timeout(self.now);
        self.timer_fired = true;
    }

    /// The client hands `text` over: an ACK frees its message at once.
    fn hand_over(&mut self, text: &str) {
        if let Ok(ClientFrame {
            request: Request::Ack { msgid },
            ..
        }) = ClientFrame::parse(text)
        {
            self.in_flight.retain(|id| id != msgid.as_str());
            self.acked.insert(msgid.into_string());
        }
        self.c.handle_frame(Incoming::Text(text), self.now);
    }

    /// The oldest call finishes: a reply, nothing, or an error, as `outcome` says. Returns it.
    fn finish(&mut self, outcome: u8) -> Option<Call> {
        let call = self.calls.pop_front()?;
        let silent = call.op == Op::Backlog;
        let result = match (outcome % 4, &call.op) {
            (0, _) => Err(Error::Unavailable("the store is down".into())),
            (1, _) => Err(Error::Forbidden("not yours".into())),
            (_, Op::Backlog) => Ok(Done::Backlog(
                (0..3)
                    .filter(|c| self.stored[*c] > 0)
                    .map(|c| Backlog {
                        conversation_id: CONVERSATIONS[c].into(),
                        after_seq: i64::from(outcome / 4) % (self.stored[c] + 1),
                        last_seq: self.stored[c],
                    })
                    .collect(),
            )),
            (2, Op::Typing { .. } | Op::Ack { .. }) => Ok(Done::Quiet),
            _ => Ok(Done::Frame(chat_protocol::server::error_json(
                &chat_protocol::ErrorFrame {
                    status: 409,
                    code: "conflict".into(),
                    message: "made up".into(),
                },
                call.request_id.as_ref(),
            ))),
        };
        self.c.handle_finished(
            Finished {
                request_id: call.request_id.clone(),
                silent,
                result,
            },
            self.now,
        );
        Some(call)
    }

    /// The page read is answered: the stored messages above its cursor, or an error.
    fn page(&mut self, outcome: u8) {
        let Some(req) = self.read.take() else {
            return;
        };
        let conv = CONVERSATIONS
            .iter()
            .position(|c| *c == req.conversation_id)
            .expect("reads name conversations the store has");
        let page = match outcome % 5 {
            0 => Err(Error::Unavailable("the store is down".into())),
            1 => Err(Error::Forbidden("left the group".into())),
            _ => {
                let from = req.after_seq.saturating_add(1).max(1);
                let to = self.stored[conv].min(from.saturating_add(i64::from(req.limit)) - 1);
                Ok(Page {
                    messages: (from..=to).map(|seq| message(conv, seq)).collect(),
                    has_more: to < self.stored[conv],
                })
            }
        };
        self.c.handle_page(&req, page, self.now);
    }

    /// Carries out the effects the last step caused and checks them. `frame`: the client text
    /// frame that step handed over, if any; `answering`: the call that step finished, if any.
    fn drain_effects(&mut self, frame: Option<&str>, answering: Option<&Call>) {
        let frame_id = frame.and_then(chat_protocol::fuzz::request_id_of);
        let bound = 2 * self.settings.ack_window.max(1) + 8;
        let effects: Vec<Effect> = std::iter::from_fn(|| self.c.poll_effect()).collect();
        if std::env::var_os("FUZZ_TRACE").is_some() {
            for e in &effects {
                eprintln!("  EFFECT {e:?}");
            }
        }
        assert!(
            effects.len() <= bound,
            "more than {bound} effects for one input"
        );
        // A timeout gives up on a message and lets a queued one into its slot in one go: the
        // slot is free once the message is given up, whichever effect comes first.
        for effect in &effects {
            if let Effect::Unacked(messages) = effect {
                for m in messages {
                    let id = &m.message.message_id;
                    assert!(
                        self.in_flight.contains(id),
                        "{id} given up, never in flight"
                    );
                    self.in_flight.retain(|i| i != id);
                }
            }
        }
        for effect in effects {
            assert!(!self.closed, "{effect:?} after the close");
            match effect {
                Effect::Write(text) => self.written(&text, frame, frame_id.as_ref(), answering),
                Effect::Call(call) => {
                    if call.op != Op::Backlog {
                        let sent = frame.expect("only a client frame asks for a store call");
                        assert_eq!(call.request_id, frame_id, "the call lost {sent}'s id");
                    }
                    self.calls.push_back(call);
                    let asked = self.calls.iter().filter(|c| c.op != Op::Backlog).count();
                    assert!(asked <= MAX_OPS, "{asked} client calls in flight");
                }
                Effect::Read(req) => {
                    assert!(self.read.is_none(), "a second page read while one is out");
                    assert!((1..=200).contains(&req.limit), "{req:?}");
                    self.read = Some(req);
                }
                Effect::RefreshRoute => {}
                Effect::Unacked(_) => {}
                Effect::Close(_) => self.closed = true,
            }
        }
    }

    /// Checks one written frame.
    fn written(
        &mut self,
        text: &str,
        frame: Option<&str>,
        frame_id: Option<&RequestId>,
        answering: Option<&Call>,
    ) {
        let parsed = ServerFrame::parse(text)
            .unwrap_or_else(|e| panic!("the server wrote {text}, which does not parse: {e}"));
        match parsed {
            ServerFrame::Push(env) => self.pushed_envelope(&env),
            ServerFrame::Reply { reply, request_id } => {
                let k = reply.kind();
                if let Some(sent) = frame {
                    // Answered at once: the reply to this frame, with its id (or an event's).
                    let ok = matches!(k, kind::HEARTBEAT_ACK | kind::RENEW | kind::REGISTER);
                    assert!(ok, "reply {k} to {sent}");
                    assert_eq!(request_id.as_ref(), frame_id, "reply {k} to {sent}");
                }
            }
            ServerFrame::Error { request_id, .. } => {
                if let Some(sent) = frame {
                    if request_id.is_some() {
                        assert_eq!(request_id.as_ref(), frame_id, "{text} answers {sent}");
                    }
                }
                if let Some(call) = answering {
                    assert_eq!(request_id, call.request_id, "{text} answers {call:?}");
                }
            }
        }
    }

    fn pushed_envelope(&mut self, env: &chat_protocol::Envelope) {
        if !matches!(env.msg, PushMsg::Deliver(_) | PushMsg::DeliverGroup(_)) {
            return;
        }
        let id = env.message_id.clone();
        assert!(!self.acked.contains(&id), "{id} pushed after its ack");
        if env.retry {
            assert!(self.in_flight.contains(&id), "{id} retried, not in flight");
        } else {
            assert!(!self.in_flight.contains(&id), "{id} pushed twice in flight");
            self.in_flight.push(id.clone());
            self.pushed.push(id);
        }
        let window = self.settings.ack_window.max(1);
        assert!(
            self.in_flight.len() <= window,
            "window of {window} overrun: {:?}",
            self.in_flight
        );
    }
}

fn message(conv: usize, seq: i64) -> StoredMessage {
    let target = if conv == 1 {
        Target::Group {
            group_id: "g1".into(),
        }
    } else {
        Target::Direct {
            to: "bob".into(),
            to_name: "Bob".into(),
        }
    };
    StoredMessage {
        message_id: format!("{conv}{seq:031x}"),
        conversation_id: CONVERSATIONS[conv].into(),
        seq,
        from: "alice".into(),
        from_name: "Alice".into(),
        target,
        body: format!("hello {seq}"),
        file_type: 0,
        file: None,
        client_msg_id: None,
        created_at: WALL,
        request_id: format!("r-{seq}"),
        recalled: false,
        system: None,
    }
}
