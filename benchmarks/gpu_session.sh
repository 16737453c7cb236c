#!/usr/bin/env bash
# One short GPU session (about 6 minutes on an H100): pdeop's training throughput against a plain PyTorch loop
# (benchmarks/fno_overhead.py) for data=darcy and data=darcy_fno, each with batches from a DataLoader and from
# device-resident tensors, what each part of the framework costs (--ablate), then pdeop with TF32 matmuls,
# torch.compile and CUDA graphs as far as time allows.
#
#     OUT=<results folder> [PYTHON=python3] [PDEOP_DATA_DIR=<scratch>] [BUDGET_S=420] bash benchmarks/gpu_session.sh
#
# On a lent machine without network, run benchmarks/gpu_prepare.sh here first and carry .whl and .source-manifest:
# benchmarks/gpu_env.sh installs the wheels there and checks that pdeop imports before anything else runs.
# Writes to $OUT: environment.txt, generate.log, <name>.json (fno_overhead's summary) and <name>.log per
# measurement. Data are generated first (all CPU cores) into $PDEOP_DATA_DIR (default /tmp/pdeop-data; darcy_fno's
# file is about 2 GB, so not under $OUT). Each step is cut off at what is left of BUDGET_S seconds, so partial
# results still come back. Needs a CUDA build of torch; the figures are this GPU's and belong in experiments/README.md
# beside the CPU ones, never mixed with them. TRAINER=cpu OVERRIDES="data.n_train=40 data.n_val=10 data.n_test=10"
# rehearses the whole script on a CPU (imports, data, each measurement's path); its figures mean nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the results go to}"
BUDGET_S=${BUDGET_S:-420}
export PDEOP_DATA_DIR=${PDEOP_DATA_DIR:-/tmp/pdeop-data}
mkdir -p "$OUT" "$PDEOP_DATA_DIR"
START=$(date +%s)
source benchmarks/gpu_env.sh > "$OUT/environment.txt" 2>&1 || { cat "$OUT/environment.txt"; exit 1; }
left() { echo $((BUDGET_S - ($(date +%s) - START))); }

for data in darcy darcy_fno; do  # solved on the CPUs, once; the file is found again by its parameters' hash
    timeout "$(left)" "$PYTHON" -m pdeop.generate data=$data data.generate_workers=$WORKERS "${EXTRA[@]}" >> "$OUT/generate.log" 2>&1 \
        || echo "generation of $data failed or ran out of time" >> "$OUT/generate.log"
done

measure() {  # name, then fno_overhead's arguments
    local name=$1; shift
    local budget; budget=$(left)
    if [ "$budget" -lt 30 ]; then echo "skipped $name: no time left" >> "$OUT/skipped.txt"; return; fi
    timeout "$budget" "$PYTHON" benchmarks/fno_overhead.py --json "$OUT/$name.json" "$@" trainer=$TRAINER "${EXTRA[@]}" > "$OUT/$name.log" 2>&1 \
        || echo "$name failed or ran out of time (exit $?)" >> "$OUT/skipped.txt"
}

# the four variants each: plain (DataLoader), plain_resident, pdeop (DataLoader), pdeop_resident
measure darcy --epochs 20 --repeats 2 data=darcy
measure darcy_fno --epochs 10 --repeats 2 data=darcy_fno
# where the framework's cost goes on the most launch-bound case: pdeop_resident without its checkpoints, its other
# callbacks, the sanity check, and all of these and the logger (Lightning's loop alone)
measure darcy_ablation --epochs 20 --repeats 1 --ablate --variants plain_resident,pdeop_resident data=darcy
# what the switches add on top, framework against the plain loop (both follow them), one repeat
measure darcy_fno_tf32 --epochs 10 --repeats 1 --variants plain_resident,pdeop_resident data=darcy_fno \
    trainer.matmul_precision=high
measure darcy_fno_compile --epochs 10 --repeats 1 --variants plain_resident,pdeop_resident data=darcy_fno \
    trainer.matmul_precision=high trainer.compile=true
# the most launch-bound case with CUDA graphs (compiled FNO is one graph since traceable_contractions)
measure darcy_compile_cudagraphs --epochs 20 --repeats 1 --variants plain_resident,pdeop_resident data=darcy \
    trainer.matmul_precision=high trainer.compile=true trainer.compile_options.mode=reduce-overhead
echo "done in $(( $(date +%s) - START )) s" >> "$OUT/environment.txt"
