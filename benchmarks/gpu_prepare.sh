#!/usr/bin/env bash
# Run HERE (a machine with pip's index), before a GPU session on a lent machine that reaches no network: gathers
# what pdeop needs there and its image lacks, into folders git ignores, for the session's `carry`.
#
#     bash benchmarks/gpu_prepare.sh            # then carry: .whl .source-manifest
#
# - .whl/: wheels, for the machine's Python (3.12), of pdeop's dependencies missing from its image (the image's
#   package list, 2026-11-17: PyTorch, Lightning, torchmetrics, numpy, scipy, h5py, xarray, matplotlib, tqdm,
#   safetensors, PyYAML, msgpack, psutil, cloudpickle, toolz, sortedcontainers, fsspec, click, jinja2, pytest...).
#   Each at the version installed here, the one pdeop's tests ran with. wandb and zencfg stay behind: neuraloperator
#   imports the first only if present and the second only in its own tests, and the sessions log to CSV.
#   benchmarks/gpu_env.sh installs them there.
# - .source-manifest: HEAD's commit and the git hash of each tracked file (pdeop.provenance), so that records made
#   from the copy there, which has no .git, still name the commit, with -dirty if a file differs from it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
MISSING=(hydra-core omegaconf antlr4-python3-runtime hydra-submitit-launcher submitit neuraloperator tensorly
         tensorly-torch configmypy ruamel.yaml h5netcdf dask distributed partd locket zict tblib tornado)

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "gpu_prepare: the checkout has uncommitted changes; commit them first, so that records name a commit" >&2
    exit 1
fi
declare -A VERSION
for name in "${MISSING[@]}"; do  # the versions installed here, all found before anything is replaced
    VERSION[$name]=$("$PYTHON" -c "from importlib.metadata import version; print(version('$name'))" 2>/dev/null) || {
        echo "gpu_prepare: $name is not installed for $PYTHON: run it from pdeop's environment" \
             "(pip install -e '.[test]', or PYTHON=<its python>)" >&2; exit 1; }
done
rm -rf .whl && mkdir .whl
for name in "${MISSING[@]}"; do
    # binary first (tornado is compiled); a pure-Python sdist (antlr4's only form) is built into a wheel here
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$name==${VERSION[$name]}" 2>/dev/null \
        || "$PYTHON" -m pip wheel -q --no-deps -w .whl "$name==${VERSION[$name]}"
done
"$PYTHON" -c "from pathlib import Path; from pdeop.provenance import write_manifest; write_manifest(Path('.source-manifest'))"
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
carried=$(du -cb .whl .source-manifest | tail -1 | cut -f1)
echo "gpu_prepare: $(ls .whl | wc -l) wheels; tree $((tree / 1048576)) MiB + carried $((carried / 1048576)) MiB" \
     "of the 64 MiB a call may send; carry: .whl .source-manifest"
