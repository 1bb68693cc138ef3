//! The planning decisions, case by case, without a database.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::*;
use crate::model::{direct_conversation_id, Target};
use crate::store::NewMessage;

fn msg(from: &str, to: &str, client_msg_id: Option<&str>) -> NewMessage {
    NewMessage {
        from: from.into(),
        from_name: from.to_uppercase(),
        to: to.into(),
        body: "hi".into(),
        file_type: 0,
        file: None,
        client_msg_id: client_msg_id.map(Into::into),
        request_id: "r".into(),
    }
}

fn stored(from: &str, conv: &str, seq: i64, to: &str) -> StoredMessage {
    StoredMessage {
        message_id: format!("{conv}-{seq}"),
        conversation_id: conv.into(),
        seq,
        from: from.into(),
        from_name: from.into(),
        target: Target::Direct {
            to: to.into(),
            to_name: to.into(),
        },
        body: "hi".into(),
        file_type: 0,
        file: None,
        client_msg_id: Some("c1".into()),
        created_at: 1,
        request_id: "r".into(),
        recalled: false,
        system: None,
    }
}

#[test]
fn sends_are_duplicates_refused_or_new() {
    let (a, b, c, d, e) = (
        msg("alice", "bob", Some("c1")),
        msg("alice", "bob", Some("c2")),
        msg("alice", "bob", Some("c2")),
        msg("alice", "g1", None),
        msg("carol", "g2", None),
    );
    let sends = [
        (&a, false),
        (&b, false),
        (&c, false),
        (&d, true),
        (&e, true),
    ];
    let lookups = Lookups {
        existing: vec![stored("alice", "dm", 4, "bob")],
        groups: vec![("g2".into(), "grp:g2".into())],
        members: vec![
            ("grp:g2".into(), "dave".into()),
            ("grp:g2".into(), "carol".into()),
        ],
        blocked: Vec::new(),
    };
    let names = HashMap::from([("bob".to_owned(), "Bob".to_owned())]);
    let plans = plan_sends(&sends, lookups, &names);
    assert!(matches!(&plans[0], Plan::Duplicate(m) if m.seq == 4));
    assert!(
        matches!(&plans[1], Plan::New { target: Target::Direct { to_name, .. }, .. } if to_name == "Bob")
    );
    assert!(matches!(plans[2], Plan::DuplicateOf(1)));
    assert!(matches!(&plans[3], Plan::Refused(e) if e.status() == 404));
    assert!(matches!(&plans[4], Plan::New { members, .. } if members == &["carol", "dave"]));
}

#[test]
fn only_recipients_who_block_someone_are_looked_up_and_blocked_senders_refused() {
    let (a, b, c, g) = (
        msg("mallory", "alice", None),
        msg("bob", "alice", None),
        msg("mallory", "carol", None),
        msg("mallory", "alice", None),
    );
    let sends: Vec<SendRequest<'_>> = vec![(&a, false), (&b, false), (&c, false), (&g, true)];
    let names = HashMap::from([
        ("alice".to_owned(), "Alice".to_owned()),
        ("carol".to_owned(), "Carol".to_owned()),
    ]);
    // Carol's blocking flag is not known yet: she is looked up again, with it.
    let blocking = HashMap::from([("alice".to_owned(), true)]);
    assert_eq!(unnamed_recipients(&sends, &names, &blocking), vec!["carol"]);
    let blocking = HashMap::from([("alice".to_owned(), true), ("carol".to_owned(), false)]);
    assert!(unnamed_recipients(&sends, &names, &blocking).is_empty());
    assert_eq!(
        blockable(&sends, &blocking),
        vec![("alice", "bob"), ("alice", "mallory")]
    );
    let lookups = Lookups {
        groups: vec![("alice".into(), "grp:alice".into())],
        members: vec![("grp:alice".into(), "mallory".into())],
        blocked: vec![("alice".into(), "mallory".into())],
        ..Lookups::default()
    };
    let plans = plan_sends(&sends, lookups, &names);
    assert!(matches!(&plans[0], Plan::Refused(e) if e.status() == 403));
    assert!(matches!(&plans[1], Plan::New { .. }));
    assert!(matches!(&plans[2], Plan::New { .. }));
    assert!(
        matches!(&plans[3], Plan::New { .. }),
        "a block does not reach group messages"
    );
}

#[test]
fn non_members_are_refused() {
    let m = msg("eve", "g", None);
    let lookups = Lookups {
        groups: vec![("g".into(), "grp:g".into())],
        members: vec![("grp:g".into(), "alice".into())],
        ..Lookups::default()
    };
    let plans = plan_sends(&[(&m, true)], lookups, &HashMap::new());
    assert!(matches!(&plans[0], Plan::Refused(e) if e.status() == 403));
}

#[test]
fn seqs_count_down_from_each_allocated_last_seq() {
    let (a, b, c) = (
        msg("alice", "bob", None),
        msg("bob", "alice", None),
        msg("alice", "carol", None),
    );
    let sends = [(&a, false), (&b, false), (&c, false)];
    let plans = plan_sends(&sends, Lookups::default(), &HashMap::new());
    let new = new_sends(&plans);
    let counts = seq_counts(&new);
    let ab = direct_conversation_id("alice", "bob");
    let ac = direct_conversation_id("alice", "carol");
    assert_eq!(counts[ab.as_str()], 2);
    let (stored, marks) =
        build_messages(&sends, &plans, &counts, vec![(ab, 7), (ac, 1)], 5).unwrap();
    let seqs: Vec<i64> = stored.values().map(|m| m.seq).collect();
    assert_eq!(seqs, [6, 7, 1]);
    assert_eq!(marks[1].0, "bob");
    assert_eq!(marks[1].2, 7);
}

#[test]
fn a_missing_allocation_is_an_internal_error() {
    let a = msg("alice", "bob", None);
    let plans = plan_sends(&[(&a, false)], Lookups::default(), &HashMap::new());
    let counts = seq_counts(&new_sends(&plans));
    let err = build_messages(&[(&a, false)], &plans, &counts, vec![], 1).unwrap_err();
    assert!(err.is_internal());
}

#[test]
fn only_members_since_before_a_message_may_ack_it() {
    let m = stored("alice", "dm", 3, "bob");
    let found = vec![
        ("bob".to_owned(), m.clone(), Some(0)),
        ("alice".to_owned(), m.clone(), Some(0)),
        ("late".to_owned(), m.clone(), Some(3)),
        ("eve".to_owned(), m.clone(), None),
    ];
    let acks = [
        ("bob", "dm-3"),
        ("alice", "dm-3"),
        ("late", "dm-3"),
        ("eve", "dm-3"),
        ("bob", "nope"),
    ];
    let checks = check_acks(&acks, found);
    let statuses: Vec<u16> = checks
        .results
        .iter()
        .map(|r| r.as_ref().map(|_| 200).unwrap_or_else(|e| e.status()))
        .collect();
    assert_eq!(statuses, [200, 200, 403, 403, 404]);
    assert!(
        checks.results[0].as_ref().unwrap().1,
        "recipient: candidate"
    );
    assert!(!checks.results[1].as_ref().unwrap().1, "sender: not");
    assert_eq!(checks.marks, [("bob".to_owned(), "dm".to_owned(), 3)]);
    assert_eq!(
        checks.candidates,
        [(("bob".to_owned(), "dm".to_owned(), 3), "dm-3".to_owned())]
    );
}

#[test]
fn folding_writes_only_the_differences() {
    let by_pair = marks_by_pair([
        ("u".to_owned(), "c".to_owned(), 2),
        ("v".to_owned(), "c".to_owned(), 5),
        ("nobody".to_owned(), "c".to_owned(), 1),
    ]);
    let at =
        |u: &str, acked: i64, parked: Option<i64>| (u.to_owned(), "c".to_owned(), acked, parked);
    let (writes, fresh) = fold_acks(
        &by_pair,
        vec![at("u", 1, Some(3)), at("u", 1, Some(5)), at("v", 1, None)],
    );
    let m = |u: &str, s: i64| (u.to_owned(), "c".to_owned(), s);
    assert_eq!(
        writes,
        AckWrites {
            advance: vec![m("u", 3)],
            unpark: vec![m("u", 3)],
            park: vec![m("v", 5)],
            read: Vec::new(),
        }
    );
    assert_eq!(fresh, HashSet::from([m("u", 2), m("v", 5)]));
}

#[test]
fn a_membership_row_is_updated_once_with_both_seqs() {
    let m = |u: &str, c: &str, s: i64| (u.to_owned(), c.to_owned(), s);
    let writes = AckWrites {
        advance: vec![m("alice", "dm", 7), m("bob", "dm", 3)],
        read: vec![m("alice", "dm", 7), m("alice", "grp", 2)],
        ..Default::default()
    };
    assert_eq!(
        writes.memberships(),
        [
            ("alice", "dm", 7, 7),
            ("alice", "grp", 0, 2),
            ("bob", "dm", 3, 0)
        ]
    );
}

#[test]
fn only_an_ack_not_seen_before_is_a_first_delivery() {
    let by_pair = marks_by_pair([
        ("bob".to_owned(), "dm".to_owned(), 2),
        ("bob".to_owned(), "dm".to_owned(), 4),
        ("bob".to_owned(), "dm".to_owned(), 6),
    ]);
    // 2 is at or below ackedSeq (another device acked it), 4 is parked already, 6 is new.
    let (_, fresh) = fold_acks(
        &by_pair,
        vec![
            ("bob".to_owned(), "dm".to_owned(), 3, Some(4)),
            ("bob".to_owned(), "dm".to_owned(), 3, Some(5)),
        ],
    );
    let candidate = |s: i64| (("bob".to_owned(), "dm".to_owned(), s), format!("dm-{s}"));
    let first = first_deliveries(&[candidate(2), candidate(4), candidate(6)], &fresh);
    assert_eq!(first, HashSet::from(["dm-6".to_owned()]));
}

#[test]
fn first_delivery_is_reported_once_per_message() {
    let m = stored("alice", "dm", 1, "bob");
    let acks = vec![Ok((m.clone(), true)), Ok((m.clone(), true))];
    let first = HashSet::from([m.message_id.clone()]);
    let (_, acked) = results(Vec::new(), BTreeMap::new(), acks, &first);
    let flags: Vec<bool> = acked
        .iter()
        .map(|a| a.as_ref().unwrap().first_delivery)
        .collect();
    assert_eq!(flags, [true, false]);
}
