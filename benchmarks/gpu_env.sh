# Sourced by the GPU session scripts on the lent machine: installs the wheels benchmarks/gpu_prepare.sh gathered
# (carried in .whl) into /tmp/site, puts the checkout and them on PYTHONPATH, and stops (status 1) with one line
# naming any module still missing, or when there is no CUDA device (unless TRAINER=cpu, a rehearsal), before the
# session spends its time on anything else. Prints the machine and the commit; sets COMMIT, TRAINER, EXTRA (the
# Hydra overrides in OVERRIDES) and WORKERS (solver processes: the cores but two).
PYTHON=${PYTHON:-python3}
TRAINER=${TRAINER:-gpu}
read -ra EXTRA <<< "${OVERRIDES:-}"
WORKERS=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_env: installing the carried wheels (.whl) failed"; return 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" - <<'EOF' || return 1
import importlib, sys
missing = []
for name in ("torch", "pytorch_lightning", "hydra", "omegaconf", "neuralop", "h5py", "h5netcdf", "xarray", "scipy",
             "distributed", "pdeop.train", "pdeop.generate", "pdeop.leaderboard.run"):
    try:
        importlib.import_module(name)
    except ImportError as error:
        missing.append(f"{name} ({error})")
if missing:
    sys.exit("gpu_env: cannot import " + "; ".join(missing) + ": run benchmarks/gpu_prepare.sh here and carry .whl")
EOF
COMMIT=$("$PYTHON" -c "from pdeop.provenance import git_commit; print(git_commit())")
date -u
echo "commit $COMMIT"
nvidia-smi 2>&1 | head -15
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
[ "$TRAINER" = cpu ] || "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "gpu_env: no CUDA device here (TRAINER=cpu rehearses on a CPU)"; return 1; }
