#!/usr/bin/env bash
# Installs what building the workspace needs beyond Rust and gcc, from Debian's packages, when
# missing: protoc (the `pulsar` crate's build script compiles Pulsar's protobuf definitions).
set -euo pipefail

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-build-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "install-build-deps: need root (or sudo) to apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
