"""Hostile bundles, checkpoints and places: a stored config never runs code, and every refusal is one line.

Each hostile file starts from the shipped ``fno-darcy`` bundle (or a checkpoint made from it), is tampered
with, and is re-signed (``SHA256SUMS`` recomputed) so that the integrity check passes and the config gate
alone stands between the file and its payload. A payload, if run, creates ``MARKER`` in the test's folder.
"""

from __future__ import annotations

import base64
import importlib
import io
import os
import pickle
import re
import shutil
import types
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_DATA, TINY_FNO, run_command
from hydra.utils import get_object, instantiate

from pdeop.io import UnwritablePathError
from pdeop.pretrained import CheckpointError, load_pretrained, verify_bundle
from pdeop.pretrained.bundle import MANIFEST, manifest_text
from pdeop.pretrained.trusted import allow_lists

from .conftest import ARCHIVE, entry_command, entry_env, pdeop_error_line, read_only

# Every module an allowed `_target_` is spelled through, with the node kind it serves.
ALLOWED_MODULES = {spelling.rpartition(".")[0]: kind for kind, allowed in allow_lists().items()
                   for pair in allowed.items() for spelling in pair}


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file a payload creates if it runs; every test asserts it never appears."""
    return tmp_path / "MARKER"


def resigned(bundle: Path, into: Path, config_text: str) -> Path:
    """A copy of ``bundle`` with ``config_text`` as its config.yaml and SHA256SUMS recomputed to match."""
    copy = into / "hostile-bundle"
    copy.mkdir()
    for path in bundle.iterdir():
        if path.name not in ("config.yaml", MANIFEST):
            os.link(path, copy / path.name)
    (copy / "config.yaml").write_text(config_text)
    (copy / MANIFEST).write_text(manifest_text(copy))
    return copy


def shipped_config(bundle: Path) -> dict:
    return yaml.safe_load((bundle / "config.yaml").read_text())


def with_node(config: dict, dotted: str, value) -> dict:
    """``config`` with ``value`` set at the dotted key (``"data.problem.forcing"``)."""
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


def chain_to_save(module: str) -> str:
    """A dotted path from ``module`` through its attributes to ``torch.save`` (``pdeop.models.t1.torch.save``).

    ``torch.save(obj, f)`` writes any file: a live payload that Hydra's own best-effort blocklist lets through
    (it stops ``os.system``).
    """
    frontier = [(importlib.import_module(module), module)]
    for _ in range(3):
        deeper = []
        for current, path in frontier:
            for name, value in sorted(vars(current).items()):
                if value is torch.save:
                    return f"{path}.{name}"
                if isinstance(value, types.ModuleType) and not name.startswith("_"):
                    deeper.append((value, f"{path}.{name}"))
        frontier = deeper
    return f"{module}.torch.save"


def writes_marker(marker: Path, through: str = "pdeop.models") -> dict:
    """A node that writes the marker file when Hydra builds it, spelled through an allowed module."""
    return {"_target_": chain_to_save(through), "obj": "pwned", "f": str(marker)}


class Touch:
    """Pickles as a call of ``os.system`` that creates the marker: what unpickling code means."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def reviewer_exploit(bundle: Path, marker: Path) -> str:
    """Issue 21's config.yaml: the model node is ``torch.load(weights_only=False)`` of a pickle in ``!!binary``."""
    saved = io.BytesIO()
    torch.save(Touch(marker), saved)
    payload = base64.b64encode(saved.getvalue()).decode()
    model = (f"model:\n  _target_: pdeop.models.field.torch.load\n  weights_only: false\n  f:\n"
             f"    _target_: pdeop.models.field.torch.serialization.io.BytesIO\n"
             f"    initial_bytes: !!binary {payload}\n")
    text = (bundle / "config.yaml").read_text()
    return text[:text.index("model:\n")] + model


def refused(ref, match: str) -> str:
    with pytest.raises(CheckpointError, match=match) as error:
        load_pretrained(ref)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.fault("issue 21's exploit (torch.load of a !!binary pickle) built by Hydra directly, without the gate",
                   "the marker appears: the payload is live, so the refusals in this file are meaningful")
def test_the_payloads_are_live_without_the_gate(shipped, marker, observed):
    model = yaml.safe_load(reviewer_exploit(shipped, marker))["model"]
    instantiate(model)
    assert marker.exists()
    marker.unlink()
    instantiate(writes_marker(marker))
    assert marker.exists()
    observed("both payloads created the marker when built without the gate")


@pytest.mark.fault("bundle: issue 21's exploit (model = pdeop.models.field.torch.load, weights_only false, "
                   "!!binary pickle), re-signed", "refused at config.yaml's !!binary tag; the payload never runs")
def test_the_reviewers_exploit_is_refused(shipped, marker, tmp_path, observed):
    bundle = resigned(shipped, tmp_path, reviewer_exploit(shipped, marker))
    message = refused(bundle, r"config\.yaml' refused: line \d+ has the YAML tag '!!binary'")
    assert not marker.exists()
    observed(message)


@pytest.mark.parametrize("module", sorted(ALLOWED_MODULES))
@pytest.mark.fault("bundle: a _target_ spelled as an attribute chain through {module} to torch.save (writes any "
                   "file), re-signed",
                   "refused, naming the key and the target; nothing imported or run")
def test_an_attribute_chain_through_an_allowed_module_is_refused(shipped, marker, tmp_path, module, observed):
    kind = ALLOWED_MODULES[module]
    payload = writes_marker(marker, through=module)
    if payload["_target_"] != f"{module}.torch.save":  # a real chain: the old prefix check let it reach torch.save
        assert get_object(payload["_target_"]) is torch.save
    config = shipped_config(shipped)
    config[kind] = {**config[kind], **payload}
    bundle = resigned(shipped, tmp_path, yaml.safe_dump(config, sort_keys=False))
    message = refused(bundle, rf"refused: {kind}\._target_ is '{payload['_target_']}', not one of the {kind} classes")
    assert not marker.exists()
    observed(message)


@pytest.mark.parametrize("node", ["model.conv_module", "loss.measure", "optim.lr", "data.problem.forcing",
                                  "data.problem.linear_solver", "data.task", "data.stream"])
@pytest.mark.fault("bundle: a node that writes a file (torch.save, through an allowed module) nested at {node}, "
                   "re-signed",
                   "refused, naming {node}._target_; the payload never runs")
def test_a_nested_target_is_refused_wherever_it_hides(shipped, marker, tmp_path, node, observed):
    kind = node.split(".")[0]
    through = {"model": "pdeop.models", "loss": "neuralop.losses", "optim": "torch.optim", "data": "pdeop.data"}[kind]
    config = with_node(shipped_config(shipped), node, writes_marker(marker, through))
    bundle = resigned(shipped, tmp_path, yaml.safe_dump(config, sort_keys=False))
    message = refused(bundle, rf"refused: {node}\._target_ is '[\w.]+torch\.save', not one of the {kind} classes")
    assert not marker.exists()
    observed(message)


@pytest.mark.parametrize("key", ["weights_only", "checkpoint_path", "path", "file", "filename", "ckpt_path",
                                 "weights", "url"])
@pytest.mark.fault("bundle: the model node given '{key}' (a loader option or a file), re-signed",
                   "refused, naming model.{key}")
def test_a_loader_key_in_the_model_node_is_refused(shipped, tmp_path, key, observed):
    config = with_node(shipped_config(shipped), f"model.{key}", False if key == "weights_only" else "/etc/passwd")
    bundle = resigned(shipped, tmp_path, yaml.safe_dump(config, sort_keys=False))
    observed(refused(bundle, rf"refused: model\.{key}: a stored model config may not name files or loader options"))


@pytest.mark.parametrize("node, directive, value", [
    ("loss", "_args_", ["touch MARKER"]), ("model", "_recursive_", False), ("data", "_convert_", "object"),
    ("model", "_partial_", True), ("optim", "_partial_", False)])
@pytest.mark.fault("bundle: the Hydra directive {directive}: {value} in the {node} node, re-signed",
                   "refused, naming {node}.{directive}")
def test_hydra_directives_other_than_the_optimisers_partial_are_refused(shipped, tmp_path, node, directive, value,
                                                                        observed):
    config = with_node(shipped_config(shipped), f"{node}.{directive}", value)
    bundle = resigned(shipped, tmp_path, yaml.safe_dump(config, sort_keys=False))
    observed(refused(bundle, rf"refused: {node}\.{directive}: a stored config carries no Hydra directive"))


@pytest.mark.parametrize("payload, tag", [
    ("!!python/object/apply:os.system ['touch {marker}']", "!!python/object/apply:os.system"),
    ("!!python/name:os.system ''", "!!python/name:os.system"),
    ("!!binary aGVsbG8=", "!!binary"),
    ("!!set {{a: null}}", "!!set"),
    ("2026-01-01", "!!timestamp")])
@pytest.mark.fault("bundle: config.yaml with the YAML tag {tag} as a value, re-signed",
                   "refused, naming config.yaml, its line and the tag")
def test_yaml_tags_in_a_bundle_config_are_refused(shipped, marker, tmp_path, payload, tag, observed):
    text = (shipped / "config.yaml").read_text().replace("\nseed: 0\n", f"\nseed: {payload.format(marker=marker)}\n")
    bundle = resigned(shipped, tmp_path, text)
    message = refused(bundle, rf"'{bundle / 'config.yaml'}' refused: line \d+ has the YAML tag '{tag}'")
    assert not marker.exists()
    observed(message)


@pytest.mark.fault("bundle: config.yaml with 40 levels of doubling YAML aliases (a billion laughs), re-signed",
                   "refused at once, naming the first shared key")
def test_yaml_aliases_cannot_blow_up_the_check(shipped, tmp_path, observed):
    laughs = "".join(f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]\n" for i in range(1, 40))
    text = (shipped / "config.yaml").read_text() + "l0: &l0 [lol, lol]\n" + laughs
    bundle = resigned(shipped, tmp_path, text)
    observed(refused(bundle, r"refused: l1\[0\] is the same list or mapping as another key"))


@pytest.mark.fault("bundle: an interpolation (${{oc.env:HOME}}) in the model node, re-signed",
                   "refused: a stored config is resolved")
def test_an_interpolation_in_a_built_node_is_refused(shipped, tmp_path, observed):
    config = with_node(shipped_config(shipped), "model.hidden_channels", "${oc.env:HOME}")
    bundle = resigned(shipped, tmp_path, yaml.safe_dump(config, sort_keys=False))
    observed(refused(bundle, r"refused: model\.hidden_channels is an interpolation"))


@pytest.mark.fault("registry: a name whose archive (digest recorded) holds a bundle with a hostile loss node",
                   "refused before the cache, naming the archive URL; nothing cached, the payload never runs")
def test_a_registered_hostile_bundle_never_enters_the_cache(shipped, marker, tmp_path, monkeypatch, observed):
    config = with_node(shipped_config(shipped), "loss", writes_marker(marker, "neuralop.losses"))
    bundle = resigned(shipped, tmp_path, yaml.safe_dump(config, sort_keys=False))
    archive = Path(shutil.make_archive(str(tmp_path / "hostile"), "gztar", bundle.parent, bundle.name))
    entry = {"url": archive.name, "sha256": verify_bundle(bundle)}
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump({"evil": entry}))
    monkeypatch.setenv("PDEOP_REGISTRY", str(tmp_path / "registry.yaml"))
    monkeypatch.setenv("PDEOP_CACHE_DIR", str(tmp_path / "cache"))
    message = refused("evil", rf"'{archive.as_uri()}' refused: loss\._target_ is")
    assert not marker.exists() and not any(p.name.startswith("evil-") for p in (tmp_path / "cache").iterdir())
    observed(message)


def checkpoint_of(bundle: Path, path: Path, config: dict) -> Path:
    """A pdeop checkpoint (``state_dict`` + ``pdeop_config``) holding the bundle's weights and ``config``."""
    state = {k: v for k, v in load_pretrained(bundle).state_dict().items() if isinstance(v, torch.Tensor)}
    torch.save({"state_dict": state, "pdeop_config": config}, path)
    return path


@pytest.mark.parametrize("case", ["model target", "task target", "bytes value", "tensor value"])
@pytest.mark.fault("checkpoint: a .ckpt whose pdeop_config has a hostile {case}",
                   "refused, naming the file and the key; the payload never runs")
def test_a_checkpoint_whose_config_is_hostile_is_refused(shipped, marker, tmp_path, case, observed):
    config = shipped_config(shipped)
    assert load_pretrained(checkpoint_of(shipped, tmp_path / "clean.ckpt", config)).config == config
    edit, match = {
        "model target": (("model", {**config["model"], **writes_marker(marker)}), r"refused: model\._target_ is"),
        "task target": (("data.task", writes_marker(marker, "pdeop.data.tasks")), r"refused: data\.task\._target_ is"),
        "bytes value": (("seed", pickle.dumps(Touch(marker))), r"refused: seed holds a bytes value"),
        "tensor value": (("model.n_layers", torch.tensor(4)), r"refused: model\.n_layers holds a Tensor value"),
    }[case]
    hostile = checkpoint_of(shipped, tmp_path / "hostile.ckpt", with_node(config, *edit))
    message = refused(hostile, rf"'{hostile}' {match}")
    assert not marker.exists()
    observed(message)


@pytest.mark.parametrize("content", ["random bytes", "a text file", "a truncated checkpoint", "code"])
@pytest.mark.fault("checkpoint: a .ckpt that is {content}",
                   "one line naming the file: not a checkpoint / truncated or damaged / needs arbitrary unpickling")
def test_a_checkpoint_file_that_is_no_checkpoint_or_holds_code_is_told_apart(tmp_path, marker, content, observed):
    path = tmp_path / "model.ckpt"
    if content == "random bytes":
        path.write_bytes(bytes(range(7, 256)) * 16)
    elif content == "a text file":
        path.write_text("model: fno\nepochs: 10\n")
    else:
        torch.save({"state_dict": {"w": torch.zeros(64)}, "pdeop_config": Touch(marker) if content == "code" else {}},
                   path)
        if content == "a truncated checkpoint":
            path.write_bytes(path.read_bytes()[:300])
    expected = {"random bytes": "is not a checkpoint: PyTorch checkpoints are zip archives",
                "a text file": "is not a checkpoint: PyTorch checkpoints are zip archives",
                "a truncated checkpoint": "is truncated or damaged",
                "code": r"needs arbitrary unpickling to load \(it names the Python global 'posix\.system'"}[content]
    message = refused(path, rf"checkpoint '{path}' {expected}")
    assert not marker.exists()
    observed(message)


def run_refused(script: list[str], overrides: list[str], tmp_path: Path, data_dir: Path) -> str:
    """Run an entry point that must refuse: exit status 2, one ``pdeop error:`` line, no traceback."""
    result = run_command(entry_command(script, overrides, tmp_path / "run"), 300, env=entry_env(data_dir))
    assert result.returncode == 2, result.stderr[-3000:]
    return pdeop_error_line(result.stderr)


@pytest.mark.fault("python evaluate.py ckpt=<bundle whose model kwargs hold a node writing a file>",
                   "exit 2, one pdeop error line naming the bundle and model.conv_module; the payload never runs")
def test_evaluate_refuses_a_hostile_bundle(shipped, marker, tmp_path, data_dir, observed):
    config = with_node(shipped_config(shipped), "model.conv_module", writes_marker(marker))
    bundle = resigned(shipped, tmp_path, yaml.safe_dump(config, sort_keys=False))
    line = run_refused(["evaluate.py"], [f"ckpt={bundle}"], tmp_path, data_dir)
    assert f"'{bundle}' refused: model.conv_module._target_ is" in line
    assert not marker.exists()
    observed(line)


@pytest.mark.fault("python train.py model.pretrained=<issue 21's exploit bundle>",
                   "exit 2, one pdeop error line naming config.yaml and !!binary; the payload never runs")
def test_fine_tuning_refuses_a_hostile_bundle(shipped, marker, tmp_path, data_dir, observed):
    bundle = resigned(shipped, tmp_path, reviewer_exploit(shipped, marker))
    line = run_refused(["train.py"], [*TINY_DATA, *TINY_FNO, "trainer.max_epochs=1", f"model.pretrained={bundle}"],
                       tmp_path, data_dir)
    assert f"'{bundle / 'config.yaml'}' refused" in line and "'!!binary'" in line
    assert not marker.exists()
    observed(line)


@pytest.mark.fault("load_pretrained('fno-darcy') with a read-only, empty PDEOP_CACHE_DIR",
                   "one error naming the cache directory and PDEOP_CACHE_DIR")
def test_a_read_only_cache_is_named(tmp_path, monkeypatch, observed):
    with read_only(tmp_path / "cache") as cache:
        monkeypatch.setenv("PDEOP_CACHE_DIR", str(cache))
        monkeypatch.delenv("PDEOP_REGISTRY", raising=False)
        with pytest.raises(UnwritablePathError, match=f"'{cache}' is .*; set PDEOP_CACHE_DIR to write elsewhere"):
            load_pretrained("fno-darcy")
        assert not any(cache.iterdir())
    observed("UnwritablePathError naming the cache and PDEOP_CACHE_DIR; nothing written")


@pytest.mark.parametrize("script", ["evaluate.py", "predict.py"])
@pytest.mark.fault("python {script} ckpt=fno-darcy out=<a read-only directory>/<file>",
                   "exit 2, one pdeop error line naming the directory and out=, before any model is loaded")
def test_a_read_only_out_is_named(script, tmp_path, data_dir, observed):
    with read_only(tmp_path / "out") as out:
        line = run_refused([script], ["ckpt=fno-darcy", f"out={out}/result"], tmp_path, data_dir)
    assert f"'{out}' is" in line and "set out= to write elsewhere" in line
    observed(line)



@pytest.mark.fault("a re-signed bundle whose allowed model is given a wrong-typed argument",
                   "refused naming the bundle and the key, no constructor traceback")
def test_an_allowed_target_with_bad_arguments_is_one_line(shipped, tmp_path, observed):
    config = with_node(shipped_config(shipped), "model.hidden_channels", "wide")
    bundle = resigned(shipped, tmp_path, yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(CheckpointError) as refused:
        load_pretrained(bundle)
    observed(str(refused.value))
    assert str(refused.value) == (f"'{bundle}': its config does not fit this pdeop (model.hidden_channels: "
                                  f"expected int, got 'wide' (str))")


@pytest.mark.parametrize("case, changes, message", [
    ("a negative width", {"hidden_channels": -5}, "its config does not fit this pdeop (model: FNO cannot be built "
                                                  "from these settings (RuntimeError: Trying to create tensor with "
                                                  "negative dimension"),
    ("a model of petabytes", {"hidden_channels": 200000, "n_modes": [2000, 2000]},
     "does not fit the model; shape mismatch: model.fno_blocks"),
])
@pytest.mark.fault("a re-signed bundle whose model node asks for {case}",
                   "refused in one line naming the bundle; the oversized model compared on the meta device against "
                   "the stored weights, never allocated")
def test_a_model_the_weights_cannot_fill_is_refused_before_it_is_built(shipped, tmp_path, case, changes, message,
                                                                      observed):
    import resource

    config = shipped_config(shipped)
    config["model"].update(changes)
    bundle = resigned(shipped, tmp_path, yaml.safe_dump(config, sort_keys=False))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError) as refused:
        load_pretrained(bundle)
    assert str(bundle) in str(refused.value) and message in str(refused.value), str(refused.value)
    assert "\n" not in str(refused.value)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mib < 500
    observed(f"{str(refused.value)[:160]}...; peak memory grew {grown_mib:.0f} MiB")


@pytest.mark.fault("a re-signed bundle whose output normaliser std is NaN",
                   "refused in one line naming the bundle and the statistic (it evaluated to a table of nan, exit 0)")
def test_non_finite_normaliser_statistics_are_refused(shipped, tmp_path, observed):
    from safetensors.torch import load_file

    from pdeop.pretrained.bundle import save_tensors

    bundle = resigned(shipped, tmp_path, (shipped / "config.yaml").read_text())
    stats = load_file(bundle / "normaliser.safetensors")
    stats["output_normaliser.std"] = torch.full_like(stats["output_normaliser.std"], float("nan"))
    (bundle / "normaliser.safetensors").unlink()  # a hard link to the shipped file: replace, do not write through
    save_tensors(stats, bundle / "normaliser.safetensors")
    (bundle / MANIFEST).write_text(manifest_text(bundle))
    with pytest.raises(CheckpointError, match=r"normaliser statistics hold NaN or Inf \(output_normaliser.std\)") \
            as refused:
        load_pretrained(bundle)
    assert str(bundle) in str(refused.value)
    observed(str(refused.value))


def overwritten_in_a_record(path: Path) -> str:
    """``path`` (a zip checkpoint) with 16 bytes in the middle of its largest record zeroed, in place; the record."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)
    with open(path, "r+b") as f:
        f.seek(record.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
        f.seek(record.header_offset + 30 + name_length + extra_length + record.file_size // 2)
        f.write(bytes(16))
    return record.filename


@pytest.mark.fault("checkpoint: 16 bytes of a weight record overwritten in place (a disk error, an altered copy)",
                   "refused in one line naming the file and the record that fails its CRC-32 (torch.load checks "
                   "none: the altered weights loaded without a word)")
def test_a_checkpoint_damaged_in_place_is_refused(shipped, tmp_path, observed):
    path = checkpoint_of(shipped, tmp_path / "model.ckpt", shipped_config(shipped))
    clean = torch.load(path, weights_only=True)["state_dict"]
    record = overwritten_in_a_record(path)
    altered = torch.load(path, weights_only=True)["state_dict"]  # the fault is live: torch loads it
    assert any(not torch.equal(clean[key], altered[key]) for key in clean)
    message = refused(path, rf"checkpoint '{path}' is truncated or damaged \(Bad CRC-32 for file '{record}'\)")
    observed(message)


@pytest.mark.parametrize("case", ["an .npz renamed", "a bundle's .tar.gz"])
@pytest.mark.fault("checkpoint: {case} given as the checkpoint", "one line saying what the file is instead")
def test_a_file_of_another_kind_given_as_a_checkpoint_says_what_it_is(tmp_path, case, observed):
    import numpy as np

    path = tmp_path / "model.ckpt"
    if case == "an .npz renamed":
        np.savez(tmp_path / "arrays.npz", x=np.zeros(3))
        (tmp_path / "arrays.npz").rename(path)
        expected = r"is a zip archive but not a PyTorch checkpoint \(it has no data.pkl record"
    else:
        shutil.copyfile(ARCHIVE, path)
        expected = r"is not a checkpoint: .* \(it is gzip-compressed: an exported bundle's .tar.gz\? Unpack it"
    observed(refused(path, rf"checkpoint '{path}' {expected}"))


@pytest.mark.parametrize("case", ["NaN weights", "integer weights", "complex weights", "per-sample normaliser"])
@pytest.mark.fault("checkpoint: {case} (re-saved)", "refused in one line naming the file and the tensors (they loaded: "
                   "NaN evaluated to a table of nan with exit 0, integers were cast into the weights)")
def test_weights_the_model_cannot_hold_are_refused(shipped, tmp_path, case, observed):
    state = {k: v for k, v in load_pretrained(shipped).state_dict().items() if isinstance(v, torch.Tensor)}
    weight = next(key for key, value in state.items() if key.startswith("model.") and value.is_floating_point())
    if case == "NaN weights":
        state[weight] = torch.full_like(state[weight], float("nan"))
        expected = rf"its weights hold NaN or Inf \({re.escape(weight)}\)"
    elif case == "integer weights":
        state[weight] = (state[weight] * 1000).to(torch.int32)
        expected = rf"other kinds of number: {re.escape(weight)} \(torch.int32 vs model torch.float32\)"
    elif case == "complex weights":
        state[weight] = state[weight].to(torch.complex64)
        expected = rf"other kinds of number: {re.escape(weight)} \(torch.complex64 vs model torch.float32\)"
    else:
        state["input_normaliser.mean"] = torch.zeros(7, 7)
        expected = r"its normaliser statistics are not per channel \(input_normaliser.mean \(7, 7\)"
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": state, "pdeop_config": shipped_config(shipped)}, path)
    observed(refused(path, rf"'{path}'.*{expected}"))


@pytest.mark.parametrize("case", ["pdeop_config a string", "global_step a string", "a weight an integer"])
@pytest.mark.fault("checkpoint: {case}", "refused in one line naming the file and the entry (it was a TypeError or "
                   "AttributeError traceback)")
def test_a_checkpoint_whose_entries_are_of_other_types_is_refused(shipped, tmp_path, case, observed):
    state = {k: v for k, v in load_pretrained(shipped).state_dict().items() if isinstance(v, torch.Tensor)}
    checkpoint = {"state_dict": state, "pdeop_config": shipped_config(shipped), "global_step": 3}
    if case == "pdeop_config a string":
        checkpoint["pdeop_config"] = "model: fno"
        expected = "its pdeop_config is of type str, expected dict"
    elif case == "global_step a string":
        checkpoint["global_step"] = "abc"
        expected = "its global_step is of type str, expected int"
    else:
        state["model.extra"] = 5
        expected = "its state_dict's 'model.extra' is of type int, expected a tensor"
    path = tmp_path / "model.ckpt"
    torch.save(checkpoint, path)
    observed(refused(path, rf"checkpoint '{path}': {expected}"))


@pytest.mark.fault("model.pretrained: a physics-informed run's checkpoint whose config has no model node",
                   "one line naming the file (a KeyError traceback)")
def test_a_physics_checkpoint_without_a_model_node_is_one_line(tmp_path, observed):
    from pdeop.pretrained import pretrained_weights

    path = tmp_path / "physics.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(2)},
                "pdeop_config": {"data": {"_target_": "pdeop.data.collocation.CollocationDataModule"}}}, path)
    with pytest.raises(CheckpointError, match=rf"'{path}': its config has no model node naming") as error:
        pretrained_weights(path)
    observed(str(error.value))
