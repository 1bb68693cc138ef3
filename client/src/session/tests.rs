use serde_json::{json, Value};

use super::*;

fn send(to: &str, text: &str, cmid: &str) -> Request {
    Request::Send {
        to: chat_protocol::UserId::parse(to).unwrap(),
        message: text.into(),
        file_type: 0,
        file: None,
        client_msg_id: Some(cmid.into()),
    }
}

fn drain(s: &mut Session) -> (Vec<Value>, Vec<Event>, Vec<Duration>) {
    let (mut writes, mut events, mut reconnects) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(effect) = s.poll() {
        match effect {
            Effect::Write(text) => writes.push(serde_json::from_str(&text).unwrap()),
            Effect::Event(e) => events.push(e),
            Effect::Reconnect { after } => reconnects.push(after),
        }
    }
    (writes, events, reconnects)
}

fn received(request_id: &str, cmid: &str, message_id: &str, seq: i64) -> String {
    json!({"type": 0, "status": 200, "requestId": request_id, "params": {
        "date": "d", "message": "m", "messageId": message_id, "seq": seq,
        "conversationId": "dm:alice:bob", "clientMsgId": cmid}})
    .to_string()
}

fn push(message_id: &str, seq: i64, retry: bool) -> String {
    json!({"activeTime": 1, "from": "system", "messageId": message_id, "msg": {"type": 2,
        "status": 200, "params": {
            "toUser": {"openid": "alice", "loginStatus": "1", "userName": "Alice"},
            "fromUser": {"openid": "bob", "loginStatus": "1", "userName": "Bob"},
            "message": format!("m{seq}"), "fileType": "0", "conversationId": "dm:alice:bob",
            "seq": seq, "clientMsgId": null}},
        "msgType": 1, "requestId": "q", "sessionId": "s", "to": ["alice"], "trigger": 1,
        "retry": retry})
    .to_string()
}

fn id(n: u32) -> String {
    format!("{n:032x}")
}

#[test]
fn a_send_is_written_again_on_every_new_connection_until_reply_0() {
    let mut s = Session::new();
    let now = Instant::now();
    let rid = s.request(send("bob", "hi", "k-1"));
    let (writes, _, _) = drain(&mut s);
    assert_eq!(writes[0]["params"]["clientMsgId"], "k-1");
    assert_eq!(writes[0]["requestId"], "c1");
    s.connected();
    let (again, _, _) = drain(&mut s);
    assert_eq!(again, writes, "the same frame, same clientMsgId");
    s.on_text(&received("c1", "k-1", &id(1), 1), now).unwrap();
    let (_, events, _) = drain(&mut s);
    assert!(
        matches!(&events[..], [Event::Reply { request_id, reply: Reply::Received(_) }]
        if *request_id == rid)
    );
    assert_eq!(s.unanswered(), 0);
    s.connected();
    assert_eq!(drain(&mut s).0.len(), 0, "answered: not written again");
}

#[test]
fn an_error_answering_a_send_ends_it() {
    let mut s = Session::new();
    s.request(send("bob", "hi", "k-1"));
    drain(&mut s);
    let error = r#"{"type":500,"status":503,"params":{"code":"unavailable","message":"x"},"requestId":"c1"}"#;
    s.on_text(error, Instant::now()).unwrap();
    let (_, events, _) = drain(&mut s);
    assert!(matches!(&events[..], [Event::Error { error, .. }] if error.status == 503));
    assert_eq!((s.unanswered(), s.in_flight()), (0, 0));
}

#[test]
fn every_push_is_acked_and_passed_on_once() {
    let mut s = Session::new();
    let now = Instant::now();
    s.on_text(&push(&id(7), 1, false), now).unwrap();
    s.on_text(&push(&id(7), 1, true), now).unwrap();
    let (writes, events, _) = drain(&mut s);
    assert_eq!(writes.len(), 2, "both copies acked");
    for w in &writes {
        assert_eq!(
            w,
            &json!({"type": 15, "params": {"from": "client", "msgid": id(7)}})
        );
    }
    assert_eq!(events.len(), 2, "one message, one duplicate: {events:?}");
    assert!(matches!(&events[0], Event::Message(e) if e.message_id == id(7)));
    assert!(matches!(&events[1], Event::Duplicate(e) if e.message_id == id(7)));
}

#[test]
fn a_gap_that_fills_by_itself_is_not_synced() {
    let mut s = Session::new();
    let now = Instant::now();
    s.on_text(&push(&id(1), 1, false), now).unwrap();
    s.on_text(&push(&id(3), 3, false), now).unwrap();
    assert_eq!(s.next_timeout(), Some(now + GAP_WAIT));
    s.on_text(&push(&id(2), 2, false), now).unwrap();
    assert_eq!(s.next_timeout(), None);
    s.on_timeout(now + GAP_WAIT);
    let (writes, events, _) = drain(&mut s);
    assert!(
        writes.iter().all(|w| w["type"] == 15),
        "acks only: {writes:?}"
    );
    assert_eq!(events.len(), 3);
}

#[test]
fn a_gap_still_open_after_the_wait_is_synced_from_the_last_contiguous_seq() {
    let mut s = Session::new();
    let now = Instant::now();
    s.on_text(&push(&id(1), 1, false), now).unwrap();
    s.on_text(&push(&id(4), 4, false), now).unwrap();
    drain(&mut s);
    s.on_timeout(now + GAP_WAIT / 2);
    assert!(drain(&mut s).0.is_empty(), "not yet");
    s.on_timeout(now + GAP_WAIT);
    let (writes, _, _) = drain(&mut s);
    assert_eq!(writes.len(), 1);
    let sync = &writes[0];
    assert_eq!(sync["type"], 13);
    assert_eq!(
        sync["params"],
        json!({"conversationId": "dm:alice:bob", "afterSeq": 1, "limit": 200})
    );
    // The page: 2 and 3 are new, 4 a duplicate; all acked, the gap closed, nothing reported twice.
    let page = json!({"type": 14, "status": 200, "requestId": sync["requestId"], "params": {
        "conversationId": "dm:alice:bob", "hasMore": false, "messages": [
            serde_json::from_str::<Value>(&push(&id(2), 2, false)).unwrap(),
            serde_json::from_str::<Value>(&push(&id(3), 3, false)).unwrap(),
            serde_json::from_str::<Value>(&push(&id(4), 4, false)).unwrap()]}});
    s.on_text(&page.to_string(), now + GAP_WAIT).unwrap();
    let (writes, events, _) = drain(&mut s);
    assert_eq!(writes.len(), 3);
    let ids: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::Message(m) => m.message_id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ids,
        [id(2), id(3)],
        "the SYNC is the session's own, not an event"
    );
    assert_eq!((s.next_timeout(), s.in_flight()), (None, 0));
}

#[test]
fn own_reply_0_counts_in_the_conversation_seqs() {
    let mut s = Session::new();
    let now = Instant::now();
    s.on_text(&push(&id(1), 1, false), now).unwrap();
    s.request(send("bob", "mine", "k-1"));
    s.on_text(&received("c1", "k-1", &id(2), 2), now).unwrap();
    s.on_text(&push(&id(3), 3, false), now).unwrap();
    assert_eq!(s.next_timeout(), None, "seq 2 was ours: no gap");
}

#[test]
fn drain_asks_for_a_new_connection_after_reconnect_after_ms() {
    let mut s = Session::new();
    let frame = r#"{"type":22,"status":200,"params":{"timelife":30,"reconnectAfterMs":700,"reason":"drain"}}"#;
    s.on_text(frame, Instant::now()).unwrap();
    let (_, events, reconnects) = drain(&mut s);
    assert!(matches!(&events[..], [Event::Drain(d)] if d.timelife == 30));
    assert_eq!(reconnects, [Duration::from_millis(700)]);
}

#[test]
fn kicked_and_delivered_are_told() {
    let mut s = Session::new();
    let now = Instant::now();
    s.on_text(
        r#"{"type":23,"status":200,"params":{"reason":"replaced"}}"#,
        now,
    )
    .unwrap();
    let notice = json!({"activeTime": 1, "from": "system", "messageId": id(9), "msg": {"type": 17,
        "status": 200, "params": {"messageId": id(2), "conversationId": "dm:alice:bob", "seq": 2,
        "by": "bob"}}, "msgType": 1, "requestId": "q", "sessionId": "s", "to": ["alice"],
        "trigger": 1, "retry": false});
    s.on_text(&notice.to_string(), now).unwrap();
    let (writes, events, _) = drain(&mut s);
    assert!(writes.is_empty(), "a notice is not acked");
    assert!(
        matches!(&events[..], [Event::Kicked(KickReason::Replaced), Event::Delivered(d)]
        if d.by == "bob")
    );
}
