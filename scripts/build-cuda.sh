#!/usr/bin/env bash
# Builds target/release/neuronmap with CUDA (candle's `cuda` feature) on a machine without a
# GPU or a system CUDA toolkit, from NVIDIA's CUDA 13.0 wheels on PyPI. This is the recipe that
# built the binary checked on an H100 (driver 580, CUDA 13.0) on 2026-11-27; about 25 minutes
# on 2 cores (most of it candle's kernels), 1.3 GB of wheels.
#
# usage: scripts/build-cuda.sh [VENV_DIR] [COMPUTE_CAP]     (defaults: target/cuda-venv, 90)
#
# The binary needs, where it runs: libcuda.so.1 (the driver), libcublas.so.13,
# libcublasLt.so.13, libcudart.so.13 and libcurand.so.10 (a CUDA 13 toolkit, or the same wheels;
# PyTorch cu13x installs carry them), found through LD_LIBRARY_PATH or the system's paths.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-target/cuda-venv}
cap=${2:-90}
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet 'nvidia-cuda-nvcc==13.0.*' 'nvidia-cuda-runtime==13.0.*' \
  'nvidia-cublas==13.0.*' 'nvidia-curand==10.4.0.*' 'nvidia-cuda-nvrtc==13.0.*' \
  'nvidia-cuda-cccl==13.0.*' 'nvidia-nvvm==13.0.*' 'nvidia-cuda-crt==13.0.*'
cu=$(cd "$venv"/lib/python3*/site-packages/nvidia/cu13 && pwd)
root=$(mkdir -p target/cuda-root/lib64 && cd target/cuda-root && pwd)
ln -sfn "$cu/bin" "$root/bin"
ln -sfn "$cu/include" "$root/include"
ln -sfn "$cu/nvvm" "$root/nvvm"
for f in "$cu"/lib/*.so*; do ln -sf "$f" "$root/lib64/"; done
for l in cublas cublasLt cudart nvrtc; do ln -sf "$cu/lib/lib$l.so.13" "$root/lib64/lib$l.so"; done
ln -sf "$cu/lib/libcurand.so.10" "$root/lib64/libcurand.so"
# The wheels carry no libcuda.so (it comes with the driver): link against a stub that exports
# every driver function cudarc declares; the real libcuda.so.1 is loaded where it runs.
sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null | head -n1 || true)
if [ -z "$sys" ]; then cargo fetch --quiet; sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | head -n1); fi
grep -ohE "fn cu[A-Za-z0-9_]+\(" "$sys" | sed 's/fn //; s/(//' | sort -u \
  | awk '{print "int " $1 "(void){return 999;}"}' > "$root/cuda-stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib64/libcuda.so" "$root/cuda-stub.c"
export CUDA_ROOT=$root CUDA_PATH=$root PATH=$root/bin:$PATH CUDA_COMPUTE_CAP=$cap
export LD_LIBRARY_PATH=$root/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
cargo build --release --features cuda
echo "built target/release/neuronmap with CUDA (compute capability $cap)"
