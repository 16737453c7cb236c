#!/usr/bin/env bash
# CI: pdeop as a user installs it. Builds the sdist and, from it, the wheel; installs the wheel (torch==2.13.0
# first) into a fresh virtual environment outside the checkout; then, from a folder outside the checkout, runs
# one tiny generation, one short training, evaluate on the shipped fno-darcy bundle and the leaderboard report
# of the committed records, which must come out as committed.
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$SECONDS

python3.11 -m venv "$work/venv"
. "$work/venv/bin/activate"
pip install -q torch==2.13.0 build
python -m build -q --outdir "$work/dist" "$checkout"  # the wheel is built from the sdist, outside the checkout
pip install -q "$work"/dist/pdeop-*.whl

cd "$work"  # nothing of the checkout is importable from here
export PDEOP_DATA_DIR="$work/data" PDEOP_CACHE_DIR="$work/cache" WANDB_SILENT=true
python -c 'import pdeop, sys; assert "site-packages" in pdeop.__file__, pdeop.__file__'
tiny=(data.problem.resolution=33 data.n_train=64 data.n_val=16 data.n_test=16 data.subsample=2
      'data.test_subsamples=[1]' data.batch_size=8 data.generate_workers=1)
pdeop-generate "${tiny[@]}" hydra.run.dir=generate
pdeop-train "${tiny[@]}" 'model.n_modes=[12,12]' trainer.max_epochs=1 trainer.enable_progress_bar=false \
    hydra.run.dir=train
test -f train/test_metrics.json && test -f train/train.log
# the shipped bundle on a small Darcy test set at its training grid (41) and twice as fine
pdeop-evaluate ckpt=fno-darcy data=darcy data.n_train=1 data.n_val=1 data.n_test=8 data.problem.resolution=81 \
    data.subsample=2 'data.test_subsamples=[1]' data.generate_workers=1 hydra.run.dir=evaluate
python -c 'import json; r = json.load(open("evaluate/evaluation.json"))["results"]; assert r["41"]["rel_l2"]["mean"] < 0.05, r'
mkdir -p experiments/leaderboard
cp -r "$checkout/experiments/leaderboard/records" "$checkout/experiments/leaderboard/findings" experiments/leaderboard/
pdeop-leaderboard report
for name in README.md results.csv; do
    diff -q "experiments/leaderboard/$name" "$checkout/experiments/leaderboard/$name"
done
echo "wheel check passed in $((SECONDS - start)) s"
