#!/usr/bin/env bash
# Kernel launches and step time of one `bench train` step, fused against unfused (--no-fusion),
# on a wgpu device (llvmpipe where there is no GPU), from cubecl's own execution log.
#
#   scripts/count-launches.sh [BIN] [-- extra bench train flags]
#
# BIN: a burn-peft built with `--features wgpu` (default: target/release/burn-peft). Each
# configuration runs with --steps 1, 3 and 5, each in a fresh folder holding a `cubecl.toml`
# that logs every kernel cubecl runs (`[profiling.logger] level = "minimal"`). Launches per step
# = (n5 - n3) / 2; (n3 - n1) / 2 is printed beside it as a check: autotuning in the untimed
# warm-up step launches a varying number of candidate kernels, so two runs can differ there.
set -euo pipefail
bin="$(realpath "${1:-target/release/burn-peft}")"
shift || true
[ "${1:-}" = "--" ] && shift
extra=("$@")
[ -x "$bin" ] || { echo "error: $bin is not an executable (cargo build --release --features wgpu)" >&2; exit 2; }
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
shape=(--method sorsa --rank 16 --hidden 512 --layers 8 --seq 256 --batch 1 --device wgpu)

run() { # name steps [global flags]
  local dir="$work/$1-$2"
  mkdir -p "$dir"
  printf '[profiling.logger]\nlevel = "minimal"\nfile = "%s/kernels.log"\nappend = false\n' "$dir" > "$dir/cubecl.toml"
  (cd "$dir" && "$bin" "${@:3}" bench train "${shape[@]}" --steps "$2" "${extra[@]}" > out.txt 2> err.txt) || {
    cat "$dir/err.txt" >&2; exit 1; }
  wc -l < "$dir/kernels.log"
}

for mode in fused unfused; do
  flags=()
  [ "$mode" = unfused ] && flags=(--no-fusion)
  one=$(run "$mode" 1 "${flags[@]}")
  three=$(run "$mode" 3 "${flags[@]}")
  five=$(run "$mode" 5 "${flags[@]}")
  step=$(tail -1 "$work/$mode-5/out.txt" | awk -F'|' '{gsub(/ /, "", $9); print $9}')
  echo "$mode: $(( (five - three) / 2 )) kernel launches per step (from the 1- and 3-step runs:" \
    "$(( (three - one) / 2 ))), $step s/step"
  grep -h '^device:' "$work/$mode-5/err.txt" || true
done
