//! The `chat-gateway` binary: everything lives in the library (`chat_gateway::cli`).

/// See [`chat_gateway::Allocator`].
#[global_allocator]
static GLOBAL: chat_gateway::Allocator = chat_gateway::Allocator {};

fn main() -> anyhow::Result<()> {
    chat_gateway::cli::runtime()?.block_on(chat_gateway::cli::main())
}
