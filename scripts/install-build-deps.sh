#!/usr/bin/env bash
# Installs what building the workspace needs beyond Rust and gcc, from Debian's packages, when
# missing: protoc (the `pulsar` crate's build script compiles Pulsar's protobuf definitions).
set -euo pipefail

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
exec "$(dirname "$0")/apt-install.sh" "${missing[@]}"
