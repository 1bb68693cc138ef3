use super::*;

fn parse(s: &str) -> Result<Request, String> {
    ClientFrame::parse(s)
        .map(|f| f.request)
        .map_err(|e| e.message)
}

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

#[test]
fn parses_seed_send_frame() {
    let r = parse(r#"{"type":1,"params":{"toMessageId":"bob","message":"20240102","fileType":0}}"#)
        .unwrap();
    assert_eq!(
        r,
        Request::Send {
            to: user("bob"),
            message: "20240102".into(),
            file_type: 0,
            file: None,
            client_msg_id: None
        }
    );
}

#[test]
fn file_takes_a_file_id_object() {
    let r = parse(r#"{"type":1,"params":{"toMessageId":"bob","message":"","fileType":1,"file":{"fileId":"f1"}}}"#)
        .unwrap();
    assert!(matches!(r, Request::Send { file: Some(ref f), file_type: 1, .. } if f == "f1"));
    for bad in [
        r#""f1""#,
        r#"{}"#,
        r#"{"fileId":7}"#,
        r#"{"fileId":"a/b"}"#,
        r#"{"fileId":""}"#,
    ] {
        let text =
            format!(r#"{{"type":9,"params":{{"toMessageId":"g","message":"","file":{bad}}}}}"#);
        let err = ClientFrame::parse(&text).unwrap_err();
        assert!(err.message.contains("\"file\""), "{bad}: {}", err.message);
    }
    let frame = ClientFrame::new(r, None).to_json();
    assert!(frame.contains(r#""file":{"fileId":"f1"}"#), "{frame}");
}

#[test]
fn file_type_accepts_numeric_strings() {
    let r = parse(r#"{"type":9,"params":{"toMessageId":"g1","message":"x","fileType":"2","clientMsgId":"c"}}"#).unwrap();
    assert!(matches!(r, Request::SendGroup { file_type: 2, .. }));
}

#[test]
fn request_id_is_kept_even_on_error() {
    let err = ClientFrame::parse(r#"{"type":1,"params":{},"requestId":"r-9"}"#).unwrap_err();
    assert_eq!(err.request_id, Some(RequestId::from("r-9")));
    assert_eq!(err.message, "missing \"toMessageId\"");
    let err = ClientFrame::parse(r#"{"type":77,"requestId":7}"#).unwrap_err();
    assert_eq!(err.request_id, Some(RequestId::from(7)));
}

#[test]
fn rejects_bad_shapes() {
    for bad in [
        "not json",
        "[1,2]",
        r#"{"params":{}}"#,
        r#"{"type":"1"}"#,
        r#"{"type":-1}"#,
        r#"{"type":1e400}"#,
        r#"{"type":99999999999999999999999}"#,
        r#"{"type":77}"#,
        r#"{"type":1,"params":[]}"#,
        r#"{"type":1,"params":{"toMessageId":5,"message":"x"}}"#,
        r#"{"type":1,"params":{"toMessageId":"b","message":"x","fileType":1e300}}"#,
        r#"{"type":1,"params":{"toMessageId":"b","message":"x","clientMsgId":""}}"#,
        r#"{"type":13,"params":{"conversationId":"c","afterSeq":-1}}"#,
        r#"{"type":13,"params":{"conversationId":"c","afterSeq":18446744073709551615}}"#,
        r#"{"type":13,"params":{"conversationId":"c","limit":0}}"#,
        r#"{"type":8,"params":{"name":"","members":[]}}"#,
        r#"{"type":11,"params":{"groupId":"g"}}"#,
        r#"{"type":7,"params":{"openid":"a","loginStatus":"2"}}"#,
        r#"{"type":15,"params":{"msgid":""}}"#,
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        parse(r#"{"type":1,"params":{"toMessageId":"","message":"x"}}"#).unwrap_err(),
        "\"toMessageId\" must be 1-128 bytes"
    );
}

#[test]
fn sync_limit_is_clamped_and_defaulted() {
    assert_eq!(
        parse(r#"{"type":13,"params":{"conversationId":"c","afterSeq":3,"limit":5000}}"#).unwrap(),
        Request::Sync {
            conversation_id: Some(ConversationId::parse("c").unwrap()),
            after_seq: 3,
            limit: 200
        }
    );
    assert_eq!(
        parse(r#"{"type":13}"#).unwrap(),
        Request::Sync {
            conversation_id: None,
            after_seq: 0,
            limit: 200
        }
    );
}

#[test]
fn members_are_deduplicated() {
    let r = parse(r#"{"type":8,"params":{"name":"g","members":["a","b","a"]}}"#).unwrap();
    assert_eq!(
        r,
        Request::CreateGroup {
            name: "g".into(),
            members: vec![user("a"), user("b")]
        }
    );
}

#[test]
fn every_request_round_trips_through_its_json() {
    let group = GroupId::parse("g1").unwrap();
    let requests = [
        Request::Register {
            openid: "bob".into(),
            user_name: Some("Bobby".into()),
            login_status: LoginStatus::Online,
        },
        Request::Register {
            openid: "bob".into(),
            user_name: None,
            login_status: LoginStatus::Offline,
        },
        Request::Send {
            to: user("bob"),
            message: "hi".into(),
            file_type: 3,
            file: None,
            client_msg_id: Some("c-1".into()),
        },
        Request::SendGroup {
            group_id: group.clone(),
            message: "hi".into(),
            file_type: 0,
            file: None,
            client_msg_id: None,
        },
        Request::CreateGroup {
            name: "team".into(),
            members: vec![user("a"), user("b")],
        },
        Request::AddMembers {
            group_id: group.clone(),
            members: vec![],
        },
        Request::LeaveGroup { group_id: group },
        Request::Ack {
            msgid: MessageId::parse("m1").unwrap(),
        },
        Request::Sync {
            conversation_id: Some(ConversationId::parse("dm:a:b").unwrap()),
            after_seq: 4,
            limit: 10,
        },
        Request::Sync {
            conversation_id: None,
            after_seq: 0,
            limit: 200,
        },
        Request::Heartbeat,
        Request::Renew { token: None },
        Request::Renew {
            token: Some("a.b.c".into()),
        },
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let frame = ClientFrame::new(request, Some(RequestId::from(i as u64)));
        assert_eq!(ClientFrame::parse(&frame.to_json()).unwrap(), frame);
    }
}

/// The fast path gives every frame it reads exactly what the general path gives, over every
/// combination of present, absent, null, mistyped and rule-breaking parameters.
#[test]
fn the_fast_path_agrees_with_the_general_one() {
    let long = format!("\"{}\"", "x".repeat(200));
    let kinds = ["1", "9", "15", "3", "21", "8", "1.0"];
    let to = [
        "",
        "\"toMessageId\":null,",
        "\"toMessageId\":\"bob\",",
        "\"toMessageId\":\"\",",
        "\"toMessageId\":5,",
        "\"toMessageId\":\"a\\\"b\",",
    ];
    let message = [
        "",
        "\"message\":null,",
        "\"message\":\"hi\",",
        "\"message\":\"e\\n\\u00e9\",",
        "\"message\":3,",
    ];
    let file_type = [
        "",
        "\"fileType\":null,",
        "\"fileType\":0,",
        "\"fileType\":7,",
        "\"fileType\":-1,",
        "\"fileType\":2147483648,",
        "\"fileType\":\"2\",",
        "\"fileType\":1.5,",
        "\"fileType\":true,",
        "\"fileType\":1,\"file\":{\"fileId\":\"f1\"},",
        "\"file\":null,",
    ];
    let cmid = [
        String::new(),
        "\"clientMsgId\":null,".into(),
        "\"clientMsgId\":\"c1\",".into(),
        "\"clientMsgId\":\"\",".into(),
        format!("\"clientMsgId\":{long},"),
    ];
    let msgid = [
        "",
        "\"msgid\":\"m1\",",
        "\"msgid\":\"\",",
        "\"msgid\":null,",
        "\"msgid\":3,",
        "\"msgid\":\"m1\",\"msgid\":\"m2\",",
    ];
    let request_id = [
        "",
        ",\"requestId\":\"r\"",
        ",\"requestId\":7",
        ",\"requestId\":null",
        ",\"requestId\":{}",
    ];
    let (mut fast, mut total) = (0, 0);
    for k in kinds {
        for t in to {
            for m in message {
                for f in file_type {
                    for c in &cmid {
                        for a in msgid {
                            for r in request_id {
                                let params = format!("{t}{m}{f}{c}{a}\"z\":1");
                                let text = format!("{{\"type\":{k},\"params\":{{{params}}}{r}}}");
                                total += 1;
                                if let Some(frame) = fast::parse(&text) {
                                    fast += 1;
                                    assert_eq!(
                                        Ok(frame),
                                        ClientFrame::parse_general(&text),
                                        "{text}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        fast > 1000 && fast < total,
        "{fast} of {total} frames took the fast path"
    );
    // Not an object, or no params: the general path's answer.
    for text in [
        r#"{"type":1,"params":"x"}"#,
        r#"{"type":15}"#,
        r#"{"type":15,"params":null}"#,
        "[1]",
        "{",
    ] {
        assert!(fast::parse(text).is_none(), "{text}");
    }
}
