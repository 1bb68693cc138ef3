#!/usr/bin/env bash
# Installs the named Debian packages (as root, or through sudo). Used by install-*-deps.sh.
set -euo pipefail
[ $# -eq 0 ] && exit 0
echo "apt-install: installing $*" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "apt-install: need root (or sudo) to apt-get install $*" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
