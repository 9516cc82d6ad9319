#!/usr/bin/env bash
# The GPU-path suite (`tests/gpu.rs`, one test binary, one process) on a device backend:
#
#   scripts/gpu-check.sh          wgpu: Vulkan/Metal; on a machine without a GPU, Mesa's llvmpipe
#                                 (installed here, with apt-get, when no Vulkan driver is)
#   scripts/gpu-check.sh cuda     CUDA (needs the CUDA toolkit and an NVIDIA driver), then the
#                                 training and decode benchmarks on `--device cuda`
#
# For a GPU machine without Rust (build here, run there):
#   scripts/gpu-check.sh cuda-pack [DIR]   builds the CUDA test binary and `burn-peft` and puts
#                                 them, stripped and gzipped, in DIR (default target/gpu-pack)
#   scripts/gpu-check.sh cuda-run [DIR]    on the GPU machine, from the repository root: the
#                                 suite and the benchmarks from DIR, no cargo. The tests find
#                                 their fixtures through the path they were built in, so that
#                                 path is linked to this checkout when it does not exist.
#
# Decoder and encoder parity with transformers on every fixture and the PEFT adapters, the
# real-stories260K exactness test, KV-cache generation, RWKV6 parity with the `rwkv` package and
# SORSA training against the CPU, the adapter/merge/regularizer tests, six training steps of
# every method against the CPU run, merge, export and resume.
#
# Cost on a 2-core machine without a GPU: the wgpu feature rebuilds Burn (13 min), the test
# binary builds in 3 min and runs in 11-12 min, most of it compiling kernels on llvmpipe. Mesa's
# shader cache (~/.cache/mesa_shader_cache) and cubecl's autotune cache (target/autotune) carry
# over between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-wgpu}"

# Training (SORSA, LoRA) and decode speed of a 1B-class random Llama on `--device cuda`.
cuda_benchmarks() {
  echo "== training and decode benchmarks on cuda"
  for method in sorsa lora; do
    "$1" bench train --device cuda --method "$method" --hidden 2048 --layers 16 \
      --seq 512 --batch 4 --rank 64 --precision bf16
  done
  "$1" bench train --device cuda --arch rwkv6 --method sorsa --hidden 2048 --layers 16 \
    --seq 512 --batch 4 --rank 64 --precision bf16
  "$1" bench generate --device cuda --hidden 2048 --layers 16
  # A 7B's layer shapes (hidden 4096; 4 layers to fit any GPU) in bf16, seq 1024: tokens/s,
  # MFU and peak memory (issue #28).
  local bin="$1"
  for spec in "sorsa 128" "lora 16"; do
    set -- $spec
    "$bin" bench train --device cuda --method "$1" --rank "$2" --hidden 4096 --layers 4 \
      --intermediate 11008 --seq 1024 --batch 1 --precision bf16
  done
}

case "$backend" in
  wgpu)
    if ! ls /usr/share/vulkan/icd.d/*.json > /dev/null 2>&1; then
      echo "== no Vulkan driver: installing Mesa's llvmpipe (mesa-vulkan-drivers)"
      sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo apt-get update -qq
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers > /dev/null
    fi
    # wgpu's Vulkan loader wants a runtime directory; a container often has none.
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
    echo "== cargo test --features wgpu --test gpu"
    cargo test --features wgpu --test gpu
    ;;
  cuda)
    echo "== cargo test --features cuda --test gpu"
    cargo test --features cuda --test gpu
    cargo build --release --features cuda
    cuda_benchmarks target/release/burn-peft
    ;;
  cuda-pack)
    pack="${2:-target/gpu-pack}"
    mkdir -p "$pack"
    # The dev profile: dependencies (Burn, cubecl) at opt-level 3 as in release, no second
    # build of Burn.
    cargo build --features cuda --bin burn-peft
    test_bin=$(cargo test --features cuda --test gpu --no-run --message-format=json \
      | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
    # Stripped and gzipped: both fit the 64 MiB a device run may carry.
    strip -o "$pack/gpu-tests" "$test_bin"
    strip -o "$pack/burn-peft" target/debug/burn-peft
    gzip -f -9 "$pack/gpu-tests" "$pack/burn-peft"
    pwd > "$pack/built-in"
    ls -la "$pack"
    ;;
  cuda-run)
    pack="${2:-target/gpu-pack}"
    built_in=$(cat "$pack/built-in")
    if [ ! -e "$built_in" ]; then
      mkdir -p "$(dirname "$built_in")"
      ln -s "$PWD" "$built_in"
    fi
    bin=$(mktemp -d)
    gzip -dc "$pack/gpu-tests.gz" > "$bin/gpu-tests"
    gzip -dc "$pack/burn-peft.gz" > "$bin/burn-peft"
    chmod +x "$bin/gpu-tests" "$bin/burn-peft"
    # One forward pass first: without a usable driver or GPU this stops with burn-peft's
    # one-line reason instead of a suite of backend panics.
    fixture=tests/fixtures/tiny-llama
    "$bin/burn-peft" forward --device cuda --model "$fixture" \
      --inputs "$fixture/reference.safetensors" --out "$bin/forward.safetensors"
    echo "== GPU-path suite on cuda ($pack)"
    # The benchmarks run even when a test fails: a GPU session is short.
    suite=0
    "$bin/gpu-tests" || suite=$?
    cuda_benchmarks "$bin/burn-peft"
    exit "$suite"
    ;;
  *)
    echo "usage: $0 [wgpu|cuda|cuda-pack [DIR]|cuda-run [DIR]]" >&2
    exit 2
    ;;
esac
