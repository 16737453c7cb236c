"""The GPU path, checked on the CPU: device-resident training batches, torch.compile, and the precision switches.

Device-resident batches must be the DataLoader's batches in the same order (every rank, every epoch, a
resumed run included), so the runs are compared bit for bit; compilation must leave checkpoint keys as
they are; 16-bit precision is refused for the spectral models and allowed for the others.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import ROOT, TINY_DATA, TINY_FNO
from pdeop.conf import CONF
from pdeop.config import check_config
from pdeop.data import FileDataModule
from pdeop.data.sampling import DeviceBatches
from pdeop.errors import ConfigError, user_error_of
from pdeop.models import MgNO, T1
from pdeop.pretrained import load_pretrained
from pdeop.training.acceleration import check_precision, spectral_arithmetic, traceable_contractions
from pdeop.training.run import train

# the tiny Darcy set with 64 training samples in batches of 12: a short last batch every epoch
SMALL_DATA = [*TINY_DATA, "data.batch_size=12", "scheduler.fn.step_size=1", "scheduler.fn.gamma=0.7"]
SMALL_FNO = ["model.n_modes=[8,8]", "model.hidden_channels=8"]


def composed(run: Path, data_dir: Path, *overrides: str):
    """The run config of ``overrides`` on the tiny set (a small FNO unless they choose the model), writing to
    ``run``, quiet and without the test stage."""
    model = [] if any(o.startswith("model=") for o in overrides) else SMALL_FNO
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[
            *SMALL_DATA, *model, f"paths.output_dir={run}", f"paths.data_dir={data_dir}",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "test_after_fit=false",
            *overrides])


def checkpoint(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def learning_curve(run: Path) -> list[tuple[str, ...]]:
    """metrics.csv without its timing columns: what the training computed, row by row."""
    with open(run / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return [tuple(v for k, v in sorted(row.items()) if not k.startswith("time/")) for row in rows]


@pytest.fixture
def resident_batches(monkeypatch) -> list[int]:
    """Counts the epochs served from device-resident tensors."""
    served = []

    class Counted(DeviceBatches):
        def __iter__(self):
            served.append(1)  # at the first batch (a generator): Lightning may call iter() without drawing
            yield from super().__iter__()

    monkeypatch.setattr("pdeop.data.datamodule.DeviceBatches", Counted)
    return served


@pytest.fixture
def matmul_precision():
    """Leaves torch's float32 matmul precision as it found it."""
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


def built(node):
    """``instantiate(node)``, a user error raised as itself rather than in Hydra's wrapper (as the entry points show
    it)."""
    try:
        return instantiate(node)
    except Exception as exc:
        error = user_error_of(exc)
        if error is None:
            raise
        raise error from exc


def fake_trainer(rank: int, world: int, epoch: int = 0, batches_taken: int = 0) -> SimpleNamespace:
    """What the data module reads of its trainer: rank, world size, device, and Lightning's progress counters in
    ``epoch`` after ``batches_taken`` of its batches."""
    epochs = SimpleNamespace(started=epoch + 1, processed=epoch, completed=epoch)
    batches = SimpleNamespace(current=SimpleNamespace(ready=batches_taken), is_last_batch=False)
    return SimpleNamespace(global_rank=rank, world_size=world, state=SimpleNamespace(fn="fit"),
                           strategy=SimpleNamespace(root_device=torch.device("cpu")),
                           fit_loop=SimpleNamespace(epoch_progress=SimpleNamespace(current=epochs),
                                                    epoch_loop=SimpleNamespace(batch_progress=batches)))


def tiny_datamodule(data_dir: Path, tmp_path: Path, *overrides: str):
    cfg = composed(tmp_path / "unused", data_dir, *overrides)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


@pytest.mark.parametrize("world", [1, 2, 3])
def test_device_batches_are_the_loaders_on_every_rank_and_epoch(data_dir, tmp_path, world):
    loader_module = tiny_datamodule(data_dir, tmp_path, "data.device_resident=false")
    resident_module = tiny_datamodule(data_dir, tmp_path, "data.device_resident=true")
    for rank in range(world):
        for epoch in (0, 1, 5):
            for module in (loader_module, resident_module):  # Lightning's counters in the epoch's first batch
                module.trainer = fake_trainer(rank, world, epoch=epoch)
            loader, resident = loader_module.train_dataloader(), resident_module.train_dataloader()
            assert isinstance(resident, DeviceBatches) and not isinstance(loader, DeviceBatches)
            assert len(resident) == len(loader) == -(-(64 // world) // 12)
            # Lightning sets the epoch on a loader's `sampler`, and finds DeviceBatches' the same way
            for sampler in (loader.sampler, resident.sampler):
                sampler.set_epoch(epoch)
            expected, got = list(loader), list(resident)
            assert len(expected) == len(got)
            for (x, y), (rx, ry) in zip(expected, got):
                assert torch.equal(x, rx) and torch.equal(y, ry)
            assert sum(len(x) for x, _ in got) == 64 // world


def test_resident_training_and_its_resume_repeat_the_loader_run_bit_for_bit(data_dir, tmp_path, resident_batches):
    train(composed(tmp_path / "loader", data_dir, "trainer.max_epochs=3", "data.device_resident=false"))
    assert not resident_batches
    resident = tmp_path / "resident"
    train(composed(resident, data_dir, "trainer.max_epochs=1", "data.device_resident=true"))
    train(composed(resident, data_dir, "trainer.max_epochs=3", "data.device_resident=true"))  # auto_resume
    assert len(resident_batches) == 3  # one epoch, then two more after resuming from its checkpoint
    reference, state = checkpoint(tmp_path / "loader"), checkpoint(resident)
    assert state["epoch"] == reference["epoch"] == 2
    assert state["state_dict"].keys() == reference["state_dict"].keys()
    for key, tensor in reference["state_dict"].items():
        assert torch.equal(state["state_dict"][key], tensor), key
    exp_avg = lambda s: s["optimizer_states"][0]["state"][0]["exp_avg"]  # noqa: E731
    assert torch.equal(exp_avg(state), exp_avg(reference))
    assert learning_curve(resident) == learning_curve(tmp_path / "loader")  # train/loss and val/rel_l2, every epoch


def test_auto_keeps_the_loader_on_a_cpu_and_a_split_that_does_not_fit(data_dir, tmp_path, monkeypatch):
    module = tiny_datamodule(data_dir, tmp_path)  # data.device_resident=auto
    assert module.settings.device_resident == "auto"
    assert not isinstance(module.train_dataloader(), DeviceBatches)  # no trainer: the CPU
    # a CUDA device of 1 MiB: the 64 samples of 17 x 17 x 2 float32 (148 KiB) fit a share of 0.25, not of 0.1
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=2**20))
    cuda = SimpleNamespace(global_rank=0, world_size=1, strategy=SimpleNamespace(root_device=torch.device("cuda")))
    train_split = module.splits["train"]
    module.trainer = cuda
    assert module.resident_device(train_split) == torch.device("cuda")
    small = tiny_datamodule(data_dir, tmp_path, "data.device_memory_share=0.1")
    small.trainer = cuda
    assert small.resident_device(train_split) is None
    forced = tiny_datamodule(data_dir, tmp_path, "data.device_memory_share=0.1", "data.device_resident=true")
    forced.trainer = cuda
    with pytest.raises(ConfigError, match=r"^data.device_resident: the training split takes 0 MiB, more than "
                                          r"data.device_memory_share=0.1 of cuda's 0.0 GiB; raise"):
        forced.resident_device(train_split)


def test_device_resident_true_is_refused_without_a_stored_training_split(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"^data.device_resident: true keeps a stored training split on the device, "
                                          r"but data.online=true streams fresh samples"):
        built(composed(tmp_path, data_dir, "data.online=true", "data.device_resident=true").data)
    with pytest.raises(ConfigError, match="data.in_memory=false leaves the training split on disk"):
        FileDataModule(str(tmp_path / "absent.npz"), in_memory=False, device_resident=True)
    with pytest.raises(ConfigError, match=r"^data.device_resident: expected auto, true or false, got 'yes'"):
        built(composed(tmp_path, data_dir, "data.device_resident=yes").data)
    with pytest.raises(ConfigError, match=r"^data.device_memory_share: expected a fraction .* got 1.5"):
        built(composed(tmp_path, data_dir, "data.device_memory_share=1.5").data)


def test_sixteen_bit_precision_is_refused_for_spectral_models_and_allowed_for_the_others():
    from neuralop.models import FNO

    grid = [torch.randn(1, 1, 16, 16).numpy()]
    fno = FNO(n_modes=[8, 8], in_channels=1, out_channels=1, hidden_channels=8, n_layers=2)
    assert spectral_arithmetic(fno, grid).startswith("FFTs (torch.fft.irfftn, torch.fft.rfftn")
    with pytest.raises(ConfigError, match=r"^trainer.precision=bf16-mixed: FNO computes with FFTs \(.*\) and complex "
                                          r"weights, which 16-bit precision breaks .* keep trainer.precision=32-true"):
        check_precision(fno, grid, "bf16-mixed")
    check_precision(fno, grid, "32-true")  # full precision: not even looked at
    t1 = dict(in_channels=1, out_channels=1, modes=[4, 4], width=8, num_layers=1, signal_resolution=[16, 16])
    with pytest.raises(ConfigError, match=r"^trainer.precision=16-mixed: T1 computes with FFTs"):
        check_precision(T1(**t1, transform="dft", activation="sin"), grid, "16-mixed")
    for model in (T1(**t1, transform="dct"),
                  MgNO(in_channels=1, out_channels=1, channels=4, num_layers=1, smoothing=[[1, 0], [1, 0]])):
        assert spectral_arithmetic(model, grid) is None
        check_precision(model, grid, "bf16-mixed")


def test_bf16_trains_a_model_without_ffts_and_fno_is_refused_in_one_line(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"^trainer.precision=bf16-mixed: FNO computes with FFTs"):
        train(composed(tmp_path / "fno", data_dir, "trainer.precision=bf16-mixed", "trainer.max_epochs=1"))
    run = tmp_path / "unet"
    train(composed(run, data_dir, "model=unet", "model.width=8", "model.head_width=8", "trainer.precision=bf16-mixed",
                   "trainer.max_epochs=1"))
    state = checkpoint(run)["state_dict"]
    assert all(t.dtype == torch.float32 for k, t in state.items() if k.startswith("model.") and t.is_floating_point())
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_matmul_precision_is_set_and_checked(data_dir, tmp_path, matmul_precision):
    with pytest.raises(ConfigError, match=r"^trainer.matmul_precision: expected Literal\['highest', 'high', "
                                          r"'medium'\], got 'tf32'"):
        train(composed(tmp_path / "bad", data_dir, "trainer.matmul_precision=tf32"))
    train(composed(tmp_path / "run", data_dir, "trainer.matmul_precision=high", "trainer.max_epochs=1"))
    assert torch.get_float32_matmul_precision() == "high"


def test_compiled_training_keeps_the_checkpoint_keys_and_loads_as_a_pretrained_model(data_dir, tmp_path):
    train(composed(tmp_path / "plain", data_dir, "trainer.max_epochs=1"))
    # Dynamo with the eager backend: the same wrapping and tracing as inductor, without a C compiler's minutes
    compiled = tmp_path / "compiled"
    train(composed(compiled, data_dir, "trainer.max_epochs=1", "trainer.compile=true",
                   "trainer.compile_options.backend=eager"))
    keys = list(checkpoint(compiled)["state_dict"])
    assert keys == list(checkpoint(tmp_path / "plain")["state_dict"])
    assert not any("_orig_mod" in key for key in keys)
    operator = load_pretrained(compiled / "checkpoints" / "last.ckpt")
    assert operator.model.fno_blocks is not None


def test_compiling_traces_fno_as_one_graph_and_computes_the_same():
    """neuralop's opt_einsum contractions break Dynamo's graph at each spectral layer (16 graphs, each block
    specialised on its index); a compiling run routes them through torch.einsum: one graph, the same outputs."""
    from neuralop.models import FNO

    torch.manual_seed(0)
    model = FNO(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=8, n_layers=4, domain_padding=0.1,
                fno_skip="linear", use_channel_mlp=False)
    x = torch.randn(2, 1, 21, 21)
    before = torch._dynamo.explain(model)(x)
    expected = model(x)
    traceable_contractions()
    after = torch._dynamo.explain(model)(x)
    assert before.graph_break_count > 0 and (after.graph_count, after.graph_break_count) == (1, 0)
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)


def test_a_compile_failure_is_one_line_naming_the_switch(data_dir, tmp_path):
    @torch._dynamo.register_backend(name="pdeop_test_broken")
    def broken(graph, example_inputs):
        raise RuntimeError("no code generator here\nand a second line")

    with pytest.raises(ConfigError, match=r"^trainer.compile: torch.compile could not compile FNO \(RuntimeError: "
                                          r"no code generator here\); train without it \(trainer.compile=false\)"):
        train(composed(tmp_path / "run", data_dir, "trainer.max_epochs=1", "trainer.compile=true",
                       "trainer.compile_options.backend=pdeop_test_broken"))
    with pytest.raises(ConfigError, match=r"^trainer.compile_options.modes: not an argument of torch.compile"):
        train(composed(tmp_path / "run2", data_dir, "trainer.compile=true", "+trainer.compile_options.modes=default"))
    with pytest.raises(ConfigError, match=r"^trainer.compile_options: torch.compile refuses .*Unrecognized mode=fast"):
        train(composed(tmp_path / "run3", data_dir, "trainer.compile=true", "trainer.compile_options.mode=fast"))


@pytest.mark.slow
def test_inductor_compiles_fno_on_the_cpu(data_dir, tmp_path):
    """The real thing: inductor's C++ code for FNO (its complex spectral weights run eagerly); needs a C compiler."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler on this machine: inductor cannot generate CPU code")
    run = tmp_path / "inductor"
    train(composed(run, data_dir, "trainer.max_epochs=1", "trainer.compile=true"))
    assert not any("_orig_mod" in key for key in checkpoint(run)["state_dict"])


def test_the_trainer_keys_are_pdeops_and_checked(data_dir, tmp_path):
    cfg = composed(tmp_path, data_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    check_config(config)  # compile, compile_options and matmul_precision are not the Trainer's but are accepted
    config["trainer"]["compile"] = "yes"
    with pytest.raises(ConfigError, match=r"^trainer.compile: expected bool, got 'yes'"):
        check_config(config)


@pytest.mark.slow
def test_two_processes_draw_the_same_batches_from_the_device_as_from_the_loader(train):
    """A real DDP run (2 CPU processes, gloo): each rank's resident slice is its DataLoader's, so the weights agree."""
    ddp = ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2", "data.batch_size=12",
           "test_after_fit=false")
    _, loader = train(*ddp, "data.device_resident=false", run_name="loader")
    _, resident = train(*ddp, "data.device_resident=true", run_name="resident")
    reference, state = checkpoint(loader), checkpoint(resident)
    for key, tensor in reference["state_dict"].items():
        assert torch.equal(state["state_dict"][key], tensor), key
    assert learning_curve(resident) == learning_curve(loader)


def test_the_overhead_benchmark_runs_every_variant_on_the_cpu(data_dir, tmp_path):
    # benchmarks/fno_overhead.py is what a GPU session runs (benchmarks/gpu_session.sh), with no second try: a
    # smoke run here, one epoch of each variant and ablation on the tiny set, keeps it from failing there first.
    summary = tmp_path / "summary.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fno_overhead.py"), "--epochs", "1", "--repeats", "1",
                    "--ablate", "--json", str(summary), *TINY_DATA, *TINY_FNO], check=True, timeout=600, cwd=tmp_path,
                   env={**os.environ, "PDEOP_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)})
    results = json.loads(summary.read_text())
    ablated = [f"pdeop_resident-{name}" for name in ("no_checkpoints", "no_callbacks", "no_sanity_check", "bare")]
    variants = ("plain", "plain_resident", "pdeop", "pdeop_resident", *ablated)
    assert all(results[name]["samples_per_s"] > 0 for name in variants)
    assert results["ablation_saves_s"].keys() == set(ablated)
    # one seed, the same batches: the same model (after one epoch the best weights are the last)
    errors = [results[name]["test_rel_l2"] for name in variants]
    assert all(e.keys() == {"17", "33"} and e == pytest.approx(errors[0], rel=1e-5) for e in errors), errors
