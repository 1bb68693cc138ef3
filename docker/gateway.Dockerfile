# syntax=docker/dockerfile:1
# chat-gateway image. Build from the repository root:
#   docker build -f docker/gateway.Dockerfile -t chatcluster/chat-gateway:0.1.0 .
# The runtime image holds only the binary, CA certificates and a data directory; it runs as
# uid 65532 and listens on all interfaces (the binary's own defaults are 127.0.0.1).

FROM rust:1.95-bookworm AS build
# protoc: the pulsar crate's build script compiles Pulsar's protobuf definitions.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole workspace (every member's manifest must be present); docker/gateway.Dockerfile.dockerignore
# keeps target/ and local data out of the context.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chat-gateway \
 && install -D -m 0755 target/release/chat-gateway /out/chat-gateway \
 && mkdir -p /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/chat-gateway /usr/local/bin/chat-gateway
# Embedded mode keeps its SQLite file and generated JWT secret here; mount a volume to keep them.
COPY --from=build --chown=65532:65532 /out/data /var/lib/chat-gateway
ENV CHAT_LISTEN=0.0.0.0:8080 \
    CHAT_ADMIN_LISTEN=0.0.0.0:9090 \
    CHAT_DATA_DIR=/var/lib/chat-gateway
USER 65532:65532
WORKDIR /var/lib/chat-gateway
# 8080: WebSocket /ws, push/kick HTTP API, browser page. 9090: admin (health, metrics, drain);
# never expose 9090 outside the cluster. It listens on every address here, so `serve` needs
# CHAT_ADMIN_TOKEN (the operator sets it from a Secret; with plain docker, pass -e).
EXPOSE 8080 9090
# SIGTERM drains (DRAIN to every client, then close 1012 at the deadline): give the pod a
# termination grace period longer than --drain-seconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/chat-gateway"]
CMD ["serve"]
