//! The real `chat-gateway` command, built inside the tests package so process-level tests
//! (SIGKILL, SIGTERM) can spawn it via `CARGO_BIN_EXE_gateway-under-test`. On the binary's
//! allocator too: the chaos soak judges pods' RSS, and glibc malloc's arenas keep what a burst
//! took (+120–165% in 150 s of broker faults, where mimalloc stayed within ±6%). And on its
//! runtime: one worker thread fewer than the host's cores.

#[global_allocator]
static GLOBAL: chat_gateway::Allocator = chat_gateway::Allocator {};
fn main() -> anyhow::Result<()> {
    chat_gateway::cli::runtime()?.block_on(chat_gateway::cli::main())
}
