//! Fuzzing entry points, behind the `fuzzing` feature (and built for this crate's tests): the
//! functions the `cargo fuzz` targets in `fuzz/` call, so the same checks run under libFuzzer on
//! nightly and, replaying the kept corpus and every crash input, as ordinary tests on stable
//! ([`replay`]). Not part of the protocol's API.

use std::path::{Path, PathBuf};

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
    // Only the top-level `requestId` is read: another field's number too big for an f64
    // (`1e400`) fails a whole `Value` but not a frame, whose other fields are skipped.
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "requestId")]
        request_id: Option<Value>,
    }
    if !text.trim_start().starts_with('{') {
        return None;
    }
    match serde_json::from_str::<Probe>(text).ok()?.request_id? {
        Value::String(s) => Some(RequestId::Text(s)),
        Value::Number(n) => Some(RequestId::Number(n)),
        _ => None,
    }
}

/// The workspace's `fuzz/` directory.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Runs `harness` on every kept input of `target` — `fuzz/corpus/<target>/` and the crash inputs
/// in `fuzz/artifacts/<target>/` — and returns how many there were. A panic names the input.
pub fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let dir = fuzz_dir();
    let mut inputs = Vec::new();
    for kind in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(dir.join(kind).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory").path();
            if path.is_file() {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    for path in &inputs {
        let data = std::fs::read(path).expect("a readable input");
        if let Err(panic) = std::panic::catch_unwind(|| harness(&data)) {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            panic!("{}: {what}", path.display());
        }
    }
    inputs.len()
}

#[cfg(test)]
mod tests {
    /// Every kept input of the `client_frame` target passes its checks.
    #[test]
    fn client_frame_inputs_replay() {
        let n = super::replay("client_frame", super::client_frame);
        assert!(n >= 10, "only {n} inputs in fuzz/corpus/client_frame");
    }
}
