#!/usr/bin/env bash
# The GPU-path tests on the wgpu backend: decoder parity and exactness, KV-cache generation,
# the adapter/merge/SORSA tests (`wgpu::…` modules), six training steps of every method
# against the CPU run and a resumed run (`gpu::…`). On a machine without a GPU they run on
# Mesa's llvmpipe, a Vulkan driver on the CPU (installed here when no Vulkan driver is).
#
# Cost on a 2-core machine: the wgpu feature rebuilds Burn (~11 min) and the three test
# binaries (~11 min); each binary then compiles its kernels once on llvmpipe (minutes).
# Mesa's shader cache (~/.cache/mesa_shader_cache) and cubecl's autotune cache
# (target/autotune) carry over between binaries and runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/share/vulkan/icd.d/*.json > /dev/null 2>&1; then
  echo "== no Vulkan driver: installing Mesa's llvmpipe (mesa-vulkan-drivers)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers
fi
# wgpu's Vulkan loader wants a runtime directory; a container often has none.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

echo "== cargo test --features wgpu (wgpu:: and gpu:: tests)"
cargo test --features wgpu --test decoder --test foundation --test train -- wgpu:: gpu::
