# syntax=docker/dockerfile:1
# chat-operator image. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t chatcluster/chat-operator:0.1.0 .
# The runtime image holds only the binary and CA certificates and runs as uid 65532 (the uid the
# Helm chart's securityContext expects).

FROM rust:1.95-bookworm AS build
# protoc: needed by the pulsar crate's build script when the workspace builds it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chat-operator \
 && install -D -m 0755 target/release/chat-operator /out/chat-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/chat-operator /usr/local/bin/chat-operator
USER 65532:65532
# 8080: the operator's /metrics, /healthz, /readyz (CHAT_OPERATOR_METRICS_ADDR).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/chat-operator"]
CMD ["run"]
