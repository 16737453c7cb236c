#!/usr/bin/env bash
# Pretrain -> fine-tune with scOT on the project's own Navier-Stokes data (2-core CPU, ~30 minutes).
# Pretraining: all-to-all pairs of data=navier_stokes (nu = 1e-3, 200 trajectories, 21 snapshots).
# Fine-tuning set: another viscosity (nu = 1e-4), 32 trajectories; the same model is trained from
# scratch on it for comparison, both for the same number of epochs, each with its recipe
# (scratch: lr 5e-4; fine-tuning: Poseidon's lr 5e-5 with 5e-4 for embedding, recovery and norms).
set -euo pipefail
OUT=${1:-outputs/scot_pretrain_finetune}
SCOT=(model=scot model.embed_dim=24 "model.depths=[2,2,2,2]" model.window_size=8 data/task=all_to_all)
FINETUNE_DATA=(data.problem.viscosity=1e-4 data.n_train=32 data.n_val=8 data.n_test=20)
EPOCHS=${EPOCHS:-5}

python train.py "${SCOT[@]}" data=navier_stokes trainer.max_epochs=1 hydra.run.dir="$OUT/pretrain"
PRETRAINED=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$OUT/pretrain/test_metrics.json")

python train.py "${SCOT[@]}" data=navier_stokes "${FINETUNE_DATA[@]}" trainer.max_epochs="$EPOCHS" \
    hydra.run.dir="$OUT/scratch"
python train.py "${SCOT[@]}" data=navier_stokes "${FINETUNE_DATA[@]}" trainer.max_epochs="$EPOCHS" \
    model.pretrained="$PRETRAINED" optim.lr=5e-5 \
    'model.param_lr={"embeddings.*": 5.0e-4, "patch_recovery.*": 5.0e-4, "*norm*": 5.0e-4}' \
    hydra.run.dir="$OUT/finetune"
for run in pretrain scratch finetune; do
    python evaluate.py ckpt="$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" \
        "$OUT/$run/test_metrics.json")" $([ "$run" = pretrain ] || echo data=navier_stokes "${FINETUNE_DATA[@]}" \
        data/task=all_to_all) out="$OUT/$run/evaluation.json" hydra.run.dir="$OUT/$run/evaluate"
done
