# Sourced by the GPU session scripts on the lent machine: installs the wheels benchmarks/gpu_prepare.sh gathered
# (carried in .whl) into /tmp/site, puts the checkout and them on PYTHONPATH, and stops with one line naming any
# module still missing (status 1), before the session spends its time on anything else.
PYTHON=${PYTHON:-python3}
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
