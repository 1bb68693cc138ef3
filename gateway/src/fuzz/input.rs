//! The fuzz input read as a script: the connection's settings, then one step after another
//! (client frames, time passing, events from the hub, store calls and page reads finishing).
//! Every byte string is a valid script; it ends where the bytes do.

use serde_json::{json, Value};

/// Reads the fuzzer's bytes front to back; past the end every read is `None`.
pub(super) struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    pub(super) fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    pub(super) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    /// A length byte, then that many bytes (fewer at the end).
    fn chunk(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.byte()?).min(self.0.len());
        let (chunk, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(chunk)
    }

    /// A byte, or 0 past the end (for the details of a step already chosen).
    fn or0(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }
}

/// One step of the script.
#[derive(Debug)]
pub(super) enum Step {
    /// A text frame of arbitrary bytes (lossy UTF-8).
    Raw(String),
    /// A well-formed request built from the bytes (to reach past the parser).
    Request(Value),
    /// A binary frame.
    Binary,
    /// A ping or pong.
    Control,
    /// The peer's close frame.
    Close,
    /// The clock moves by this many ms; a deadline that passed fires.
    Advance(u64),
    /// The timer fires early (the shell's timer is only moved earlier, so it may wake for nothing).
    Spurious,
    /// A new message stored in conversation `n % 3` arrives live.
    Live(u8),
    /// An earlier live message arrives again (a bus redelivery).
    Again(u8),
    /// A DELIVERED notice arrives.
    Notice,
    /// The connection is kicked.
    Kick,
    /// A drain: the deadline in ms from now, and the reconnect delay.
    Drain(u16, u16),
    /// The oldest store call in flight finishes, its outcome chosen by the byte.
    Finish(u8),
    /// The outstanding page read is answered, its outcome chosen by the byte.
    Page(u8),
    /// The hub could not queue an event: read the backlog again.
    Resync,
}

impl Bytes<'_> {
    pub(super) fn step(&mut self) -> Option<Step> {
        Some(match self.byte()? % 16 {
            0 => Step::Raw(String::from_utf8_lossy(self.chunk()?).into_owned()),
            1 | 2 => Step::Request(self.request()),
            3 => Step::Binary,
            4 => Step::Control,
            5 => Step::Close,
            6 => Step::Advance(u64::from(self.u16()?) * if self.or0() & 1 == 0 { 1 } else { 100 }),
            7 => Step::Spurious,
            8 => Step::Live(self.or0()),
            9 => Step::Again(self.or0()),
            10 => Step::Notice,
            11 => Step::Kick,
            12 => Step::Drain(self.u16()?, self.u16()?),
            13 => Step::Finish(self.or0()),
            14 => Step::Page(self.or0()),
            _ => Step::Resync,
        })
    }

    /// A request that parses (mostly: some fields take values the rules refuse), with one of
    /// several kinds of `requestId`.
    fn request(&mut self) -> Value {
        const USERS: [&str; 4] = ["alice", "bob", "carol", ""];
        const CONVERSATIONS: [&str; 4] = ["dm:alice:bob", "grp:g1", "dm:bob:carol", ""];
        let kind = self.or0();
        let a = self.or0();
        let b = self.or0();
        let user = USERS[usize::from(a) % 4];
        let conversation = CONVERSATIONS[usize::from(a) % 4];
        let number = i64::from(b) - 8;
        let (kind, params) = match kind % 20 {
            0 => (3, json!({})),
            1 => (21, json!({})),
            2 => (
                7,
                json!({"openid": user, "userName": "B", "loginStatus": if b & 1 == 0 { "1" } else { "0" }}),
            ),
            3 => (
                1,
                json!({"toMessageId": user, "message": "hi", "clientMsgId": format!("c{b}")}),
            ),
            4 => (
                9,
                json!({"toMessageId": "g1", "message": "hi", "fileType": number}),
            ),
            // ACK: `a` picks one of the messages pushed so far (the driver fills it in).
            5 => (15, json!({"msgid": Value::Null, "pick": a})),
            6 => (13, json!({})),
            7 => (
                13,
                json!({"conversationId": conversation, "afterSeq": number, "limit": b}),
            ),
            8 => (8, json!({"name": "g", "members": [user]})),
            9 => (11, json!({"groupId": "g1", "members": [user]})),
            10 => (12, json!({"groupId": "g1"})),
            11 => (18, json!({"conversationId": conversation, "seq": number})),
            12 => (
                24,
                json!({"conversationId": conversation, "state": "start"}),
            ),
            13 => (32, json!({"messageId": format!("m{b}")})),
            14 => (26, json!({"users": [user]})),
            15 => (34, json!({"userId": user})),
            16 => (35, json!({"userId": user})),
            17 => (28, json!({"groupId": "g1", "members": [user]})),
            18 => (29, json!({"groupId": "g1", "name": "n"})),
            _ => (
                31,
                json!({"groupId": "g1", "userId": user, "role": "admin"}),
            ),
        };
        let mut frame = json!({"type": kind, "params": params});
        let request_id = match self.or0() % 6 {
            0 => None,
            1 => Some(json!(format!("r{b}"))),
            2 => Some(json!(b)),
            3 => Some(json!(-1.5)),
            4 => Some(Value::Null),
            _ => Some(json!({"x": 1})),
        };
        if let Some(id) = request_id {
            frame["requestId"] = id;
        }
        frame
    }
}
