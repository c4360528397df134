#!/usr/bin/env bash
# Builds pretext's CUDA binary (and named test binaries) on a machine with neither a GPU nor
# the CUDA toolkit, for a GPU machine that has the driver and CUDA's libraries but no Rust —
# how reports/gpu was measured. Packs everything the GPU machine needs into .gpu/:
#
#   benches/cuda_cross_build.sh [COMPUTE_CAP] [TEST ...]     # e.g. 9.0 device_step fused
#   # on the GPU machine, from the repository root:
#   bash .gpu/run.sh .gpu/pretext bench --shape reference
#
# How: CUDA 13.0's compiler and headers come from NVIDIA's PyPI wheels (nvcc compiles dfdx's
# kernels at build time); the link step gets stub libraries with CUDA 13's sonames (every
# function of cudarc's bindings, empty), so the binary loads the real ones at run time.
# dfdx also compiles a few kernels with NVRTC at run time, with include paths baked in at
# build time: .gpu/run.sh recreates those paths on the GPU machine.
set -euo pipefail
cap=${1:-9.0}
shift || true
tests=("$@")
root=$(cd "$(dirname "$0")/.." && pwd)
cu=${CUDA_PREFIX:-/opt/cu}
wheels=(nvidia-cuda-nvcc nvidia-nvvm nvidia-cuda-crt nvidia-cuda-runtime nvidia-cuda-cccl)

if [ ! -x "$cu/nvidia/cu13/bin/nvcc" ]; then
    mkdir -p "$cu/whl"
    for w in "${wheels[@]}"; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux_2_12_x86_64 \
            -d "$cu/whl" "$w==13.0.*"
    done
    (cd "$cu" && for f in whl/*.whl; do unzip -qo "$f"; done)
fi

# Link stubs: cudarc 0.9's bindings name every function the binary can call.
src=$(cargo metadata --format-version 1 --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json,sys; print([p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"][0].rsplit("/",1)[0])')
mkdir -p "$cu/stubs" "$cu/fakebin"
for spec in cuda:libcuda.so.1:driver nvrtc:libnvrtc.so.13:nvrtc cublas:libcublas.so.13:cublas \
    cublasLt:libcublasLt.so.13:cublaslt curand:libcurand.so.10:curand; do
    IFS=: read -r name soname dir <<<"$spec"
    grep -oE 'pub fn [A-Za-z0-9_]+' "$src/src/$dir/sys.rs" | awk '{print "void "$3"(void){}"}' >"$cu/stubs/$name.c"
    gcc -shared -fPIC -o "$cu/stubs/lib$name.so" -Wl,-soname,"$soname" "$cu/stubs/$name.c"
done
# dfdx's build script asks nvidia-smi for the compute capability.
printf '#!/bin/sh\necho compute_cap\necho %s\n' "$cap" >"$cu/fakebin/nvidia-smi"
chmod +x "$cu/fakebin/nvidia-smi"

export PATH="$cu/fakebin:$cu/nvidia/cu13/bin:$PATH" CUDA_ROOT="$cu/nvidia/cu13"
export CARGO_TARGET_DIR="$root/target-cuda" RUSTFLAGS="-L native=$cu/stubs"
cd "$root"
cargo build --release --features cuda
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
if [ ${#tests[@]} -gt 0 ]; then
    cargo test --release --features cuda --no-run "${args[@]}"
fi

out="$root/.gpu"
rm -rf "$out" && mkdir -p "$out/dfdx-out"
objcopy --strip-debug target-cuda/release/pretext "$out/pretext"
for t in "${tests[@]}"; do
    bin=$(ls -t target-cuda/release/deps/"$t"-* | grep -v '\.d$' | head -1)
    objcopy --strip-debug "$bin" "$out/test-$t"
done
dfdx_out=$(strings "$out/pretext" | grep -oE "$root/target-cuda/release/build/dfdx-[0-9a-f]+/out" | head -1)
cp "$dfdx_out"/*.cuh "$out/dfdx-out/"
printf '%s\n%s\n' "$CUDA_ROOT/include" "$dfdx_out" >"$out/baked-paths"
cp benches/cuda_run.sh "$out/run.sh"
gzip -9 "$out/pretext" "$out"/test-* 2>/dev/null || true
du -sh "$out"
echo "carry .gpu (ignored by .gitignore), then on the GPU machine: bash .gpu/run.sh .gpu/pretext …"
