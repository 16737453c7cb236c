"""Per-sample errors of a trained operator on stored fields, and their summary statistics."""

from __future__ import annotations

import numpy as np
import torch
from neuralop.losses import H1Loss

from pdeop.data.store import FieldSet
from pdeop.data.tasks import AllToAll
from pdeop.inference import TrainedOperator


def per_sample_errors(module: TrainedOperator, fields: FieldSet, periodic: bool, batch_size: int = 32) -> dict:
    """Relative L2, H1 and L1 error of every sample, as arrays in sample order.

    Relative L1 (sum |error| / sum |target|) is Poseidon's metric, which it reports as the median
    over test samples.

    A rollout task's ``rel_l2`` is each sample's mean over model calls of the call's relative L2
    (FNO's and LSM's ``test_l2_step`` terms, ``test/rel_l2_step_<n>`` in training), and
    ``rel_l2_full`` that of the whole rolled-out trajectory (their ``test_l2_full``,
    ``test/rel_l2_full_<n>``).

    H1 is neuraloperator's finite-difference ``H1Loss`` (central differences; one-sided at the
    boundary unless ``periodic``), over the unit domain.
    """
    spatial = fields.inputs.ndim - 2
    h1 = H1Loss(d=spatial, reduction="sum", periodic_in_x=periodic, periodic_in_y=periodic, periodic_in_z=periodic)
    l2, l1, h1_errors, leads, full = [], [], [], [], []
    with torch.no_grad():
        for start in range(0, len(fields.inputs), batch_size):
            x = torch.from_numpy(fields.inputs[start:start + batch_size])
            y = torch.from_numpy(fields.outputs[start:start + batch_size])
            t = None if fields.lead_times is None else torch.from_numpy(fields.lead_times[start:start + batch_size])
            prediction = module.predict(x, t)
            # per channel, then averaged over channels: the training metric's convention (LpLoss)
            dims = tuple(range(2, y.ndim))
            ratio = torch.linalg.vector_norm(prediction - y, dim=dims) / torch.linalg.vector_norm(y, dim=dims)
            l1.append(((prediction - y).abs().sum(dim=dims) / y.abs().sum(dim=dims)).mean(dim=1))
            if module.rollout is None:
                l2.append(ratio.mean(dim=1))
            else:
                l2.append(module.rollout.step_errors(prediction, y).mean(dim=1))
                full.append(module.rollout.full_errors(prediction, y))
                leads.append(module.rollout.lead_errors(prediction, y))
            h1_errors += [h1(prediction[i:i + 1], y[i:i + 1]).item() for i in range(len(y))]
    errors = {"rel_l2": torch.cat(l2).numpy(), "rel_h1": np.asarray(h1_errors), "rel_l1": torch.cat(l1).numpy()}
    if leads:  # rollouts: the whole trajectory's error, and [samples, horizon]
        errors["rel_l2_full"] = torch.cat(full).numpy()
        errors["rel_l2_by_lead"] = torch.cat(leads).numpy()
    return errors


def summary(errors: np.ndarray, lead_times: np.ndarray | None = None) -> dict:
    """Mean, median and worst error, with the worst sample's index; for all-to-all pairs (``lead_times``) also
    the worst pair's trajectory and lead, which its index (trajectory-major pairs) does not tell a reader."""
    worst = int(errors.argmax())
    stats = {"mean": float(errors.mean()), "median": float(np.median(errors)), "worst": float(errors.max()),
             "worst_sample": worst}
    if lead_times is not None:
        stats["worst_trajectory"], stats["worst_lead"] = AllToAll.locate(worst, lead_times)
    return stats


def evaluate_fields(module: TrainedOperator, fields: FieldSet, periodic: bool) -> dict:
    """Summary statistics of the errors on one stored split at one resolution.

    Pairs with lead times (all-to-all tasks) also get the mean relative L2 error per lead time.
    """
    errors = per_sample_errors(module, fields, periodic)
    by_lead = errors.pop("rel_l2_by_lead", None)
    result = {"samples": len(fields.inputs),
              **{name: summary(values, fields.lead_times) for name, values in errors.items()}}
    if by_lead is not None:  # rollouts: the mean error at each lead (model calls ahead)
        result["rel_l2_by_lead"] = {str(k + 1): float(v) for k, v in enumerate(by_lead.mean(axis=0))}
    if fields.lead_times is not None:
        leads = np.round(fields.lead_times, 6)
        result["rel_l2_by_lead_time"] = {f"{lead:g}": float(errors["rel_l2"][leads == lead].mean())
                                         for lead in np.unique(leads)}
    return result
