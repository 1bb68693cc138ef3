//! The sans-IO core's deadlines and flow control: heartbeat, timelife, the window, calls in
//! flight, retried reads — with made-up instants.

use std::time::Duration;

use serde_json::json;

use chat_protocol::RequestId;

use super::harness::{call, close, Harness};
use super::{live, written, HEARTBEAT, TIMELIFE, WALL};
use crate::error::Error;
use crate::session::core::{Effect, Incoming, MAX_OPS};
use crate::session::ops::{Call, Done, Op, Token};
use crate::store::Backlog;

#[test]
fn silence_for_three_heartbeats_closes_4000_and_frames_keep_it_open() {
    let mut h = Harness::new();
    assert!(h.advance(HEARTBEAT * 2).is_empty());
    h.c.handle_frame(Incoming::Control, h.now);
    assert!(
        h.advance(HEARTBEAT * 2).is_empty(),
        "a ping moved the deadline"
    );
    assert_eq!(h.advance(HEARTBEAT), vec![close(4000, "heartbeat timeout")]);
}

#[test]
fn timelife_without_renew_closes_4002() {
    let mut h = Harness::new();
    let start = h.now;
    let mut closed = Vec::new();
    while closed.is_empty() {
        h.text(json!({"type": 3}));
        closed = h
            .advance(HEARTBEAT)
            .into_iter()
            .filter(|e| matches!(e, Effect::Close(_)))
            .collect();
    }
    assert_eq!(closed, vec![close(4002, "timelife expired")]);
    let lived = h.now - start;
    assert!(
        lived >= TIMELIFE && lived < TIMELIFE + HEARTBEAT,
        "{lived:?}"
    );
}

#[test]
fn a_full_window_queues_and_an_ack_lets_the_next_one_out() {
    let mut h = Harness::new();
    for seq in 1..=4 {
        assert_eq!(written(&h.event(live(seq))).len(), 1);
    }
    assert!(h.event(live(5)).is_empty(), "window of 4 is full");
    let effects = h.text(json!({"type": 15, "params": {"msgid": format!("{:032x}", 1)}}));
    assert_eq!(written(&effects)[0]["msg"]["params"]["seq"], 5);
    assert!(
        h.event(live(2)).is_empty(),
        "already in flight: not sent twice"
    );
}

#[test]
fn reading_stops_while_too_many_calls_are_in_flight() {
    let mut h = Harness::new();
    for _ in 0..MAX_OPS {
        assert!(h.c.wants_frames());
        h.text(json!({"type": 13}));
    }
    assert!(!h.c.wants_frames());
    h.finish(Ok(Done::Frame("{}".into())), None, false);
    assert!(h.c.wants_frames());
}

#[test]
fn a_failed_call_is_answered_with_its_error_and_a_silent_one_is_not() {
    let mut h = Harness::new();
    h.text(json!({"type": 13, "requestId": "s"}));
    let e = Error::Unavailable("store write failed; try again".into());
    let error = &written(&h.finish(Err(e), Some("s".into()), false))[0];
    assert_eq!(
        error,
        &json!({"type": 500, "status": 503, "requestId": "s",
                "params": {"code": "unavailable", "message": "store write failed; try again"}})
    );
    let e = Error::Unavailable("down".into());
    assert!(h.finish(Err(e), None, true).is_empty());
}

#[test]
fn a_failed_catch_up_read_waits_then_tries_again() {
    let mut h = Harness::new();
    h.c.handle_resync();
    let backlog = Backlog {
        conversation_id: "dm:alice:bob".into(),
        after_seq: 0,
        last_seq: 1,
    };
    let effects = h.effects();
    assert!(matches!(
        &effects[0],
        Effect::Call(Call {
            op: Op::Backlog,
            ..
        })
    ));
    let read = h.finish(Ok(Done::Backlog(vec![backlog])), None, true);
    let Effect::Read(req) = &read[0] else {
        panic!("{read:?}")
    };
    h.c.handle_page(req, Err(Error::Unavailable("db".into())), h.now);
    assert!(h.effects().is_empty(), "paused");
    assert!(matches!(
        h.advance(Duration::from_millis(200))[..],
        [Effect::Read(_)]
    ));
}

#[test]
fn welcome_and_renew_stop_at_the_tokens_exp_which_closes_4002() {
    let (mut h, first) = Harness::with_token_expiring(WALL + 5_000);
    let welcome = &written(&first)[0]["params"];
    assert_eq!(
        (welcome["timelife"].as_u64(), welcome["expiresAt"].as_i64()),
        (Some(5), Some(WALL + 5_000))
    );
    h.now += Duration::from_secs(1);
    let renewed = written(&h.text(json!({"type": 21, "requestId": "r"})))[0].clone();
    assert_eq!(
        renewed["params"],
        json!({"timelife": 4, "expiresAt": WALL + 5_000})
    );
    h.text(json!({"type": 3}));
    assert_eq!(
        h.advance(Duration::from_secs(4)),
        vec![close(4002, "token expired")]
    );
}

#[test]
fn renew_with_a_token_waits_for_its_check_then_moves_the_cap() {
    let (mut h, _) = Harness::with_token_expiring(WALL + 5_000);
    let token = "a.b.c".to_owned();
    let effects = h.text(json!({"type": 21, "params": {"token": token}, "requestId": "r"}));
    assert_eq!(
        effects,
        vec![call(
            Op::Renew {
                token: Token(token)
            },
            "r"
        )]
    );
    // Refused (another user): the error, and the cap stays.
    let refused = h.finish(
        Err(Error::Forbidden("other user".into())),
        Some(RequestId::from("r")),
        false,
    );
    assert_eq!(written(&refused)[0]["status"], 403);
    h.text(json!({"type": 21, "params": {"token": "d.e.f"}, "requestId": "r"}));
    let ok = h.finish(
        Ok(Done::Token {
            expires_ms: WALL + 3_600_000,
        }),
        Some(RequestId::from("r")),
        false,
    );
    let reply = &written(&ok)[0];
    assert_eq!(
        reply["params"],
        json!({"timelife": 1800, "expiresAt": WALL + 1_800_000}),
        "{reply}"
    );
    h.text(json!({"type": 3}));
    assert!(
        h.advance(Duration::from_secs(6)).is_empty(),
        "past the first token's exp"
    );
}
