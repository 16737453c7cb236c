"""scOT against Poseidon's own code, and Poseidon checkpoint directories loaded strictly for fine-tuning."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_entry
from safetensors.torch import load_file, save_file

from pdeop.errors import ConfigError
from pdeop.models import ScOT
from pdeop.models.scot import ScOTLayer, SelfAttention, fourier_resample
from pdeop.pretrained import CheckpointError, load_pretrained
from pdeop.pretrained.poseidon import ARCHITECTURE, poseidon_config
from pdeop.training.finetune import build_model
from pdeop.training.operator_module import OperatorModule
from pdeop.training.optimisation import parameter_groups

REFERENCE = Path(__file__).parent / "fixtures" / "scot_reference"  # written by make_scot_reference.py

SMALL = dict(in_channels=3, out_channels=2, image_size=32, patch_size=4, embed_dim=8, depths=[2, 1, 1, 1],
             num_heads=[1, 2, 2, 4], skip_connections=[1, 1, 0, 0], window_size=4)


def scot_config(directory: Path) -> dict:
    """The ScOT constructor arguments a Poseidon config.json describes."""
    config = poseidon_config(directory)
    return {"_target_": "pdeop.models.ScOT", "in_channels": config["num_channels"],
            "out_channels": config["num_out_channels"], "image_size": config["image_size"],
            **{argument: config[field] for field, argument in ARCHITECTURE.items()}}


def test_scot_reproduces_poseidons_reference_outputs_at_native_and_resampled_grids():
    """Weights, inputs, lead times and outputs written by camlab-ethz/poseidon's scOT/model.py
    (transformers 4.29.2): shifted windows, ConvNeXt skips, conditioning and the learnt residual."""
    model = build_model({**scot_config(REFERENCE), "pretrained": str(REFERENCE)}).eval()
    io = load_file(REFERENCE / "io.safetensors")
    with torch.no_grad():
        for size in (64, 48, 80):  # 48 and 80 go through the Fourier resampling both ways
            output = model(io[f"input_{size}"], io["time"])
            assert output.shape == io[f"output_{size}"].shape
            assert (output - io[f"output_{size}"]).abs().max() < 1e-5 * io[f"output_{size}"].abs().max()


@pytest.mark.parametrize(("n", "size"), [(16, 32), (32, 16), (17, 16), (16, 17), (85, 128), (128, 85), (33, 17),
                                        ((17, 24), (32, 32)), ((32, 32), (21, 16))])
def test_fourier_resampling_samples_a_band_limited_field_on_the_new_grid(n, size):
    """A field whose frequencies both grids resolve is, after resampling, that field sampled on the new grid: even
    and odd grids alike (Darcy's are odd), and rectangular ones."""
    def field(points: int | tuple[int, int]) -> torch.Tensor:
        rows, columns = (points, points) if isinstance(points, int) else points
        xx, yy = torch.meshgrid(torch.arange(rows, dtype=torch.float64) / rows,
                                torch.arange(columns, dtype=torch.float64) / columns, indexing="ij")
        return (torch.cos(2 * math.pi * 3 * xx) * torch.sin(2 * math.pi * 5 * yy) + 0.5 * torch.sin(2 * math.pi * xx)
                + 0.25 * torch.cos(2 * math.pi * (7 * xx - 2 * yy)) + 0.1)

    resampled = fourier_resample(field(n)[None, None], size)
    assert resampled.shape[-2:] == field(size).shape
    torch.testing.assert_close(resampled[0, 0], field(size), rtol=0, atol=1e-12)


def test_scot_answers_on_the_grid_it_is_given():
    model = ScOT(**SMALL).eval()
    for grid in ((32, 32), (17, 17), (13, 21)):
        assert model(torch.randn(2, 3, *grid)).shape == (2, 2, *grid)


def test_poseidon_sizes_have_the_reference_parameter_counts():
    # counted on the reference implementation: 4 -> 4 channels, conditioned (the paper: ~21M, 158M, 629M)
    assert sum(p.numel() for p in ScOT(4, 4).parameters()) == 20_774_444
    with torch.device("meta"):  # shapes only: B and L would need gigabytes
        for embed_dim, expected in ((96, 157_729_988), (192, 628_575_524)):
            model = ScOT(4, 4, embed_dim=embed_dim, depths=[8, 8, 8, 8])
            assert sum(p.numel() for p in model.parameters()) == expected


def test_lead_time_conditions_every_norm_and_defaults_to_one():
    torch.manual_seed(0)
    model = ScOT(**SMALL)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        early, late = model(x, torch.tensor([0.1, 0.1])), model(x, torch.tensor([0.9, 0.9]))
        assert not torch.allclose(early, late)
        assert torch.equal(model(x), model(x, torch.ones(2)))
    plain = ScOT(**{**SMALL, "use_conditioning": False})
    assert not any("weight.weight" in k for k in plain.state_dict())
    with torch.no_grad():
        assert torch.equal(plain(x, torch.zeros(2)), plain(x, torch.ones(2)))


def test_attention_logit_scale_is_clamped_at_100():
    # SwinV2's scaled cosine attention: the temperature exp(logit_scale) is capped at 100, so raising the parameter
    # past log(100) changes nothing, while changing it below the cap does.
    torch.manual_seed(0)
    attention = SelfAttention(dim=8, heads=2, window=4, qkv_bias=True, dropout=0.0)
    x = torch.randn(3, 16, 8)

    def output(logit_scale: float) -> torch.Tensor:
        with torch.no_grad():
            attention.logit_scale.fill_(logit_scale)
            return attention(x, None)

    capped = output(math.log(100.0))
    torch.testing.assert_close(output(math.log(1000.0)), capped, rtol=0, atol=0)
    assert not torch.allclose(output(math.log(30.0)), capped)


def test_a_window_without_padding_attends_as_a_layer_of_that_window_alone():
    # An unshifted SwinV2 block mixes tokens only inside a window. A 6 x 6 token grid with 4 x 4 windows is padded
    # to 8 x 8 on the right and bottom (the reference's maybe_pad), so the top-left window holds no padding: its
    # output is that of the same layer on the 4 x 4 window alone.
    torch.manual_seed(0)
    kwargs = dict(dim=8, heads=2, window_size=4, shifted=False, mlp_ratio=4.0, qkv_bias=True, dropout=0.0, eps=1e-5,
                  conditional=True)
    grid, alone = ScOTLayer(resolution=6, **kwargs), ScOTLayer(resolution=4, **kwargs)
    with torch.no_grad():
        for p in grid.parameters():  # non-trivial norms and biases
            p.normal_(0, 0.3)
    alone.load_state_dict(grid.state_dict())
    x, t = torch.randn(2, 36, 8), torch.rand(2, 1)
    with torch.no_grad():
        corner = grid(x, t).view(2, 6, 6, 8)[:, :4, :4]
        expected = alone(x.view(2, 6, 6, 8)[:, :4, :4].reshape(2, 16, 8), t).view(2, 4, 4, 8)
    torch.testing.assert_close(corner, expected)


def test_gradients_reach_every_parameter_at_two_resolutions():
    model = ScOT(**SMALL)
    for size in (32, 24):
        model.zero_grad()
        out = model(torch.randn(2, 3, size, size), torch.rand(2))
        assert out.shape == (2, 2, size, size)
        out.square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing


def test_impossible_sizes_are_named():
    with pytest.raises(ConfigError, match=r"model.num_heads\[1\]: 3 does not divide the stage width 16"):
        ScOT(**{**SMALL, "num_heads": [1, 3, 2, 4]})
    with pytest.raises(ConfigError, match=r"model.image_size: 36 / patch_size 4 must be divisible by "
                                          r"2\^\(stages - 1\) = 8; .* set model.image_size=64 \(or 32\)"):
        ScOT(**{**SMALL, "image_size": 36})


def poseidon_directory(tmp_path: Path, model: ScOT, **config) -> Path:
    """A checkpoint directory in Poseidon's published layout, written from one of our models."""
    directory = tmp_path / "poseidon"
    directory.mkdir()
    fields = {"architectures": ["ScOT"], "model_type": "swinv2", "transformers_version": "4.29.2",
              "num_channels": SMALL["in_channels"], "num_out_channels": SMALL["out_channels"],
              "image_size": SMALL["image_size"], "patch_size": 4, "embed_dim": 8, "depths": [2, 1, 1, 1],
              "num_heads": [1, 2, 2, 4], "skip_connections": [1, 1, 0, 0], "window_size": 4, "mlp_ratio": 4.0,
              "qkv_bias": True, "use_conditioning": True, "learn_residual": False, "layer_norm_eps": 1e-5,
              "residual_model": "convnext", "use_absolute_embeddings": False, "pretrained_window_sizes": [0] * 4,
              **config}
    (directory / "config.json").write_text(json.dumps(fields))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / "model.safetensors")
    return directory


def test_a_poseidon_directory_loads_strictly_and_names_what_differs(tmp_path):
    source = ScOT(**SMALL)
    directory = poseidon_directory(tmp_path, source)
    run_config = {"_target_": "pdeop.models.ScOT", **SMALL}
    loaded = build_model({**run_config, "pretrained": str(directory)})
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())

    with pytest.raises(CheckpointError, match=r"another architecture.*model.embed_dim=16 \(checkpoint embed_dim: 8\)"):
        build_model({**run_config, "embed_dim": 16, "pretrained": str(directory)})
    with pytest.raises(ConfigError, match="is a Poseidon \\(scOT\\) checkpoint; choose model=scot"):
        build_model({"_target_": "pdeop.models.T1", "in_channels": 3, "out_channels": 2, "pretrained": str(directory)})
    with pytest.raises(CheckpointError, match="shape mismatch: embeddings.patch_embeddings.projection.weight "
                                              r"\(8, 3, 4, 4\) vs model \(8, 1, 4, 4\)"):
        build_model({**run_config, "in_channels": 1, "pretrained": str(directory)})
    # Poseidon's own fine-tuning to other channels: new embedding and recovery layers, the rest loaded
    other = build_model({**run_config, "in_channels": 1, "out_channels": 1, "pretrained": str(directory),
                         "pretrained_exclude": ["embeddings.patch_embeddings", "patch_recovery"]})
    key = "encoder.layers.0.blocks.1.attention.self.query.weight"
    assert torch.equal(other.state_dict()[key], source.state_dict()[key])

    weights = load_file(directory / "model.safetensors")
    weights.pop("decoder.layers.0.upsample.mixup.weight")
    weights["encoder.layers.0.blocks.0.attention.self.cpb_mlp.0.weight"] = torch.zeros(512, 2)
    broken = shutil.copytree(directory, tmp_path / "broken")
    save_file(weights, broken / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing: decoder.layers.0.upsample.mixup.weight; unexpected: "
                                              r"encoder.layers.0.blocks.0.attention.self.cpb_mlp.0.weight"):
        build_model({**run_config, "pretrained": str(broken)})
    with pytest.raises(CheckpointError, match="is a Poseidon checkpoint .* fine-tune it with model=scot"):
        load_pretrained(directory)


def test_param_lr_gives_matching_parameters_their_own_learning_rate():
    module = OperatorModule(model=ScOT(**SMALL), loss=torch.nn.L1Loss(),
                            optimizer=lambda params: torch.optim.AdamW(params, lr=5e-5),
                            input_normaliser=torch.nn.Identity(), output_normaliser=torch.nn.Identity(),
                            param_lr={"embeddings.*": 5e-4, "patch_recovery.*": 5e-4, "*norm*": 1e-4})
    groups = parameter_groups(module.model, module.param_lr)
    optimizer = torch.optim.AdamW(groups, lr=5e-5)
    lrs = [group["lr"] for group in optimizer.param_groups]
    assert lrs == [5e-5, 5e-4, 5e-4, 1e-4]
    names = {id(p): n for n, p in module.model.named_parameters()}
    assert {names[id(p)].split(".")[0] for p in groups[1]["params"]} == {"embeddings"}
    assert all("norm" in names[id(p)] for p in groups[3]["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(module.model.parameters()))
    module.param_lr = {"encoder.nothing.*": 1e-3}
    with pytest.raises(ConfigError, match="model.param_lr: encoder.nothing.\\* match no trainable parameter"):
        parameter_groups(module.model, module.param_lr)


@pytest.mark.slow
def test_scot_fine_tunes_from_a_poseidon_directory_on_navier_stokes(data_dir, tmp_path):
    source = ScOT(**{**SMALL, "in_channels": 1, "out_channels": 1, "image_size": 16, "patch_size": 2})
    directory = poseidon_directory(tmp_path, source, num_channels=1, num_out_channels=1, image_size=16, patch_size=2)
    run = tmp_path / "run"
    run_entry(["train.py"], [
        "model=scot", "+recipe=scot", "data=navier_stokes", "data.problem.resolution=32", "data.problem.final_time=0.2",
        "data.problem.record_every=0.1", "data.problem.dt=0.01", "data.problem.device=cpu", "data.n_train=8",
        "data.n_val=4", "data.n_test=4", "data.batch_size=4", "data.generate_workers=1", "trainer.max_epochs=1",
        "model.embed_dim=8", "model.depths=[2,1,1,1]", "model.num_heads=[1,2,2,4]", "model.skip_connections=[1,1,0,0]",
        "model.window_size=4", "model.patch_size=2", f"model.pretrained={directory}", "model.freeze=[encoder]",
        "model.param_lr={embeddings.*: 5.0e-4}"], run, data_dir)
    tuned = load_pretrained(run / "checkpoints" / "last.ckpt").model.state_dict()
    reference = source.state_dict()
    assert all(torch.equal(tuned[k], reference[k]) for k in reference if k.startswith("encoder."))
    assert not torch.equal(tuned["patch_recovery.mixup.weight"], reference["patch_recovery.mixup.weight"])
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert {"test/rel_l2_16", "test/rel_l2_32"} <= set(metrics)
