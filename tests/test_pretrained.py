"""Bundles, the registry and fine-tuning: export round trips exactly, tampering is refused, fetches happen once."""

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_DATA, TINY_FNO, run_entry
from hydra.utils import get_object, instantiate
from neuralop.losses import LpLoss

from pdeop.conf import CONF
from pdeop.data.generation import subsample_grid
from pdeop.errors import ConfigError
from pdeop.pretrained import CheckpointError, RegistryError, load_pretrained, verify_bundle
from pdeop.pretrained.bundle import MANIFEST, manifest_text
from pdeop.pretrained.registry import registry
from pdeop.pretrained.trusted import TRUSTED
from pdeop.training.finetune import build_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(trained, data_dir, tmp_path_factory):
    """The tested (best) checkpoint of the tiny run, exported with `python -m pdeop.export` as a user would."""
    best = Path(json.loads((trained / "test_metrics.json").read_text())["checkpoint"])
    out = tmp_path_factory.mktemp("export") / "tiny-fno"
    run_entry(["-m", "pdeop.export"], [f"ckpt={best}", f"out={out}", "name=tiny-fno", "description=Test bundle."],
              out.parent / "hydra", data_dir)
    return best, out


@pytest.fixture
def use_registry(tmp_path, monkeypatch):
    """Point pdeop at an empty cache and a registry file holding one entry."""
    monkeypatch.setenv("PDEOP_CACHE_DIR", str(tmp_path / "cache"))

    def _use(name: str, url: str, digest: str) -> Path:
        path = tmp_path / "registry.yaml"
        path.write_text(yaml.safe_dump({name: {"url": url, "sha256": digest, "description": "test"}}))
        monkeypatch.setenv("PDEOP_REGISTRY", str(path))
        return path

    return _use


def predictions(module, resolution: int) -> torch.Tensor:
    x = torch.rand(4, 1, resolution, resolution, generator=torch.Generator().manual_seed(resolution)) * 9 + 3
    with torch.no_grad():
        return module(x)


def archive_of(bundle: Path) -> Path:
    return bundle.with_name(bundle.name + ".tar.gz")


class CountingServer:
    """A real HTTP server on localhost serving one folder, counting the GET requests it answers."""

    def __init__(self, folder: Path):
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_export_then_load_pretrained_predicts_identically_from_checkpoint_bundle_and_name(
        exported, use_registry, data_dir, tmp_path):
    best, bundle = exported
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        ["config.yaml", "model.safetensors", "normaliser.safetensors", "README.md", MANIFEST])
    shutil.copy(archive_of(bundle), tmp_path)
    use_registry("tiny-fno", archive_of(bundle).name, verify_bundle(bundle))  # url relative to the registry file

    from_checkpoint = load_pretrained(best)
    for module in (load_pretrained(bundle), load_pretrained("tiny-fno")):
        for resolution in (17, 33):
            assert torch.equal(predictions(module, resolution), predictions(from_checkpoint, resolution))
    assert (tmp_path / "cache").is_dir() and "paths" not in load_pretrained("tiny-fno").config
    stored = (bundle / "config.yaml").read_text()  # no trace of the machine it was trained on
    assert str(best.parent.parent) not in stored and str(data_dir) not in stored and "<run>/checkpoints" in stored

    tested = json.loads((best.parent.parent / "test_metrics.json").read_text())
    run_entry(["evaluate.py"], ["ckpt=tiny-fno"], tmp_path / "evaluate", data_dir)  # its own data config
    evaluation = json.loads((tmp_path / "evaluate" / "evaluation.json").read_text())["results"]
    assert evaluation["33"]["rel_l2"]["mean"] == pytest.approx(tested["test/rel_l2_33"], abs=1e-5)

    card = (bundle / "README.md").read_text()
    assert f"{tested['test/rel_l2_17']:.4f} at 17x17" in card and f"{tested['test/rel_l2_33']:.4f} at 33x33" in card
    parameters = sum(p.numel() for p in from_checkpoint.model.parameters())
    assert "trainer.max_epochs=2" in card and f"{parameters:,} parameters" in card and "Test bundle." in card


def test_export_refuses_to_overwrite_a_bundle_in_one_line(exported, data_dir, tmp_path):
    """In its own process: pdeop.export's real exit status and its one stderr line, as a user sees them."""
    best, bundle = exported
    before = {p.name: p.stat().st_mtime_ns for p in bundle.iterdir()}
    result = run_entry(["-m", "pdeop.export"], [f"ckpt={best}", f"out={bundle}"], tmp_path / "hydra", data_dir,
                       check=False, own_process=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("pdeop error:")]
    assert errors == [f"pdeop error: out: '{bundle}' already exists; choose another directory or pass overwrite=true"]
    assert {p.name: p.stat().st_mtime_ns for p in bundle.iterdir()} == before


def test_a_registered_bundle_is_fetched_once_and_then_used_offline(exported, use_registry, tmp_path):
    _, bundle = exported
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(archive_of(bundle), served)
    server = CountingServer(served)
    try:
        use_registry("tiny-fno", f"{server.url}/{archive_of(bundle).name}", verify_bundle(bundle))
        first = load_pretrained("tiny-fno")
        assert server.requests == 1
    finally:
        server.stop()
    second = load_pretrained("tiny-fno")  # the server is gone: the cache alone must do
    assert torch.equal(predictions(first, 17), predictions(second, 17))

    entry = registry()["tiny-fno"]
    use_registry("other-fno", entry.url, entry.sha256)
    with pytest.raises(RegistryError) as error:
        load_pretrained("other-fno")
    message = str(error.value)
    assert entry.url in message and str(tmp_path / "cache" / f"other-fno-{entry.sha256[:16]}") in message
    assert "not in the cache" in message


def tampered_copy(bundle: Path, into: Path, rewrite_manifest: bool) -> Path:
    copy = shutil.copytree(bundle, into / bundle.name)
    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-3] ^= 0x55  # a weight's byte, not the header
    (copy / "model.safetensors").write_bytes(bytes(weights))
    if rewrite_manifest:
        (copy / MANIFEST).write_text(manifest_text(copy))
    return copy


def test_a_tampered_bundle_is_refused(exported, use_registry, tmp_path):
    _, bundle = exported
    with pytest.raises(CheckpointError, match=r"refused: model\.safetensors does not match SHA256SUMS"):
        load_pretrained(tampered_copy(bundle, tmp_path / "a", rewrite_manifest=False))

    # consistent sums, but not the bundle the registry recorded: the digest gives it away
    consistent = tampered_copy(bundle, tmp_path / "b", rewrite_manifest=True)
    load_pretrained(consistent)  # on its own it is a valid bundle
    served = tmp_path / "served"
    served.mkdir()
    shutil.make_archive(str(served / "tiny-fno"), "gztar", consistent.parent, consistent.name)
    use_registry("tiny-fno", "served/tiny-fno.tar.gz", verify_bundle(bundle))
    with pytest.raises(CheckpointError, match="refused: its digest is .* the registry expects"):
        load_pretrained("tiny-fno")
    assert not any(p.name.startswith("tiny-fno-") for p in (tmp_path / "cache").iterdir())  # nothing cached

    # a bundle tampered with in the cache after a good fetch
    shutil.copy(archive_of(bundle), served / "tiny-fno.tar.gz")
    load_pretrained("tiny-fno")
    cached = next((tmp_path / "cache").glob("tiny-fno-*"))
    (cached / "config.yaml").write_text((cached / "config.yaml").read_text().replace("n_layers: 4", "n_layers: 3"))
    with pytest.raises(CheckpointError, match="config.yaml does not match"):
        load_pretrained("tiny-fno")


def test_a_stored_config_naming_other_code_is_refused(exported, tmp_path):
    _, bundle = exported
    copy = shutil.copytree(bundle, tmp_path / bundle.name)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["model"]["_target_"] = "os.system"
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    (copy / MANIFEST).write_text(manifest_text(copy))
    with pytest.raises(CheckpointError, match="refused: model._target_ is 'os.system', not one of the model classes"):
        load_pretrained(copy)


def conf_targets() -> set[tuple[str, str]]:
    """(node, target) for every `_target_` that pdeop/conf/ puts under the nodes a stored config is built from."""
    found = set()

    def walk(node, top: str) -> None:
        if isinstance(node, dict):
            if "_target_" in node and top in TRUSTED:
                found.add((top, node["_target_"]))
            for key, value in node.items():
                walk(value, top or key)
        elif isinstance(node, list):
            for value in node:
                walk(value, top)

    for path in CONF.rglob("*.yaml"):
        text = path.read_text()
        group = path.relative_to(CONF).parent.parts
        walk(yaml.safe_load(text) or {}, "" if "@package _global_" in text or not group else group[0])
    return found


def test_every_target_conf_builds_is_on_the_allow_list_and_is_what_it_says():
    found = conf_targets()
    assert {kind for kind, _ in found} == set(TRUSTED)
    missing = sorted(f"{kind}: {target}" for kind, target in found if target not in TRUSTED[kind])
    assert not missing, f"add these to pdeop/pretrained/trusted.py: {missing}"
    for allowed in TRUSTED.values():
        for spelling, definition in allowed.items():
            obj = get_object(spelling)
            assert f"{obj.__module__}.{obj.__qualname__}" == definition, spelling


def fno_config(**changes) -> dict:
    config = yaml.safe_load((CONF / "model" / "fno.yaml").read_text())
    return {**config, "in_channels": 1, "out_channels": 1, "pretrained": None, "freeze": [], **changes}


def test_fine_tuning_loads_the_weights_and_freezes_what_it_is_told(exported, data_dir, tmp_path):
    _, bundle = exported
    run = tmp_path / "finetune"
    run_entry(["train.py"], [*TINY_DATA, *TINY_FNO, "trainer.max_epochs=1", f"model.pretrained={bundle}",
                             "model.freeze=[lifting,fno_blocks.convs]"], run, data_dir)
    pretrained = load_pretrained(bundle).model.state_dict()
    tuned = load_pretrained(run / "checkpoints" / "last.ckpt").model.state_dict()
    for name, value in tuned.items():
        if not isinstance(value, torch.Tensor):
            continue
        frozen = name.startswith(("lifting.", "fno_blocks.convs."))
        assert torch.equal(value, pretrained[name]) == frozen, name

    with pytest.raises(CheckpointError, match=r"shape mismatch: fno_blocks\.convs\.0\.bias \(32, 1, 1\) vs model "
                                              r"\(16, 1, 1\)"):
        build_model(fno_config(pretrained=str(bundle), hidden_channels=16))
    with pytest.raises(ConfigError, match="is a neuralop.models.FNO, but this run's model is pdeop.models.T1"):
        build_model({"_target_": "pdeop.models.T1", "pretrained": str(bundle)})
    with pytest.raises(ConfigError, match="model.freeze: no parameter is named 'encoder'.*parts are fno_blocks, "
                                          "lifting, projection"):
        build_model(fno_config(freeze=["encoder"]))


def test_the_shipped_bundle_predicts_fresh_darcy_samples_as_its_card_says(tmp_path, monkeypatch):
    monkeypatch.setenv("PDEOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PDEOP_REGISTRY", raising=False)
    module = load_pretrained("fno-darcy")
    card = next((tmp_path / "cache").glob("fno-darcy-*/README.md")).read_text()
    assert "0.0283 at 41x41, 0.0459 at 81x81" in card

    problem = instantiate(module.config["data"]["problem"])
    inputs = problem.sample_inputs(8, np.random.default_rng(2026))  # samples the model has never seen
    solutions = problem.solve(inputs)
    for factor, card_error in ((6, 0.0283), (3, 0.0459)):
        a, u = (torch.from_numpy(subsample_grid(f, factor)).float() for f in (inputs, solutions))
        with torch.no_grad():
            error = LpLoss(d=2, p=2, reduction="mean")(module(a), u).item()
        assert error < 2 * card_error, (factor, error)

    tuned = build_model(fno_config(pretrained="fno-darcy"))  # the default FNO config fine-tunes it as it is
    shipped = module.model.state_dict()
    assert all(torch.equal(v, shipped[k]) for k, v in tuned.state_dict().items() if isinstance(v, torch.Tensor))
