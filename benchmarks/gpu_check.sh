#!/usr/bin/env bash
# One prepared call on a lent GPU machine: checks and times the CUDA path, writes everything to $OUT.
# Installs nothing (the machine has torch, pandas, matplotlib, pytest-benchmark, nvidia-ml-py; no
# xformers, no network). Run from the repository root:
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh        (the device tool sets $OUT itself)
# On the device tool: command `timeout 540 bash benchmarks/gpu_check.sh`, timeout_s 580 (room to pack).
# Budget: one device call may run 600 s. Each step has its own timeout so one slow step cannot eat the
# rest; the default STEPS (kernels and compile, most valuable first) add up to 510 s. STEPS picks a subset
# or the earlier checks, e.g. STEPS="joint-vitb estimate-vs-measured" (see the list below).
# The device tool returns at most 8 files from $OUT, so everything is written to a work folder and packed
# into $OUT/gpu-check.tgz on exit (also when a limit stops the script): unpack it under results/gpu-<card>/.
# A run stopped by its step's limit keeps the cells it finished (records.jsonl is appended per cell).
# REHEARSE=1 runs the same steps on this machine's CPU with the tiny preset at 4 and 32 frames, to check
# the script cold before spending device time (CUDA-only kernels are then recorded as skipped, with why); the
# tests run it so (tests/test_gpu_check.py). The script exits 1 when a step failed and names it.
set -uo pipefail
FINAL=${OUT:-/tmp/vfbench-gpu}
OUT=$(mktemp -d /tmp/vfbench-gpu-work.XXXX)
mkdir -p "$FINAL"
trap 'find "$OUT" -name .lock -delete; tar czf "$FINAL/gpu-check.tgz" -C "$OUT" .; echo "packed: $FINAL/gpu-check.tgz"' EXIT
exec > >(tee "$OUT/console.log") 2>&1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
VF="python -m vfbench"
if [ "${REHEARSE:-0}" = 1 ]; then DEV=cpu; ON="--device cpu --model tiny"; LO=4; HI=32
else DEV=cuda; ON="--device cuda --model vit-b"; LO=16; HI=256; fi
FAILED=""
STEPS=${STEPS:-env kernels-vitb compile-16 compile-256 recipes-compile kernel-table gpu-tests}
# Kernel and compile sweeps: fewer timed steps than run's CUDA default (3 warm-up, 10 and 2 s) to fit the
# call; the records keep their p10-p90 spread. The first step of a compiled cell is its compilation.
# A cell whose compilation outruns --timeout is recorded as a timeout (with its reason) and the sweep goes on.
FAST="--no-accuracy --no-report --warmup 2 --min-repeats 5 --min-seconds 1 --timeout 80"
step() { local name=$1 limit=$2; shift 2; case " $STEPS " in *" $name "*) ;; *) echo "== $name (not in STEPS)"; return;; esac; echo "== $name (limit ${limit}s)"; local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; local rc=$?
  echo "   rc=$rc in $((SECONDS - t0))s"; tail -n 25 "$OUT/$name.log"; [ "$rc" = 0 ] || FAILED="$FAILED $name"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.csv" 2>&1; cat "$OUT/gpu.csv"
step env 15 $VF env --device $DEV --json
# Step time on the GPU, at 16 frames (launch-bound?) and 256 (MFU): each attention kernel eager (math
# only where it fits: the estimate skips the rest), then torch.compile, then the recipes eager vs compiled.
# A vit-b cell takes ~10 s at 16 frames and ~20 s at 256 eager; compiling adds tens of seconds (compile_s).
step kernels-vitb 130 $VF run $ON --frames $LO,$HI $FAST --out "$OUT/runs" --run-id kernels-vitb \
  --methods 'joint,attn_kernel(kind=cudnn),attn_kernel(kind=flash),attn_kernel(kind=efficient),attn_kernel(kind=math)'
step compile-16 90 $VF run $ON --frames $LO $FAST --out "$OUT/runs" --run-id compile-16 \
  --methods 'compile,compile(mode=reduce_overhead)'
step compile-256 120 $VF run $ON --frames $HI $FAST --out "$OUT/runs" --run-id compile-256 \
  --methods 'compile+attn_kernel(kind=cudnn),compile'
step recipes-compile 100 $VF run $ON --frames $LO,$HI $FAST --out "$OUT/runs" --run-id recipes-compile \
  --methods 'longvivit,longvivit+compile,effshortvivit,effshortvivit+compile'
step kernel-table 10 env -C "$OUT" python "$PWD/benchmarks/kernel_table.py" runs/{kernels-vitb,compile-16,compile-256,recipes-compile} \
  --out kernel-table.md
# Then the GPU-only tests (xformers equivalence skips cleanly where xformers is absent): the pinned kernels,
# the profiler's busy share.
step gpu-tests 45 python -m pytest -q -m gpu tests -p no:cacheprovider
# Earlier checks (results/gpu-h100 has them), by STEPS only.
# The joint sweep on CUDA: allocated, reserved and NVML peaks, MFU (memory and time only here).
step joint-vitb 120 $VF run $ON --methods joint --frames $LO..$HI --no-accuracy --out "$OUT/runs" --run-id joint-vitb
# The estimate vs max_memory_allocated, target 10%.
step estimate-vs-measured 120 python benchmarks/estimate_vs_measured.py $ON --frames $LO..$((HI / 2)) \
  --methods shortvivit,effshortvivit,longvivit,imagevit --out "$OUT/estimate-vs-measured-cuda"
# The recipes and the attention kernels at 16..128 frames.
step recipes-vitb 150 $VF run $ON --methods 'shortvivit,effshortvivit,longvivit,imagevit,attn_kernel(kind=math),checkpoint' \
  --frames $LO..$((HI / 2)) --no-accuracy --out "$OUT/runs" --run-id recipes-vitb
# The README's accuracy example with accuracy on (on CUDA: every cell), an empty proxy cache: the proxy trains until
# its validation plateaus, its clips drawn on the GPU (acc_train_s, acc_steps_run and acc_train_flops time that path).
VFBENCH_CACHE="$OUT/proxy-cache" step accuracy 150 $VF run $ON --methods joint,frame_avg,effshortvivit \
  --frames $LO..$((LO * 2)) --accuracy --out "$OUT/runs" --run-id accuracy-vitb
rm -rf "$OUT/proxy-cache"
# The pytest-benchmark suite on the CUDA defaults (vit-b), joint and longvivit.
step pytest-benchmark 60 python -m pytest --benchmark -k 'joint or longvivit' -q -p no:cacheprovider \
  --benchmark-json "$OUT/pytest-benchmark.json"
find "$OUT" -name '*.png' -size +1M -delete  # keep what comes back small
echo "== done; outputs in $OUT${FAILED:+; failed steps:$FAILED}"
[ -z "$FAILED" ]
