#!/usr/bin/env bash
# Pretrain -> fine-tune with scOT on the project's own Navier-Stokes data (2-core CPU, ~30 minutes):
#     experiments/scot_pretrain_finetune.sh [OUT]      (a finished stage is not run again)
# Pretraining: all-to-all pairs of data=navier_stokes (nu = 1e-3, 200 trajectories, 21 snapshots).
# Fine-tuning set: another viscosity (nu = 1e-4), 32 trajectories; the same model is trained from
# scratch on it for comparison, both for the same number of epochs, each with its recipe
# (scratch: lr 5e-4; fine-tuning: Poseidon's lr 5e-5 with 5e-4 for embedding, recovery and norms).
set -euo pipefail
OUT=${1:-outputs/scot_pretrain_finetune}
EPOCHS=${EPOCHS:-5}
SCOT=(trainer.enable_progress_bar=false model=scot +recipe=scot model.embed_dim=24 "model.depths=[2,2,2,2]" model.window_size=8
      data=navier_stokes data/task=all_to_all)
FINETUNE_DATA=(data.problem.viscosity=1e-4 data.n_train=32 data.n_val=8 data.n_test=20)

tested() { python -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$OUT/$1/test_metrics.json"; }
stage() {  # stage NAME OVERRIDES...: train once into $OUT/NAME
    local name=$1; shift
    [ -f "$OUT/$name/test_metrics.json" ] || python train.py "${SCOT[@]}" "$@" hydra.run.dir="$OUT/$name"
}

stage pretrain trainer.max_epochs=1
stage scratch "${FINETUNE_DATA[@]}" trainer.max_epochs="$EPOCHS"
stage finetune "${FINETUNE_DATA[@]}" trainer.max_epochs="$EPOCHS" model.pretrained="$(tested pretrain)" optim.lr=5e-5 \
    'model.param_lr={embeddings.*: 5.0e-4, patch_recovery.*: 5.0e-4, *norm*: 5.0e-4}'
for name in pretrain scratch finetune; do
    data=(data=navier_stokes data/task=all_to_all)
    [ "$name" = pretrain ] || data+=("${FINETUNE_DATA[@]}")
    python evaluate.py ckpt="$(tested "$name")" "${data[@]}" out="$OUT/$name/evaluation.json" \
        hydra.run.dir="$OUT/$name/evaluate"
done
python evaluate.py ckpt="$(tested pretrain)" data=navier_stokes data/task=all_to_all "${FINETUNE_DATA[@]}" \
    out="$OUT/pretrain/zero_shot_evaluation.json" hydra.run.dir="$OUT/pretrain/zero_shot"   # no fine-tuning
