#!/usr/bin/env bash
# PINN vs PIG vs GP-HM at the same wall-clock budget per run (default 4 minutes) on a 2-core CPU:
#     experiments/physics_informed.sh [OUT]      (a finished run is not run again; BUDGET=00:00:04:00)
# Problems: GP-HM's 1D Poisson u = sin(100x) and 2D Poisson u = sin(100x) sin(100y) on [0, 2 pi]^d, PIG's 2D
# Helmholtz. Each method with its paper's recipe at CPU-sized point counts:
#   PINN: 4 x 100 tanh, Adam 1e-3, points redrawn each step (1000 interior in 1D; 2000 + 1000 boundary in 2D);
#   PIG: 800 Gaussians x 4 channels, sigma 0.1, L-BFGS (strong Wolfe, 20 iterations a step), 1000 + 1000 points;
#   GP-HM: Student-t mixture, Q = 30, Adam 0.01 on its grid (400 in 1D, 400^2 for Poisson 2D, 100^2 Helmholtz);
#   initial frequencies up to 20 cycles per unit (the paper's, for sin(100x): 16), 4 for Helmholtz (2 cycles).
# The reported error is the test error of the best validation (every 100 Adam / 10 L-BFGS steps), as GP-HM's
# code reports the best over its evaluations; the last validation's error is printed beside it.
set -euo pipefail
OUT=${1:-outputs/physics_informed}
BUDGET=${BUDGET:-00:00:04:00}
COMMON=(trainer.enable_progress_bar=false trainer.max_epochs=100000 trainer.max_time="$BUDGET" logger=csv)

run() {  # run NAME OVERRIDES...
    local name=$1; shift
    [ -f "$OUT/$name/test_metrics.json" ] || python train.py "${COMMON[@]}" "$@" hydra.run.dir="$OUT/$name"
}

POINTS_2D=(data.n_interior=2000 data.n_boundary=1000)
LBFGS=(data.n_interior=1000 data.n_boundary=1000 data.steps_per_epoch=10)
for data in poisson1d_hf poisson2d_hf helmholtz2d; do
    if [ "$data" = poisson1d_hf ]; then points=(data.n_interior=1000); lbfgs=(data.n_interior=1000 data.steps_per_epoch=10)
    else points=("${POINTS_2D[@]}"); lbfgs=("${LBFGS[@]}"); fi
    frequency=20.0; [ "$data" = helmholtz2d ] && frequency=4.0
    run "$data-gp_hm" model=gp_hm +recipe=gp_hm data="$data" model.max_frequency="$frequency"
    run "$data-pinn" model=pinn +recipe=pinn data="$data" "${points[@]}"
    run "$data-pig" model=pig +recipe=pig data="$data" "${lbfgs[@]}"
done
# GP-HM's other 1D cases against the PINN (GP-HM's grids and frequency ranges)
run poisson1d_sincos-gp_hm model=gp_hm +recipe=gp_hm data=poisson1d_hf data.problem.solution=sin6x_cos100x
run poisson1d_sincos-pinn model=pinn +recipe=pinn data=poisson1d_hf data.problem.solution=sin6x_cos100x data.n_interior=1000
run poisson1d_xsin-gp_hm model=gp_hm +recipe=gp_hm data=poisson1d_hf data.problem.solution=x_sin200x data.grid_points=900 \
    model.max_frequency=50
run poisson1d_xsin-pinn model=pinn +recipe=pinn data=poisson1d_hf data.problem.solution=x_sin200x data.n_interior=1000
run allen_cahn1d-gp_hm model=gp_hm +recipe=gp_hm data=allen_cahn1d
run allen_cahn1d-pinn model=pinn +recipe=pinn data=allen_cahn1d data.n_interior=1000

# PIG's Gaussians at the paper's width (0.1 of the box) cannot follow 100 periods: the same run with width 0.005
run poisson1d_hf-pig_narrow model=pig +recipe=pig data=poisson1d_hf data.n_interior=1000 data.steps_per_epoch=10 model.sigma_init=0.005
python experiments/physics_table.py "$OUT" | tee "$OUT/table.md"
