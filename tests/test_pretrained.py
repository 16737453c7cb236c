"""Bundles, the registry and fine-tuning: export round trips exactly, tampering is refused, fetches happen once."""

import datetime
import functools
import http.server
import io
import json
import shutil
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_DATA, TINY_FNO, run_entry
from hydra.utils import get_object, instantiate
from neuralop.losses import LpLoss
from safetensors import safe_open
from safetensors.torch import load_file

from pdeop.conf import CONF
from pdeop.data.generation import subsample_grid
from pdeop.errors import ConfigError
from pdeop.export import export
from pdeop.io import file_sha256
from pdeop.pretrained import CheckpointError, RegistryError, load_pretrained, verify_bundle
from pdeop.pretrained import card
from pdeop.pretrained.bundle import MANIFEST, manifest_text, save_tensors
from pdeop.pretrained.registry import registry
from pdeop.pretrained.trusted import allow_lists
from pdeop.training.finetune import build_model

pytestmark = pytest.mark.slow

FIXED_DAY = datetime.date(2026, 1, 1)  # the model card's export date, fixed where two exports are compared


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


def test_safetensors_files_are_the_same_bytes_on_every_save(tmp_path):
    """safetensors writes its metadata in a Rust HashMap's order, new on every save (safetensors issue #584);
    ``save_tensors`` sorts it. Sixteen keys: an unsorted save would come out unsorted all but once in 16!."""
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.float64), "i": torch.arange(3)}
    metadata = {f"key{i}": str(i) for i in range(16)}
    files = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for file in files:
        save_tensors(tensors, file, metadata)
    assert len({file.read_bytes() for file in files}) == 1
    header = files[0].read_bytes()[8:8 + int.from_bytes(files[0].read_bytes()[:8], "little")]
    assert list(json.loads(header)["__metadata__"]) == sorted(metadata)
    with safe_open(str(files[0]), "pt") as stored:
        assert stored.metadata() == metadata
    assert all(torch.equal(value, tensors[name]) for name, value in load_file(files[0]).items())


def test_exporting_one_checkpoint_twice_writes_the_same_bytes(exported, tmp_path, monkeypatch):
    """Two exports of the tested checkpoint (and the one the fixture made before them, for the weights'
    files: the model card, which dates the export, may cross midnight) are the same file for file, archive too."""
    best, fixture_bundle = exported
    monkeypatch.setattr(card, "datetime", SimpleNamespace(date=SimpleNamespace(today=lambda: FIXED_DAY)))
    digests = [export(str(best), tmp_path / run / "tiny-fno", name="tiny-fno", description="Test bundle.")
               for run in ("first", "second")]
    names = ["config.yaml", "model.safetensors", "normaliser.safetensors", "README.md", MANIFEST]
    first, second = (tmp_path / run / "tiny-fno" for run in ("first", "second"))
    assert digests[0] == digests[1]
    for name in names:
        assert file_sha256(first / name) == file_sha256(second / name), name
    assert file_sha256(archive_of(first)) == file_sha256(archive_of(second))
    for name in ("model.safetensors", "normaliser.safetensors"):
        assert file_sha256(first / name) == file_sha256(fixture_bundle / name), name


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


@pytest.mark.slow
def test_export_settings_of_another_type_are_one_line(exported, data_dir, tmp_path):
    """``overwrite=no`` is the string 'no', which counted as true and replaced the bundle; ``out=`` empty named '.'."""
    best, bundle = exported
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    for overrides, message in (([f"out={bundle}", "overwrite=no"], "overwrite: expected bool, got 'no'"),
                               ([f"out={bundle}", "archive=off"], "archive: expected bool, got 'off'"),
                               (["out="], "out: no bundle directory given")):
        result = run_entry(["-m", "pdeop.export"], [f"ckpt={best}", *overrides], tmp_path / "hydra", data_dir,
                           check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
        assert f"pdeop error: {message}" in result.stderr, result.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before


def test_overwrite_replaces_a_bundle_and_nothing_else(exported, tmp_path):
    """``overwrite=true`` replaces a bundle directory whole, but refuses a folder that is no bundle (it would have
    been deleted) and, without it, an archive already at ``<out>.tar.gz``."""
    best, _ = exported
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("keep")
    with pytest.raises(CheckpointError, match=r"'.*project' is not a pdeop bundle \(it holds src\); overwrite=true"):
        export(str(best), project, overwrite=True)
    assert (project / "src" / "main.py").read_text() == "keep"

    bundle = tmp_path / "tiny"
    digest = export(str(best), bundle)
    shutil.rmtree(bundle)
    archive = archive_of(bundle)
    archive.write_bytes(b"someone's archive")
    with pytest.raises(CheckpointError, match=r"'.*tiny.tar.gz' already exists; choose another out"):
        export(str(best), bundle)
    with pytest.raises(CheckpointError, match=r"'.*tiny.tar.gz' is not a pdeop bundle archive \(not a tar archive\)"):
        export(str(best), bundle, overwrite=True)
    assert archive.read_bytes() == b"someone's archive" and not bundle.exists()
    archive.unlink()
    assert export(str(best), bundle, overwrite=True) == digest
    assert export(str(best), bundle, overwrite=True) == digest  # over a bundle: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "tiny", "tiny.tar.gz"]  # nothing set aside left

def test_overwrite_refuses_an_archive_path_that_is_no_bundle_archive_in_one_line(exported, data_dir, tmp_path):
    """``overwrite=true`` with ``<out>.tar.gz`` a folder (its write failed with IsADirectoryError), a user's file or
    a user's tar archive: one line, before the model is loaded, and what was there is kept."""
    best, _ = exported
    (tmp_path / "a.tar.gz" / "inside").mkdir(parents=True)
    (tmp_path / "b.tar.gz").write_bytes(b"someone's archive")
    (tmp_path / "notes.txt").write_text("mine")
    with tarfile.open(tmp_path / "c.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "notes.txt", arcname="notes.txt")
    kept = {path: path.read_bytes() for path in (tmp_path / "b.tar.gz", tmp_path / "c.tar.gz")}
    for out, problem in (("a", "it is not a file"), ("b", "not a tar archive"),
                         ("c", "its member 'notes.txt' is not one of a bundle's files")):
        result = run_entry(["-m", "pdeop.export"], [f"ckpt={best}", f"out={tmp_path / out}", "overwrite=true"],
                           tmp_path / "hydra", data_dir, check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
        errors = [line for line in result.stderr.splitlines() if line.startswith("pdeop error:")]
        assert len(errors) == 1 and errors[0].startswith(
            f"pdeop error: out: '{tmp_path / out}.tar.gz' is not a pdeop bundle archive ({problem}"), errors
        assert errors[0].endswith("overwrite=true replaces only a bundle archive, choose another out or pass "
                                  "archive=false"), errors
    assert (tmp_path / "a.tar.gz" / "inside").is_dir() and not (tmp_path / "a").exists()
    assert {path: path.read_bytes() for path in kept} == kept


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


def hostile_member(case: str, outside: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Members of an archive that would write to ``outside`` (a folder above the cache) if unpacked as they say."""
    def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, link, len(data)
        return info, data

    return {
        "traversal": [member("../../../escaped", b"out")],  # cache/.<staging>/unpacked/../../../ = outside
        "absolute": [member(str(outside / "absolute"), b"out")],
        "symlink": [member("tiny-fno/link", kind=tarfile.SYMTYPE, link=str(outside)),
                    member("tiny-fno/link/through", b"out")],  # a file written through the link
        "hardlink": [member("tiny-fno/hard", kind=tarfile.LNKTYPE, link=str(outside / "victim")),
                     member("tiny-fno/hard", b"overwritten")],  # the linked file written over
    }[case]


@pytest.mark.parametrize(("case", "reason"), [("traversal", "climbs out"), ("absolute", "is an absolute path"),
                                              ("symlink", "is a symbolic link"), ("hardlink", "is a hard link")])
def test_an_archive_member_that_could_write_outside_is_refused_and_nothing_is_written(use_registry, tmp_path, case,
                                                                                      reason):
    (tmp_path / "victim").write_text("precious")
    members = [*hostile_member(case, tmp_path), (tarfile.TarInfo("tiny-fno/SHA256SUMS"), b"")]
    with tarfile.open(tmp_path / "hostile.tar.gz", "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    use_registry("hostile", "hostile.tar.gz", "0" * 64)
    before = sorted(tmp_path.rglob("*"))  # the cache folder is made on the first fetch: it must be left empty
    with pytest.raises(RegistryError) as error:
        load_pretrained("hostile")
    message = str(error.value)
    assert "\n" not in message and "hostile.tar.gz refused, nothing unpacked" in message, message
    assert f"member {members[0][0].name!r} {reason}" in message, message
    assert sorted(set(tmp_path.rglob("*")) - {tmp_path / "cache"}) == before
    assert not any((tmp_path / "cache").iterdir())
    assert (tmp_path / "victim").read_text() == "precious" and (tmp_path / "victim").stat().st_nlink == 1



def test_a_replacement_stopped_between_its_renames_puts_the_old_bundle_back(exported, tmp_path, monkeypatch):
    """SIGTERM (SystemExit) or an error after the old bundle is set aside and before the new one is in: out= is the
    old bundle again, nothing hidden left; an empty folder is exported into without overwrite."""
    import os

    best, _ = exported
    empty = tmp_path / "empty"
    empty.mkdir()
    export(str(best), empty)
    bundle = tmp_path / "tiny"
    digest = export(str(best), bundle, archive=False)
    real_replace, calls = os.replace, []

    def stopped(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the new bundle's rename
            raise SystemExit(143)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", stopped)
    with pytest.raises(SystemExit):
        export(str(best), bundle, archive=False, overwrite=True)
    monkeypatch.undo()
    assert verify_bundle(bundle) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "empty.tar.gz", "tiny"]

@pytest.mark.parametrize("name", ["../../escaped/x", "/abs/x", ".hidden", "team/../../x", "team//x"])
def test_a_registry_name_that_is_not_a_plain_name_is_refused(use_registry, tmp_path, name):
    """The name is the cache folder's: one with a separator or leading dot could unpack outside the cache."""
    use_registry(name, "x.tar.gz", "0" * 64)
    with pytest.raises(RegistryError, match=r"registry '.*registry.yaml': entry name .* is not a plain name"):
        load_pretrained("fno-darcy")
    assert not (tmp_path / "cache").exists()

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
            if "_target_" in node and top in allow_lists():
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
    assert {kind for kind, _ in found} == set(allow_lists())
    missing = sorted(f"{kind}: {target}" for kind, target in found if target not in allow_lists()[kind])
    assert not missing, f"add these to pdeop/pretrained/trusted.py: {missing}"
    for allowed in allow_lists().values():
        for spelling, definition in allowed.items():
            obj = get_object(spelling)
            assert f"{obj.__module__}.{obj.__qualname__}" == definition, spelling


def test_a_new_model_is_its_module_and_its_yaml(tmp_path, monkeypatch):
    """The allow-list of models is read from the package's model configs: a module and a yaml file are all a new
    model needs before its checkpoints load (docs/models.md), and a model the package does not ship stays out."""
    import pdeop.conf
    from pdeop.pretrained.trusted import check_stored_config, shipped_models

    (tmp_path / "tiny_net.py").write_text("import torch\n\nclass TinyNet(torch.nn.Linear):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    conf = tmp_path / "conf"
    shutil.copytree(CONF / "model", conf / "model")
    (conf / "model" / "tiny.yaml").write_text("_target_: tiny_net.TinyNet\nin_features: 1\nout_features: 1\n")
    stored = {"model": {"_target_": "tiny_net.TinyNet", "in_features": 1, "out_features": 1}}
    with pytest.raises(CheckpointError, match="'tiny_net.TinyNet', not one of the model classes"):
        check_stored_config(stored, "run.ckpt")
    monkeypatch.setattr(pdeop.conf, "CONF", conf)
    shipped_models.cache_clear()
    try:
        assert shipped_models()["tiny_net.TinyNet"] == "tiny_net.TinyNet"
        check_stored_config(stored, "run.ckpt")
        (conf / "model" / "tiny.yaml").write_text("_target_: tiny_net.torch.load\n")
        shipped_models.cache_clear()
        with pytest.raises(TypeError, match="tiny.yaml: _target_ 'tiny_net.torch.load' is not an nn.Module class"):
            shipped_models()
    finally:
        monkeypatch.undo()
        shipped_models.cache_clear()
    assert "tiny_net.TinyNet" not in shipped_models()


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


def test_damaged_side_files_of_a_run_leave_the_model_card_without_them(tmp_path, caplog):
    """test_metrics.json and .hydra/overrides.yaml only feed the card: cut short or of another shape they are said
    and left out, where they stopped the export with a traceback."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    checkpoint = run / "checkpoints" / "best-000.ckpt"
    for metrics, overrides in (('{"checkpoint": "x", "test/rel', "[unclosed"), ("[1]", "5"),
                               (f'{{"checkpoint": "{checkpoint}", "test/rel_l2_17": "bad"}}', "[1, 2]")):
        (run / "test_metrics.json").write_text(metrics)
        (run / ".hydra" / "overrides.yaml").write_text(overrides)
        caplog.clear()
        assert card.test_errors(run, checkpoint) is None and card.training_command(run) is None
        assert sum("cannot be read" in record.getMessage() for record in caplog.records) == 2
    (run / "test_metrics.json").write_text(f'{{"checkpoint": "{checkpoint}", "test/rel_l2_17": 0.25}}')
    (run / ".hydra" / "overrides.yaml").write_text("['optim.lr=0.01', 'hydra.run.dir=x']")
    assert card.test_errors(run, checkpoint) == {"test/rel_l2_17": 0.25}
    assert card.training_command(run) == "python train.py optim.lr=0.01"
