//! Which cached pages the recent cache may answer with, without Redis.

use super::*;
use crate::model::Target;

fn at(joined_seq: i64, last_seq: i64) -> Position {
    Position {
        joined_seq,
        last_seq,
    }
}

fn entry(conversation: &str, seq: i64) -> String {
    serde_json::to_string(&StoredMessage {
        message_id: format!("m{seq}"),
        conversation_id: conversation.into(),
        seq,
        from: "alice".into(),
        from_name: "Alice".into(),
        target: Target::Group {
            group_id: "g".into(),
        },
        body: format!("b{seq}"),
        file_type: 0,
        file: None,
        client_msg_id: None,
        created_at: 1,
        request_id: "r".into(),
        recalled: false,
        system: None,
    })
    .unwrap()
}

fn entries(conversation: &str, seqs: &[i64]) -> Vec<String> {
    seqs.iter().map(|s| entry(conversation, *s)).collect()
}

fn seqs(page: Option<Vec<StoredMessage>>) -> Option<Vec<i64>> {
    page.map(|ms| ms.iter().map(|m| m.seq).collect())
}

#[test]
fn the_range_is_what_the_database_would_return() {
    assert_eq!(page_range(at(0, 10), 0, 200), (0, 10));
    assert_eq!(page_range(at(0, 10), 3, 4), (3, 7));
    // A late joiner starts at its join point, whatever it asks for.
    assert_eq!(page_range(at(6, 10), 2, 3), (6, 9));
    assert_eq!(page_range(at(6, 10), 8, 200), (8, 10));
    // Nothing above the last seq.
    let (from, to) = page_range(at(0, 10), 12, 200);
    assert!(to <= from);
    assert_eq!(page_range(at(0, 10), i64::MAX - 1, 200).0, i64::MAX - 1);
}

#[test]
fn only_exactly_the_range_is_whole() {
    let c = "grp:g";
    let whole_seqs = |list: &[i64], from, to| seqs(whole(&entries(c, list), c, from, to).unwrap());
    assert_eq!(whole_seqs(&[4, 5, 6], 3, 6), Some(vec![4, 5, 6]));
    assert_eq!(whole_seqs(&[5, 6], 3, 6), None, "first missing");
    assert_eq!(whole_seqs(&[4, 5], 3, 6), None, "last missing");
    assert_eq!(whole_seqs(&[4, 6, 7], 3, 6), None, "a gap");
    assert_eq!(whole_seqs(&[4, 5, 5], 3, 6), None, "a seq twice");
    let other = entries("grp:h", &[4, 5, 6]);
    assert_eq!(
        seqs(whole(&other, c, 3, 6).unwrap()),
        None,
        "another conversation"
    );
    let broken = vec![entry(c, 4), "{not json".to_owned()];
    assert!(whole(&broken, c, 3, 5).is_err());
}
