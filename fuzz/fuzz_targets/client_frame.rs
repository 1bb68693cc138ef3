//! `cargo +nightly fuzz run client_frame`: the checks are `chat_protocol::fuzz::client_frame`'s (see there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_protocol::fuzz::client_frame(data));
