"""Pictures people would rather look at than read: one sample's fields, error against resolution, a solution."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed on clusters

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pdeop.io import atomic_path  # noqa: E402


def save_figure(figure, path: str | Path, title: str = "") -> Path:
    """Write ``figure`` (with ``title`` above it) to ``path`` as a PNG, atomically (a stop leaves the old picture or
    the new, never part of one), and free it."""
    if title:
        figure.suptitle(title)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(figure)
    return path


def grid_name(shape: tuple[int, ...]) -> str:
    """A grid as messages and titles name it: ``256 points`` (1-D), ``64x64`` (2-D)."""
    return f"{shape[0]} points" if len(shape) == 1 else "x".join(map(str, shape))


def plot_sample(inputs: np.ndarray, target: np.ndarray, prediction: np.ndarray, path: str | Path,
                title: str = "") -> Path:
    """Input, target, prediction and error of one sample (first channel of each): 2-D fields as maps with colour
    bars, 1-D fields as curves (``plot_curves``).

    Target and prediction share one colour scale, so a difference in colour is a difference in value;
    the error has a symmetric scale around zero.
    """
    if inputs.ndim == 1:
        return plot_curves(inputs, target, prediction, path, title)
    error = prediction - target
    low, high = min(target.min(), prediction.min()), max(target.max(), prediction.max())
    bound = float(np.abs(error).max()) or 1.0
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.8), constrained_layout=True)
    panels = [("input", inputs, {"cmap": "viridis"}),
              ("target", target, {"cmap": "magma", "vmin": low, "vmax": high}),
              ("prediction", prediction, {"cmap": "magma", "vmin": low, "vmax": high}),
              ("prediction - target", error, {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound})]
    for axis, (name, field, style) in zip(axes, panels):
        image = axis.imshow(field.T, origin="lower", extent=(0, 1, 0, 1), **style)
        axis.set_title(name)
        figure.colorbar(image, ax=axis, shrink=0.85)
    return save_figure(figure, path, title)


def plot_curves(inputs: np.ndarray, target: np.ndarray, prediction: np.ndarray, path: str | Path,
                title: str = "") -> Path:
    """One 1-D sample on the unit interval: its input; target and prediction on one axis; and their difference."""
    x_in, x_out = (np.linspace(0.0, 1.0, len(field), endpoint=False) for field in (inputs, target))
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.6), constrained_layout=True)
    axes[0].plot(x_in, inputs, color="tab:green")
    axes[0].set_title("input")
    axes[1].plot(x_out, target, color="black", label="target")
    axes[1].plot(x_out, prediction, color="tab:orange", linestyle="--", label="prediction")
    axes[1].set_title("target and prediction")
    axes[1].legend()
    axes[2].plot(x_out, prediction - target, color="tab:red")
    axes[2].axhline(0.0, color="grey", linewidth=0.5)
    axes[2].set_title("prediction - target")
    for axis in axes:
        axis.set_xlabel("x")
        axis.grid(alpha=0.3)
    return save_figure(figure, path, title)


def plot_error_curve(errors: dict[int, float], path: str | Path, xlabel: str, ylabel: str, title: str = "") -> Path:
    """Mean test error against an integer setting (grid size, lead time), one marker per value."""
    keys = sorted(errors)
    figure, axis = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
    axis.plot(keys, [errors[k] for k in keys], marker="o")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_xticks(keys)
    axis.grid(alpha=0.3)
    if title:
        axis.set_title(title)
    return save_figure(figure, path)


def plot_error_by_resolution(errors: dict[int, float], path: str | Path, label: str = "rel. L2") -> Path:
    """Mean test error against grid size (nodes a side)."""
    return plot_error_curve(errors, path, "grid size (nodes a side)", f"mean {label} error")


def plot_error_by_lead(errors: dict[int, float], path: str | Path, title: str = "") -> Path:
    """Mean test error of an autoregressive rollout against lead time (model calls ahead)."""
    return plot_error_curve(errors, path, "lead time (steps ahead)", "mean rel. L2 error", title)


def plot_solution(axes: list[np.ndarray], prediction: np.ndarray, reference: np.ndarray, path: str | Path,
                  title: str = "", names: tuple[str, ...] = ("x", "y")) -> Path:
    """A physics-informed solution against its reference on the test grid: 1D curves, or 2D maps with the error."""
    error = prediction - reference
    if len(axes) == 1:
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, constrained_layout=True)
        top.plot(axes[0], reference, color="black", lw=1.0, label="reference")
        top.plot(axes[0], prediction, color="tab:red", lw=0.8, ls="--", label="solution")
        top.legend(loc="upper right")
        bottom.plot(axes[0], error, color="tab:blue", lw=0.8)
        bottom.set_ylabel("solution - reference")
        bottom.set_xlabel(names[0])
    else:
        extent = (float(axes[0][0]), float(axes[0][-1]), float(axes[1][0]), float(axes[1][-1]))
        low, high = float(reference.min()), float(reference.max())
        bound = float(np.abs(error).max()) or 1.0
        figure, panels = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
        for axis, (name, field, style) in zip(panels, [
                ("reference", reference, {"cmap": "magma", "vmin": low, "vmax": high}),
                ("solution", prediction, {"cmap": "magma", "vmin": low, "vmax": high}),
                ("solution - reference", error, {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound})]):
            image = axis.imshow(field.T, origin="lower", extent=extent, aspect="auto", **style)
            axis.set_title(name)
            axis.set_xlabel(names[0])
            axis.set_ylabel(names[1])
            figure.colorbar(image, ax=axis, shrink=0.85)
    return save_figure(figure, path, title)
