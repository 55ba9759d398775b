#!/usr/bin/env bash
# Create (once) the virtual environment that runs a real LiteLLM proxy for the guardrail
# test (tests/test_litellm_guardrail.py), and print its python.
#
# Why its own environment: litellm's `proxy` extra pins rich<14, and inspect-ai's textual
# needs rich>=14.2, so the proxy cannot live in the project's venv. Why the pin: 1.108.0
# is the newest release whose `proxy` extra installs from the package index (1.110's
# needs a `litellm-proxy` package the index does not have).
#
# Why outside the clone: CI runs in a fresh clone on the same machine, so a venv inside
# it would be rebuilt every run. It lives in $RUNAWAY_CACHE_DIR/litellm-<version>
# (default ~/.cache/runaway-monitor) and is rebuilt only when missing or broken; pip's
# download cache sits beside it. Concurrent callers wait on a lock.
#
# Usage: scripts/prepare-litellm.sh [BASE_PYTHON]   (default python3); prints the venv's
# python on the last line of stdout.
set -euo pipefail

base="${1:-python3}"
version="${LITELLM_VERSION:-1.108.0}"
cache="${RUNAWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/runaway-monitor}"
venv="$cache/litellm-$version"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$cache/pip}"
mkdir -p "$cache" "$PIP_CACHE_DIR"

# Fast path: the marker written after a checked install (importing the proxy takes ~20 s).
ready() { [[ -f "$venv/.complete" && -x "$venv/bin/litellm" ]]; }
imports() { "$venv/bin/python" -c 'import litellm.proxy.proxy_server' >/dev/null 2>&1; }

exec 9>"$cache/litellm.lock"
flock 9
if ! ready; then
    start=$(date +%s)
    echo "prepare-litellm: creating $venv (litellm[proxy]==$version, ~1-2 min once)" >&2
    rm -rf "$venv"
    "$base" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "litellm[proxy]==$version" >&2
    imports || { echo "prepare-litellm: the proxy does not import after install" >&2; exit 1; }
    touch "$venv/.complete"
    echo "prepare-litellm: done in $(( $(date +%s) - start )) s" >&2
fi
echo "$venv/bin/python"
