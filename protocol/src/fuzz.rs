//! Fuzzing entry points, behind the `fuzzing` feature (and built for this crate's tests): the
//! functions the `cargo fuzz` targets in `fuzz/` call, so the same checks run under libFuzzer on
//! nightly. Not part of the protocol's API.

use serde_json::Value;

use crate::client::fast;
use crate::{ClientFrame, RequestId};

/// Target `client_frame`: one client text frame, as `ClientFrame::parse` reads it.
///
/// Checks, besides "no panic": the fast path, when it reads a frame, gives what the general path
/// gives; a parsed frame written back with `to_json` parses to the same frame; an error that
/// names a request id names the one the frame carries.
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(frame) = fast::parse(text) {
        assert_eq!(
            Ok(frame),
            ClientFrame::parse_general(text),
            "fast and general paths differ"
        );
    }
    match ClientFrame::parse(text) {
        Ok(frame) => {
            let json = frame.to_json();
            let again = ClientFrame::parse(&json)
                .unwrap_or_else(|e| panic!("{json} does not parse back: {}", e.message));
            assert_eq!(again, frame, "{json} parses back differently");
        }
        Err(e) => {
            assert!(!e.message.is_empty(), "an error says what is wrong");
            if let Some(id) = e.request_id {
                assert_eq!(Some(id), request_id_of(text), "the error echoes another id");
            }
        }
    }
}

/// The `requestId` of `text` read independently of the parser: a string or a number.
pub fn request_id_of(text: &str) -> Option<RequestId> {
    match serde_json::from_str::<Value>(text).ok()?.get("requestId")? {
        Value::String(s) => Some(RequestId::Text(s.clone())),
        Value::Number(n) => Some(RequestId::Number(n.clone())),
        _ => None,
    }
}
