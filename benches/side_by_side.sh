#!/usr/bin/env bash
# burn-peft against the PyTorch anchors, back to back on the same machine (machines here are
# noisy: only ratios measured side by side hold). Not used by CI or the tests.
#
#   benches/side_by_side.sh ANCHOR_PYTHON BENCH_DIR [ROUNDS]
#
# ANCHOR_PYTHON: a python with torch, transformers, peft and numpy (see BENCH_DIR/README.md);
# BENCH_DIR: the folder with peft_train_bench.py and hf_generate_bench.py. The burn-peft binary
# is $BURN_PEFT (default: target/debug/burn-peft, the README's `cargo build`, built when
# missing; its dependencies are optimised as in a release build). Each round runs `bench train`
# then the PEFT anchor, `bench generate` then the transformers anchor, and `mmbench` (the f32
# matmul the models run) then numpy's (its bundled OpenBLAS) on the same shapes; the medians over the
# rounds and their ratios are printed at the end.
set -euo pipefail

python=${1:?usage: benches/side_by_side.sh ANCHOR_PYTHON BENCH_DIR [ROUNDS]}
bench=${2:?usage: benches/side_by_side.sh ANCHOR_PYTHON BENCH_DIR [ROUNDS]}
rounds=${3:-3}
bin=${BURN_PEFT:-target/debug/burn-peft}
if [ ! -x "$bin" ]; then
    cargo build
fi
mmbench=target/debug/examples/mmbench
if [ ! -x "$mmbench" ]; then
    cargo build --example mmbench
fi
here=$(dirname "$0")
# The anchors' documented setting: two threads.
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

train_ours=() train_torch=() decode_ours=() decode_torch=()
# `MxKxN GFLOP/s` lines of both matmul benchmarks, over all rounds.
mm_ours=$(mktemp) mm_numpy=$(mktemp)
for round in $(seq "$rounds"); do
    echo "== round $round"
    line=$("$bin" bench train --method lora --rank 16 | tee -a /dev/stderr | grep '^| lora')
    # The table row: | method | rank | base | checkpointing | seq | batch | tokens/s | …
    train_ours+=("$(awk -F'|' '{gsub(/ /, "", $8); print $8}' <<<"$line")")
    line=$("$python" "$bench/peft_train_bench.py" 3 16 | tee -a /dev/stderr | grep '^lora:')
    train_torch+=("$(sed -E 's/.* ([0-9.]+) tokens\/s.*/\1/' <<<"$line")")
    line=$("$bin" bench generate --hidden 512 --layers 8 --prompt 128 --decode 64 \
        | tee -a /dev/stderr | grep '^decode:')
    decode_ours+=("$(sed -E 's/decode: +([0-9.]+) tokens\/s.*/\1/' <<<"$line")")
    line=$("$python" "$bench/hf_generate_bench.py" 512 8 128 64 1 | tee -a /dev/stderr | grep '^hf:')
    decode_torch+=("$(sed -E 's/.*decode ([0-9.]+) tok\/s.*/\1/' <<<"$line")")
    "$mmbench" | tee -a /dev/stderr | awk '/ F32:/ {print $1, $(NF-1)}' >>"$mm_ours"
    "$python" "$here/numpy_matmul.py" | tee -a /dev/stderr | awk '/ F32:/ {print $1, $(NF-1)}' >>"$mm_numpy"
done

report() {
    local name=$1 ours=$2 torch=$3
    awk -v n="$name" -v a="$ours" -v b="$torch" \
        'BEGIN {printf "%-32s burn-peft %8.1f  torch %8.1f  ratio %.2fx\n", n, a, b, a / b}'
}
echo "== medians over $rounds rounds (tokens/s)"
report "train LoRA r16 (seq 256, batch 8)" \
    "$(printf '%s\n' "${train_ours[@]}" | median)" "$(printf '%s\n' "${train_torch[@]}" | median)"
report "decode (hidden 512 x 8, prompt 128)" \
    "$(printf '%s\n' "${decode_ours[@]}" | median)" "$(printf '%s\n' "${decode_torch[@]}" | median)"
for shape in $(awk '{print $1}' "$mm_ours" | sort -u); do
    report "f32 matmul $shape (GFLOP/s)" \
        "$(awk -v s="$shape" '$1 == s {print $2}' "$mm_ours" | median)" \
        "$(awk -v s="$shape" '$1 == s {print $2}' "$mm_numpy" | median)"
done | sed 's/torch/numpy/'
rm -f "$mm_ours" "$mm_numpy"
