#!/usr/bin/env bash
# The same Darcy samples trained on twice with the same seed: once from pdeop's generated file
# (data=darcy), once from FNO-layout .mat copies of it (data=from_file: train + val in a v5 file at
# the 41x41 training grid, test in a v7.3 file at 81x81, served at 81 and, subsampled, 41).
# The test errors must agree: the community path feeds the model the same arrays.
#   bash experiments/from_file_vs_generated.sh [epochs]
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-10}
OUT=${OUT:-outputs/from_file_vs_generated}
mkdir -p "$OUT"
COMMON=(trainer.max_epochs="$EPOCHS" trainer.enable_progress_bar=false seed=0)

python train.py data=darcy "${COMMON[@]}" hydra.run.dir="$OUT/generated"
python - "$OUT" <<'EOF'
import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

sys.path.insert(0, "tests")
from format_files import write_mat_v5, write_mat_v73  # the tests' writers of FNO's layouts

import pdeop.config  # noqa: F401 (registers the subsampled_size resolver)

out = Path(sys.argv[1])
with initialize_config_module("pdeop.conf", version_base=None):
    cfg = compose("config", overrides=["data=darcy", "hydra.runtime.output_dir=."], return_hydra_config=False)
dm = instantiate(cfg.data)
store = dm.open_store()
train, val, fine = store.read("train"), store.read("val"), store.read("test", store.resolutions("test")[-1])
write_mat_v5(out / "darcy_train.mat", {"coeff": np.concatenate([train.inputs, val.inputs])[:, 0],
                                       "sol": np.concatenate([train.outputs, val.outputs])[:, 0]})
write_mat_v73(out / "darcy_test.mat", {"coeff": fine.inputs[:, 0], "sol": fine.outputs[:, 0]})
print(f"wrote {out}/darcy_train.mat ({len(train.inputs)} + {len(val.inputs)}) and darcy_test.mat ({len(fine.inputs)})")
EOF
python train.py data=from_file data.path="$OUT/darcy_train.mat" data.test_path="$OUT/darcy_test.mat" \
    data.n_train=400 data.n_val=50 data.n_test=50 data.subsample=1 'data.test_subsamples=[2]' \
    "${COMMON[@]}" hydra.run.dir="$OUT/from_file"
for run in generated from_file; do echo "$run: $(cat "$OUT/$run/test_metrics.json" | tr -d '\n ')"; done
