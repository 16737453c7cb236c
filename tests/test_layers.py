"""Layers that point one way: the trained operator, loading and evaluation sit below training and Lightning."""

from __future__ import annotations

import ast
import importlib
import os
import sys
from pathlib import Path

import torch
from conftest import ROOT, run_command

import pdeop.data
from pdeop.inference import TrainedOperator
from pdeop.training.operator_module import OperatorModule

PACKAGE = ROOT / "pdeop"
# Below training: what pdeop.load_pretrained, evaluate and predict are made of.
INFERENCE = [PACKAGE / "inference.py", *sorted((PACKAGE / "pretrained").glob("*.py")),
             *sorted((PACKAGE / "evaluation").glob("*.py"))]
LIGHTNING = ("pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics")


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at its top or inside functions (``from a import b`` counts as a.b too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_pretrained_and_evaluation_import_nothing_of_training_or_lightning():
    offending = {str(path.relative_to(ROOT)): sorted(name for name in imported_modules(path)
                                                     if name.split(".")[0] in LIGHTNING
                                                     or name == "pdeop.training" or name.startswith("pdeop.training."))
                 for path in INFERENCE}
    assert not {path: names for path, names in offending.items() if names}


def test_load_pretrained_imports_no_lightning(tmp_path):
    """The shipped bundle loads, predicts and is evaluated in a process that never imports Lightning."""
    script = (
        "import sys, torch, pdeop\n"
        "from pdeop.evaluation.metrics import per_sample_errors\n"
        "from pdeop.data.store import FieldSet\n"
        "m = pdeop.load_pretrained('fno-darcy')\n"
        "x = torch.rand(2, 1, 41, 41) * 9 + 3\n"
        "with torch.no_grad():\n"
        "    y = m.predict(x)\n"
        "per_sample_errors(m, FieldSet(x.numpy(), y.numpy(), {}, 1), periodic=False)\n"
        "print(type(m).__module__, type(m).__name__, tuple(y.shape))\n"
        f"print(sorted(name for name in {LIGHTNING!r} if name in sys.modules))\n"
    )
    env = {**os.environ, "PDEOP_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("PDEOP_REGISTRY", None)
    result = run_command([sys.executable, "-c", script], timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-2:] == ["pdeop.inference TrainedOperator (2, 1, 41, 41)", "[]"], result.stdout


def test_the_lazy_data_exports_are_defined_where_their_table_says():
    """The trust gate resolves a stored config's data module through this table without importing it."""
    for name, module in pdeop.data.LAZY_EXPORTS.items():
        obj = getattr(importlib.import_module(module), name)
        assert (obj.__module__, getattr(pdeop.data, name)) == (module, obj), name


def test_the_training_module_is_the_operator_with_the_same_state_keys():
    """``OperatorModule`` is a ``TrainedOperator``: checkpoints, bundles and resumed runs share their keys."""
    from neuralop.models import FNO

    from pdeop.data.normalise import channel_normaliser

    def normaliser():
        return channel_normaliser(torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))

    model = FNO(n_modes=(4, 4), hidden_channels=4, in_channels=1, out_channels=1, n_layers=1)
    module = OperatorModule(model, torch.nn.MSELoss(), torch.optim.Adam, normaliser(), normaliser())
    operator = TrainedOperator(model, normaliser(), normaliser())
    assert OperatorModule.__mro__.index(TrainedOperator) < [c.__name__ for c in OperatorModule.__mro__].index(
        "LightningModule")
    assert list(module.state_dict()) == list(operator.state_dict())
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(module(x), operator(x)) and torch.equal(module.predict(x), operator(x))


def test_fine_tuning_names_no_foreign_format_and_every_format_has_its_hook():
    """Poseidon/scOT loading sits behind its format's hook (pdeop/pretrained/foreign.py), not in training."""
    from pdeop.pretrained.foreign import FORMATS

    imports = imported_modules(PACKAGE / "training" / "finetune.py")
    assert not {name for name in imports if "poseidon" in name or "scot" in name.lower()}, imports
    assert [(form.name, form.choice) for form in FORMATS] == [("Poseidon", "scot")]
    for form in FORMATS:
        assert callable(form.recognises) and callable(form.load) and isinstance(form.model_class, type)
