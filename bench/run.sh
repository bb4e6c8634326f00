#!/usr/bin/env bash
# Side-by-side training throughput: trainconsole's engine vs PyTorch eager, same model (the
# `small` preset), data, batch and thread count. Not part of the tests or CI.
#
#   nice -n -5 bash bench/run.sh [--threads N] [--steps 50] [--warmup 5] [--rounds 5]
#
# Creates a Python venv in bench/.venv (or $BENCH_VENV) with PyTorch from PyPI on first use,
# builds the Rust side in release mode, then runs bench/compare.py. The text is Tiny
# Shakespeare from ../shared/data/ or $BENCH_DATA.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BENCH_VENV:-$root/bench/.venv}"
data="${BENCH_DATA:-$root/../shared/data/tinyshakespeare.txt}"
torch_version="${TORCH_VERSION:-2.15.0}"

if [[ ! -f "$data" ]]; then
    echo "bench: no text at $data; set BENCH_DATA to a UTF-8 text file (e.g. tinyshakespeare.txt)" >&2
    exit 1
fi

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "bench: installing PyTorch $torch_version into $venv (once; about 4 GB)" >&2
    python3 -m venv "$venv"
    # PyPI's Linux torch wheel is the CUDA build; its libraries need the CUDA runtime wheels to
    # load, but not triton or cuda-bindings. Install the wheel alone, then what it needs.
    "$venv/bin/pip" install --quiet --no-deps "torch==$torch_version"
    "$venv/bin/python" "$root/bench/torch_requirements.py" > "$venv/torch-requirements.txt"
    "$venv/bin/pip" install --quiet -r "$venv/torch-requirements.txt" numpy
    echo "bench: (pip's note that triton and cuda-bindings are not installed is expected: they are left out on purpose)" >&2
fi

(cd "$root" && cargo build --quiet --release -p trainconsole-trainer --example bench_train)

exec "$venv/bin/python" "$root/bench/compare.py" \
    --rust "$root/target/release/examples/bench_train" --python "$venv/bin/python" --data "$data" "$@"
