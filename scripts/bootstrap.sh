#!/usr/bin/env bash
# Prepares a fresh machine for offrecord: Debian packages (with --system), a
# virtual environment in .venv, and offrecord installed into it (editable,
# with the development tools).  Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=0
[ "${1:-}" = "--system" ] && want_system=1

if [ "$want_system" = 1 ]; then
    # libotr 4.1.1 (the reference implementation) for the interop tests, and a
    # C compiler for the small libotr-based test peer; ngircd and prosody, the
    # IRC and XMPP servers the integration tests start on loopback.
    packages=(libotr5-dev libgcrypt20-dev gcc pkg-config ngircd prosody)
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "bootstrap: installing Debian packages: ${missing[*]}"
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "bootstrap: Python 3.11 or newer is required" >&2; exit 1; }
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.offrecord-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
