//! `cargo +nightly fuzz run session`: the checks are `chat_gateway::fuzz::session`'s (see there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_gateway::fuzz::session(data));
