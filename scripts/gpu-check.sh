#!/usr/bin/env bash
# The GPU-path suite (`tests/gpu.rs`, one test binary, one process) on a device backend:
#
#   scripts/gpu-check.sh          wgpu: Vulkan/Metal; on a machine without a GPU, Mesa's llvmpipe
#                                 (installed here, with apt-get, when no Vulkan driver is)
#   scripts/gpu-check.sh cuda     CUDA (needs the CUDA toolkit and an NVIDIA driver), then the
#                                 training and decode benchmarks on `--device cuda`
#
# Decoder and encoder parity with transformers on every fixture and the PEFT adapters, the
# real-stories260K exactness test, KV-cache generation, the adapter/merge/regularizer tests,
# six training steps of every method against the CPU run, merge, export and resume.
#
# Cost on a 2-core machine without a GPU: the wgpu feature rebuilds Burn (13 min), the test
# binary builds in 3 min and runs in 11 min, most of it compiling kernels on llvmpipe. Mesa's
# shader cache (~/.cache/mesa_shader_cache) and cubecl's autotune cache (target/autotune) carry
# over between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-wgpu}"

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
    echo "== training and decode benchmarks on cuda"
    cargo build --release --features cuda
    bin=target/release/burn-peft
    for method in sorsa lora; do
      "$bin" bench train --device cuda --method "$method" --hidden 2048 --layers 16 \
        --seq 512 --batch 4 --rank 64 --precision bf16
    done
    "$bin" bench generate --device cuda --hidden 2048 --layers 16
    ;;
  *)
    echo "usage: $0 [wgpu|cuda]" >&2
    exit 2
    ;;
esac
