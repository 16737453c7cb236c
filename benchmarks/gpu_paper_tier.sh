#!/usr/bin/env bash
# Paper-tier leaderboard cells on a lent GPU machine, in one call: the cells' data solved on the machine's CPU
# cores, then `python -m pdeop.leaderboard run <table> --tier paper --cells <cells>` as the cells' records name it
# (the trainer's accelerator is `auto`, so the GPU), its records written under $OUT.
#
#     OUT=<results folder> [TABLE=darcy85] [CELLS=fno] [PYTHON=python3] [PDEOP_DATA_DIR=<scratch>] \
#         bash benchmarks/gpu_paper_tier.sh
#
# Run benchmarks/gpu_prepare.sh here first and carry .whl and .source-manifest: records must name a clean commit,
# so a copy whose files differ from the manifest's commit stops before anything runs. FNO on darcy85 (the
# default) takes about 2 minutes of generation on 14 cores and 6 of H100 training (1500 samples/s, 500 epochs).
# A call cut off by its time limit leaves the run in /tmp/pdeop-runs on the machine, which stays warm for 30 s:
# the same command at once continues it from its last checkpoint (its record then says resumed_from_epoch).
# Writes to $OUT: environment.txt, generate.log, train.log and records/<table>/<cell>.paper.json, to be copied into
# experiments/leaderboard/records/ before `python -m pdeop.leaderboard report`.
# TRAINER=cpu OVERRIDES="trainer.max_epochs=2 data.n_train=40 data.n_val=10 data.n_test=10" rehearses it on a CPU:
# its records are not the cells' (other settings) and are never committed.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the results go to}"
TABLE=${TABLE:-darcy85}
read -ra CELLS <<< "${CELLS:-fno}"
export PDEOP_DATA_DIR=${PDEOP_DATA_DIR:-/tmp/pdeop-data}
mkdir -p "$OUT" "$PDEOP_DATA_DIR"
source benchmarks/gpu_env.sh > "$OUT/environment.txt" 2>&1 || { cat "$OUT/environment.txt"; exit 1; }
if [ "$TRAINER" = cpu ]; then
    EXTRA+=(trainer=cpu)
else
    case $COMMIT in
        unknown|*-dirty) echo "gpu_paper_tier: the records would name commit '$COMMIT', not a clean one: commit, run" \
                              "benchmarks/gpu_prepare.sh and carry .source-manifest" | tee -a "$OUT/environment.txt"
                         exit 1 ;;
    esac
fi

for cell in "${CELLS[@]}"; do  # each cell's data, solved once on the CPUs; training finds the file by its hash
    "$PYTHON" -m pdeop.generate "+experiment=$TABLE/$cell" "data.generate_workers=$WORKERS" "${EXTRA[@]}" \
        >> "$OUT/generate.log" 2>&1 || { echo "generation for $TABLE/$cell failed: see generate.log"; exit 1; }
done
"$PYTHON" -m pdeop.leaderboard run "$TABLE" --tier paper --cells "${CELLS[@]}" --runs /tmp/pdeop-runs \
    --records "$OUT/records" "${EXTRA[@]}" > "$OUT/train.log" 2>&1 \
    || { tail -5 "$OUT/train.log"; exit 1; }
grep '^\[leaderboard\] record' "$OUT/train.log"
