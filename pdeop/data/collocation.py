"""Collocation points for physics-informed solvers: what they train on instead of solved samples.

Each training step gets fresh interior and boundary points (or the same ones, without
resampling), drawn from a seed and the global step number, so that a resumed run draws exactly
what the uninterrupted one would have drawn. Test compares the solution on the problem's test
grid with its reference there. Validation is what checkpoint selection reads, so it gets a draw of
points of its own (never a training step's) on which the module takes the training loss,
``val/loss``: a solver picks its iterate by the equation, not by the reference solution it is
scored against (the test grid still rides along, for the ``val/rel_l2`` curve).
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pdeop.data.sampling import batches_taken
from pdeop.errors import ConfigError
from pdeop.problems.residual import ResidualProblem

# points of different ranks are drawn from different streams, never overlapping the step numbers
RANK_STRIDE = 1_000_003
# validation's draw: a step number no rank's training reaches (ranks start at multiples of RANK_STRIDE)
VALIDATION_STEP = RANK_STRIDE ** 2 - 1


class CollocationDraws(Dataset):
    """Item ``i``: the interior and boundary points of global step ``i`` (a whole batch)."""

    def __init__(self, problem: ResidualProblem, n_interior: int, n_boundary: int, seed: int):
        self.problem, self.n_interior, self.n_boundary, self.seed = problem, n_interior, n_boundary, seed

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed((self.seed * RANK_STRIDE ** 2 + step) % 2 ** 64)  # torch's range
        return {"interior": self.problem.sample_interior(self.n_interior, generator),
                "boundary": self.problem.sample_boundary(self.n_boundary, generator)}


class StepSampler(Sampler[int]):
    """Global step numbers of an epoch (``epoch * steps + i``, offset by rank), or always 0 without resampling.

    ``taken`` says how many of the epoch's steps were already taken when iteration starts: a run stopped mid-epoch
    (SIGTERM) and resumed goes on with the draws the uninterrupted run would have had, not the epoch's first ones.
    """

    def __init__(self, steps: int, resample: bool, rank: int = 0, taken: Callable[[], int] = lambda: 0):
        self.steps, self.resample, self.rank, self.taken = steps, resample, rank, taken
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[int]:
        # A generator, so the epoch is read at the first step: on resume Lightning creates the
        # iterator before it calls set_epoch (a batch sampler defers the same way).
        start = self.epoch * self.steps * self.resample + self.rank * RANK_STRIDE
        taken = self.taken()
        yield from (range(start + taken, start + self.steps) if self.resample else [start] * (self.steps - taken))


class TestGrid(Dataset):
    """One item: the problem's test grid axes and the reference solution on it."""

    def __init__(self, problem: ResidualProblem):
        self.axes = problem.test_axes()
        self.reference = problem.reference(self.axes)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict:
        return {"axes": self.axes, "reference": self.reference}


class ValidationDraw(Dataset):
    """One item: validation's own collocation and boundary points, and the test grid with its reference."""

    def __init__(self, draws: CollocationDraws, test_grid: TestGrid):
        self.item = {**draws[VALIDATION_STEP], **test_grid[0]}

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict:
        return self.item


class CollocationDataModule(pl.LightningDataModule):
    """Serves a single PDE instance to a physics-informed solver.

    ``n_interior`` points inside the box and ``n_boundary`` on its Dirichlet faces per step,
    redrawn every step when ``resample`` (PIG's and GP-HM's PINN baselines), ``steps_per_epoch``
    steps between validations. Models that own their collocation grid (GP-HM) ignore the points and
    read ``grid_points``, the grid's nodes per axis (one count, or one per axis), from the config.
    """

    resumes_mid_epoch = True  # a run stopped mid-epoch resumes with the uninterrupted run's draws (StepSampler)

    def __init__(self, problem: ResidualProblem, n_interior: int = 1000, n_boundary: int = 100,
                 resample: bool = True, steps_per_epoch: int = 100, seed: int = 0,
                 grid_points: int | list[int] = 100):
        super().__init__()
        if not isinstance(problem, ResidualProblem):
            raise ConfigError(f"data.problem: {type(problem).__name__} is not posed by a residual; physics-informed "
                              f"models (pinn, pinn_rff, pig, gp_hm) solve residual problems such as data=poisson1d_hf, "
                              f"helmholtz2d or darcy_instance")
        for key, value in (("n_interior", n_interior), ("n_boundary", n_boundary),
                           ("steps_per_epoch", steps_per_epoch)):
            if value < 1:
                raise ConfigError(f"data.{key}: expected a count >= 1, got {value}")
        if n_boundary < 2 * problem.dim:  # the points are shared out among the faces in turn
            raise ConfigError(f"data.n_boundary: expected at least {2 * problem.dim}, one point on each face of the "
                              f"{problem.dim}-D box, got {n_boundary}: a face without one is never imposed")
        self.problem, self.grid_points = problem, grid_points
        self.n_interior, self.n_boundary = n_interior, n_boundary
        self.resample, self.steps_per_epoch, self.seed = resample, steps_per_epoch, seed

    def setup(self, stage: str | None = None) -> None:
        self.test_grid = TestGrid(self.problem)

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        draws = CollocationDraws(self.problem, self.n_interior, self.n_boundary, self.seed)
        sampler = StepSampler(self.steps_per_epoch, self.resample, rank, lambda: batches_taken(self.trainer))
        return DataLoader(draws, sampler=sampler, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        draws = CollocationDraws(self.problem, self.n_interior, self.n_boundary, self.seed)
        return DataLoader(ValidationDraw(draws, self.test_grid), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_grid, batch_size=None)
