"""How a run computes rather than what it learns: pdeop's trainer keys and the precision check of spectral models.

``trainer.compile`` compiles the network with ``torch.compile`` in place (``nn.Module.compile``), so its
state-dict keys stay those of the plain network (no ``_orig_mod.`` prefix) and checkpoints, bundles and
``model.pretrained`` work as without it; ``trainer.compile_options`` are ``torch.compile``'s keyword
arguments (``mode``, ``backend``, ``dynamic``, ``fullgraph``, ``options``). Compilation happens at the
first training step; where it fails (no C compiler for inductor on a CPU, an operation the backend cannot
lower) the run stops with one line saying so. ``trainer.matmul_precision`` is
``torch.set_float32_matmul_precision`` (``high``: TF32 matmuls on Ampere and later GPUs; FFTs stay
float32). ``trainer.precision`` below 32 bits (``bf16-mixed`` and the like, Lightning's own key) is refused
for a network that computes FFTs or holds complex weights: torch.fft has no bfloat16 kernels, float16 ones
only for power-of-two grids, and casting complex weights to a real half type drops their imaginary parts.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.overrides import TorchFunctionMode

from pdeop.config import TRAINER_KEYS
from pdeop.errors import ConfigError

FULL_PRECISIONS = {"32", "32-true", "64", "64-true"}


@dataclass(frozen=True)
class Acceleration:
    """pdeop's keys of the ``trainer`` node (``pdeop.config.TRAINER_KEYS``); the rest is Lightning's Trainer's."""

    compile: bool = False
    compile_options: dict = field(default_factory=dict)
    matmul_precision: str = "highest"

    @classmethod
    def of(cls, trainer: DictConfig | dict) -> Acceleration:
        """The settings a ``trainer`` config holds (defaults for those it leaves out)."""
        given = {key: trainer[key] for key in TRAINER_KEYS if key in trainer}
        if "compile_options" in given:
            given["compile_options"] = OmegaConf.to_container(OmegaConf.create(given["compile_options"] or {}))
        return cls(**given)


def lightning_trainer(trainer: DictConfig) -> dict:
    """The ``trainer`` config without pdeop's keys: what ``pytorch_lightning.Trainer`` is built from."""
    resolved = OmegaConf.to_container(trainer, resolve=True)
    return {key: value for key, value in resolved.items() if key not in TRAINER_KEYS}


# torch.fft functions that move or count values without transforming them
NOT_TRANSFORMS = {"fftshift", "ifftshift", "fftfreq", "rfftfreq"}


class SpectralOperations(TorchFunctionMode):
    """Records the torch.fft transforms a forward pass calls and whether any result is complex."""

    def __init__(self):
        super().__init__()
        self.ffts: set[str] = set()
        self.complex = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "").removeprefix("fft_")
        if getattr(func, "__name__", "").startswith("fft_") and name not in NOT_TRANSFORMS:
            self.ffts.add(f"torch.fft.{name}")
        if isinstance(result, torch.Tensor) and result.is_complex():
            self.complex = True
        return result


def spectral_arithmetic(model: nn.Module, inputs: list[np.ndarray]) -> str | None:
    """What of ``model``'s arithmetic needs full precision: FFTs, complex weights or complex values, or None.

    The model is run once on each of ``inputs`` (one sample of every stored grid: some models transform
    only when the grid is not their own), recording the torch.fft calls and complex results.
    """
    recorder = SpectralOperations()
    was_training = model.training
    model.eval()
    with torch.no_grad(), recorder:
        for sample in inputs:
            model(torch.from_numpy(sample))
    model.train(was_training)
    found = []
    if recorder.ffts:
        found.append(f"FFTs ({', '.join(sorted(recorder.ffts))})")
    if any(p.is_complex() for p in model.parameters()):
        found.append("complex weights")
    elif recorder.complex:
        found.append("complex values")
    return " and ".join(found) or None


def check_precision(model: nn.Module, inputs: list[np.ndarray], precision: str | int) -> None:
    """Refuse a ``trainer.precision`` below 32 bits for a network whose FFTs or complex weights it would break."""
    if str(precision) in FULL_PRECISIONS:
        return
    found = spectral_arithmetic(model, inputs)
    if found:
        raise ConfigError(f"trainer.precision={precision}: {type(model).__name__} computes with {found}, which "
                          f"16-bit precision breaks (torch.fft has no bfloat16 kernels and float16 ones only for "
                          f"power-of-two grids; complex weights have no real half type); "
                          f"keep trainer.precision=32-true, and use trainer.matmul_precision=high for TF32 matmuls")


def traceable_contractions() -> None:
    """Route tensorly's einsum (neuralop's spectral contractions) to ``torch.einsum``, which Dynamo traces.

    neuralop switches tensorly to opt_einsum when imported; its Python-level dispatch (a thread id, a cache)
    breaks Dynamo's graph at every contraction: FNO's forward becomes 16 graphs with 15 breaks, each block's
    frame specialised on the block's index, past torch.compile's recompile limit once train and eval, and each
    grid, have their own. Through ``torch.einsum`` it is one graph. Nothing is lost: ``torch.einsum`` orders
    a contraction of several operands with opt_einsum itself (``torch.backends.opt_einsum``). Only compiling
    runs switch, so eager runs compute exactly as before.
    """
    import tensorly.plugins

    tensorly.plugins.use_default_einsum()


def compile_network(model: nn.Module, options: dict) -> None:
    """``torch.compile`` ``model`` in place, its state-dict keys unchanged, its tensorly contractions traceable
    (``traceable_contractions``); refuse options torch.compile does not take."""
    valid = [name for name in inspect.signature(torch.compile).parameters if name != "model"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"trainer.compile_options.{unknown[0]}: not an argument of torch.compile; valid keys: "
                          f"{', '.join(valid)}")
    traceable_contractions()
    try:
        model.compile(**options)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"trainer.compile_options: torch.compile refuses {options} ({first_line(exc)})") from exc


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (compilers' messages run to pages)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def compile_failure(exc: BaseException) -> BaseException | None:
    """The error of torch.compile's machinery (Dynamo, a backend, inductor) behind ``exc``, if any."""
    from torch._dynamo.exc import TorchDynamoException  # only a compiling run needs Dynamo loaded

    while exc is not None:
        if isinstance(exc, TorchDynamoException) or type(exc).__module__.startswith(
                ("torch._dynamo", "torch._inductor")):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def reported_compile_failures(acceleration: Acceleration, model: nn.Module) -> Iterator[None]:
    """Turn a failure of ``trainer.compile``'s compilation, which shows at a step, into one line naming the switch."""
    try:
        yield
    except Exception as exc:
        failure = compile_failure(exc) if acceleration.compile else None
        if failure is None:
            raise
        cause = getattr(failure, "inner_exception", None) or failure  # a backend's own error, inside Dynamo's
        raise ConfigError(f"trainer.compile: torch.compile could not compile {type(model).__name__} "
                          f"({type(cause).__name__}: {first_line(cause)}); train without it "
                          f"(trainer.compile=false) or choose another trainer.compile_options.backend") from exc


def accelerate(model: nn.Module, acceleration: Acceleration, precision: str | int,
               inputs: list[np.ndarray]) -> None:
    """Before fitting: check ``precision`` against ``model`` (on ``inputs``), set the matmul precision, compile."""
    check_precision(model, inputs, precision)
    torch.set_float32_matmul_precision(acceleration.matmul_precision)
    if acceleration.compile:
        compile_network(model, acceleration.compile_options)
