//! The sans-IO core, one input at a time: no socket, no store, no clock.

use std::sync::Arc;
use std::time::Duration;

use chat_protocol::{ConversationId, GroupId, KickReason, MessageId, RequestId, UserId};
use serde_json::{json, Value};

use super::{live, stored, written, ACK_TIMEOUT, WALL};
use crate::delivery::PullRequest;
use crate::hub::{DrainNotice, Outbound};
use crate::session::core::{Effect, Ending, Incoming};
use crate::session::ops::{Call, Done, Op};
use crate::store::{Backlog, Page};

use super::harness::{call, close, Harness};

#[test]
fn welcome_comes_first_then_the_catch_up_read() {
    let mut h = Harness::fresh();
    let effects = h.effects();
    let welcome = &written(&effects)[0];
    assert_eq!(
        welcome,
        &json!({"type": 20, "status": 200, "params": {
            "sessionId": "gw-0_bob_7", "userId": "bob", "deviceId": "phone", "server": "gw-0",
            "timelife": 1800, "heartbeat": 30, "expiresAt": WALL + 1_800_000}})
    );
    assert_eq!(
        effects[1],
        Effect::Call(Call {
            op: Op::Backlog,
            request_id: None
        })
    );
    // The backlog names a conversation to catch up: the core asks for its first page.
    let backlog = Backlog {
        conversation_id: "dm:alice:bob".into(),
        after_seq: 0,
        last_seq: 2,
    };
    let read = h.finish(Ok(Done::Backlog(vec![backlog])), None, true);
    let req = PullRequest {
        conversation_id: "dm:alice:bob".into(),
        after_seq: 0,
        limit: 4,
    };
    assert_eq!(read, vec![Effect::Read(req.clone())]);
    let page = Page {
        messages: vec![stored(1), stored(2)],
        has_more: false,
    };
    h.c.handle_page(&req, Ok(page), h.now);
    let pushed = written(&h.effects());
    assert_eq!(
        pushed
            .iter()
            .map(|p| p["msg"]["params"]["seq"].clone())
            .collect::<Vec<_>>(),
        vec![json!(1), json!(2)]
    );
}

#[test]
fn a_whole_connection_send_push_ack_retry_renew_drain() {
    let mut h = Harness::new();
    send_and_reply(&mut h);
    push_ack_and_retry(&mut h);
    renew_then_drain(&mut h);
}

fn send_and_reply(h: &mut Harness) {
    // SEND: a store call; its reply is written when it finishes.
    let effects = h.text(
        json!({"type": 1, "params": {"toMessageId": "alice", "message": "hi",
        "clientMsgId": "c-1"}, "requestId": "r-1"}),
    );
    let send = Op::Send {
        group: false,
        to: "alice".into(),
        message: "hi".into(),
        file_type: 0,
        file: None,
        client_msg_id: Some("c-1".into()),
    };
    assert_eq!(effects, vec![call(send, "r-1")]);
    let reply = r#"{"type":0,"status":200,"params":{},"requestId":"r-1"}"#.to_owned();
    let effects = h.finish(Ok(Done::Frame(reply.clone())), Some("r-1".into()), false);
    assert_eq!(effects, vec![Effect::Write(reply)]);
}

fn push_ack_and_retry(h: &mut Harness) {
    // A push for this device: an envelope for this session, in the window.
    let pushed = written(&h.event(live(1)));
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0]["sessionId"], "gw-0_bob_7");
    assert_eq!(pushed[0]["to"], json!(["bob"]));
    assert_eq!(pushed[0]["retry"], false);
    assert_eq!(pushed[0]["msg"]["params"]["message"], "hello 1");

    // ACK: frees the slot and records it (a store call); not rate-limited.
    let id = format!("{:032x}", 1);
    let effects = h.text(json!({"type": 15, "params": {"msgid": id}, "requestId": 2}));
    let ack = Op::Ack {
        msgid: MessageId::parse(id).unwrap(),
    };
    assert_eq!(
        effects,
        vec![Effect::Call(Call {
            op: ack,
            request_id: Some(RequestId::from(2))
        })]
    );

    // A push left unacked is resent once with retry: true, then given up.
    h.event(live(2));
    let retry = written(&h.advance(ACK_TIMEOUT));
    assert_eq!(retry.len(), 1);
    assert_eq!(
        (
            retry[0]["retry"].clone(),
            retry[0]["msg"]["params"]["seq"].clone()
        ),
        (json!(true), json!(2))
    );
    assert!(
        written(&h.advance(ACK_TIMEOUT)).is_empty(),
        "resent once only"
    );
}

fn renew_then_drain(h: &mut Harness) {
    // RENEW: a fresh timelife from now, and the route refreshed.
    let effects = h.text(json!({"type": 21, "requestId": "rn"}));
    assert_eq!(effects[0], Effect::RefreshRoute);
    let renew = &written(&effects)[0];
    assert_eq!(renew["params"]["timelife"], 1800);
    assert_eq!(renew["params"]["expiresAt"], WALL + 20_000 + 1_800_000);

    // DRAIN: told the time left; at the deadline, queued pushes are flushed, then 1012.
    let deadline = h.now + Duration::from_secs(5);
    let drain = DrainNotice {
        deadline,
        reconnect_after: Duration::from_millis(1200),
    };
    let told = written(&h.event(Outbound::Drain(Box::new(drain))));
    assert_eq!(
        told[0],
        json!({"type": 22, "status": 200, "params": {"timelife": 5, "reconnectAfterMs": 1200, "reason": "drain"}})
    );
    let effects = h.text(json!({"type": 21}));
    assert_eq!(
        written(&effects)[0]["params"]["timelife"],
        5,
        "renew while draining: time left"
    );
    assert_eq!(
        h.advance(Duration::from_secs(5)),
        vec![Effect::Close(Ending {
            close: Some((1012, "server restarting")),
            flush_inbox: true
        })]
    );
    // The shell then hands over what was queued; it is still written.
    assert_eq!(written(&h.event(live(3))).len(), 1);
}

#[test]
fn heartbeat_is_answered_at_once_and_refreshes_the_route() {
    let mut h = Harness::new();
    let effects = h.text(json!({"type": 3, "requestId": "hb"}));
    assert_eq!(effects[0], Effect::RefreshRoute);
    let reply = &written(&effects)[0];
    assert_eq!(
        (reply["type"].clone(), reply["requestId"].clone()),
        (json!(4), json!("hb"))
    );
    assert_eq!(reply["params"]["date"], "Mon Nov 23 01:25:03 UTC 2026");
}

#[test]
fn every_store_request_becomes_its_call() {
    let g = || GroupId::parse("g1").unwrap();
    let u = |s: &str| UserId::parse(s).unwrap();
    let cases = [
        (
            json!({"type": 9, "params": {"toMessageId": "g1", "message": "m", "fileType": "3"}}),
            Op::Send {
                group: true,
                to: "g1".into(),
                message: "m".into(),
                file_type: 3,
                file: None,
                client_msg_id: None,
            },
        ),
        (
            json!({"type": 8, "params": {"name": "team", "members": ["a", "a", "b"]}}),
            Op::CreateGroup {
                name: "team".into(),
                members: vec![u("a"), u("b")],
            },
        ),
        (
            json!({"type": 11, "params": {"groupId": "g1", "members": ["c"]}}),
            Op::AddMembers {
                group_id: g(),
                members: vec![u("c")],
            },
        ),
        (
            json!({"type": 12, "params": {"groupId": "g1"}}),
            Op::LeaveGroup { group_id: g() },
        ),
        (json!({"type": 13}), Op::Conversations),
        (
            json!({"type": 13, "params": {"conversationId": "dm:alice:bob", "afterSeq": 4, "limit": 500}}),
            Op::Read {
                conversation_id: ConversationId::parse("dm:alice:bob").unwrap(),
                after_seq: 4,
                limit: 200,
            },
        ),
        (
            json!({"type": 7, "params": {"openid": "bob", "userName": "Bobby"}}),
            Op::Register {
                name: "Bobby".into(),
            },
        ),
    ];
    for (frame, op) in cases {
        let mut h = Harness::new();
        assert_eq!(
            h.text(frame.clone()),
            vec![Effect::Call(Call {
                op,
                request_id: None
            })],
            "{frame}"
        );
    }
}

#[test]
fn register_checks_the_user_and_logs_out() {
    let mut h = Harness::new();
    let refused =
        written(&h.text(json!({"type": 7, "params": {"openid": "eve"}, "requestId": "x"})));
    assert_eq!(
        refused[0],
        json!({"type": 500, "status": 403, "requestId": "x",
               "params": {"code": "forbidden", "message": "openid does not match the token's user"}})
    );
    // The device's tokens are revoked (a store call) before the reply and the close.
    let effects = h
        .text(json!({"type": 7, "params": {"openid": "bob", "loginStatus": 0}, "requestId": "lo"}));
    assert_eq!(effects, vec![call(Op::Logout, "lo")]);
    let reply = json!({"type": 7, "status": 200, "params": {"openid": "bob", "loginStatus": "0"}, "requestId": "lo"});
    let effects = h.finish(
        Ok(Done::LoggedOut(reply.to_string())),
        Some(RequestId::from("lo")),
        false,
    );
    assert_eq!(written(&effects)[0], reply);
    assert_eq!(effects.last(), Some(&close(1000, "logged out")));
    assert!(!h.c.wants_frames(), "nothing is read after the close");
}

#[test]
fn bad_frames_get_errors_and_the_connection_stays() {
    let mut h = Harness::new();
    for (frame, rid, message) in [
        ("not json".to_owned(), Value::Null, None),
        (
            json!({"type": 77, "requestId": 5}).to_string(),
            json!(5),
            Some("unknown frame type 77"),
        ),
        (
            json!({"type": 1, "params": {"toMessageId": ""}, "requestId": "e"}).to_string(),
            json!("e"),
            Some("\"toMessageId\" must be 1-128 bytes"),
        ),
    ] {
        h.c.handle_frame(Incoming::Text(&frame), h.now);
        let error = &written(&h.effects())[0];
        assert_eq!(
            (error["type"].clone(), error["status"].clone()),
            (json!(500), json!(400))
        );
        assert_eq!(error.get("requestId").cloned().unwrap_or(Value::Null), rid);
        if let Some(m) = message {
            assert_eq!(error["params"]["message"], m);
        }
    }
    assert!(h.c.wants_frames());
}

#[test]
fn binary_oversized_and_closing_frames_end_the_connection() {
    let mut h = Harness::new();
    h.c.handle_frame(Incoming::Binary, h.now);
    assert_eq!(
        h.effects(),
        vec![close(1003, "binary frames are not supported")]
    );

    let mut h = Harness::new();
    let big = "x".repeat(64 * 1024 + 1);
    h.c.handle_frame(Incoming::Text(&big), h.now);
    assert_eq!(h.effects(), vec![close(1009, "frame larger than 64 KiB")]);

    let mut h = Harness::new();
    h.c.handle_frame(Incoming::Close, h.now);
    assert_eq!(
        h.effects(),
        vec![Effect::Close(Ending {
            close: None,
            flush_inbox: false
        })]
    );
}

#[test]
fn requests_beyond_the_burst_are_rate_limited_but_acks_are_not() {
    let mut h = Harness::new();
    for _ in 0..200 {
        h.text(json!({"type": 13}));
        h.finish(Ok(Done::Frame("{}".into())), None, false);
    }
    let limited = &written(&h.text(json!({"type": 13, "requestId": "over"})))[0];
    assert_eq!(limited["status"], 429);
    let ack = h.text(json!({"type": 15, "params": {"msgid": "m"}}));
    assert!(matches!(ack[0], Effect::Call(_)), "acks pass: {ack:?}");
    assert!(matches!(
        h.text(json!({"type": 3}))[0],
        Effect::RefreshRoute
    ));
}

#[test]
fn a_kick_says_why_and_closes_4001() {
    let mut h = Harness::new();
    let effects = h.event(Outbound::Kick(KickReason::Replaced));
    assert_eq!(
        written(&effects)[0],
        json!({"type": 23, "status": 200, "params": {"reason": "replaced"}})
    );
    assert_eq!(effects.last(), Some(&close(4001, "replaced")));
}

#[test]
fn notices_get_their_own_envelope_ids() {
    let mut h = Harness::new();
    let notice = crate::model::DeliveredNotice {
        message_id: format!("{:032x}", 9),
        conversation_id: "dm:alice:bob".into(),
        seq: 9,
        by: "alice".into(),
    };
    let n = Arc::new(notice.prepare());
    let one = &written(&h.event(Outbound::Notice(n.clone())))[0];
    let two = &written(&h.event(Outbound::Notice(n)))[0];
    assert_eq!(one["msg"]["type"], 17);
    assert_ne!(one["messageId"], two["messageId"]);
}
