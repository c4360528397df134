#!/usr/bin/env bash
# Runs a binary packed by benches/cuda_cross_build.sh on the GPU machine (copied there as
# .gpu/run.sh): unpacks the binaries, points the stubs' sonames at the machine's CUDA
# libraries (the driver's libcuda, and cuBLAS/NVRTC from the toolkit or PyTorch's wheels),
# recreates the include paths dfdx baked in for its run-time NVRTC kernels, then runs "$@".
set -eo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for f in "$here"/*.gz; do [ -e "$f" ] && gunzip -f "$f"; done
chmod +x "$here"/pretext "$here"/test-* 2>/dev/null || true

site=$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null || true)
libs=/tmp/pretext-cuda-libs
mkdir -p "$libs"
for so in libcuda.so.1 libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
    found=$(ls /usr/local/nvidia/lib64/$so /usr/lib/x86_64-linux-gnu/$so /usr/local/cuda/lib64/$so \
        "$site"/nvidia/cu13/lib/$so "$site"/nvidia/*/lib/$so 2>/dev/null | head -1 || true)
    if [ -z "$found" ]; then
        echo "cuda_run.sh: $so not found on this machine" >&2
        continue
    fi
    ln -sf "$found" "$libs/$so"
    LD_LIBRARY_PATH="$(dirname "$found"):$LD_LIBRARY_PATH"
done
export LD_LIBRARY_PATH="$libs:$LD_LIBRARY_PATH"

{ read -r include; read -r dfdx_out; } <"$here/baked-paths"
headers=$(dirname "$(ls /usr/local/cuda/include/cuda_fp16.h \
    /usr/local/cuda/targets/x86_64-linux/include/cuda_fp16.h \
    "$site"/nvidia/cu13/include/cuda_fp16.h 2>/dev/null | head -1 || true)")
mkdir -p "$(dirname "$include")" "$(dirname "$dfdx_out")"
[ -e "$include" ] || ln -sfn "$headers" "$include"
[ -e "$dfdx_out" ] || ln -sfn "$here/dfdx-out" "$dfdx_out"
exec "$@"
