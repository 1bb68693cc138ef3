//! Golden tests against docs/protocol.md: every server-frame example there is what the typed
//! frames produce (parsed into `ServerFrame`, written back, equal by value), and every
//! client-frame example parses. Examples with `…` placeholders are shapes, not frames.

use chat_protocol::{ClientFrame, ServerFrame};

use serde_json::Value;

fn examples() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))
        .expect("docs/protocol.md");
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in doc.lines() {
        let trimmed = line.trim_start();
        match &mut block {
            None if trimmed.starts_with("```json") => block = Some(String::new()),
            Some(text) if trimmed.starts_with("```") => {
                out.push(std::mem::take(text));
                block = None;
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn every_example_in_the_protocol_doc_is_what_the_types_produce() {
    let (mut server, mut client, mut shapes) = (0, 0, 0);
    for text in examples() {
        if text.contains('…') {
            shapes += 1;
            continue;
        }
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let has = |key: &str| value.get(key).is_some();
        if !has("type") && !has("activeTime") {
            continue; // an HTTP API body (§9), not a WebSocket frame
        }
        if has("activeTime") || has("status") {
            let frame = ServerFrame::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            let written: Value = serde_json::from_str(&frame.to_json()).unwrap();
            assert_eq!(
                written, value,
                "written back differs from the doc's example"
            );
            server += 1;
        } else {
            ClientFrame::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            client += 1;
        }
    }
    assert!(server >= 20, "only {server} server examples found");
    assert!(client >= 12, "only {client} client examples found");
    assert!(shapes <= 4, "{shapes} examples with placeholders");
}
