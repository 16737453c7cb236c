"""Does the framework cost speed or accuracy? pdeop's training of neuralop's FNO against a plain PyTorch loop.

Both train the same ``neuralop.models.FNO`` (built from pdeop/conf/model/fno.yaml) on the same stored
Darcy data, with the same epochs, batch size, optimiser, schedule, loss, normalisation and
per-epoch validation, then score the test set with the best-validation weights. Each variant is
run ``--repeats`` times in one process, the order rotating from repeat to repeat, and the medians
and their ratios printed. Throughput is training samples over the wall time of the whole fit,
validation and checkpointing included.

The variants (``--variants``, all by default): ``plain``, an ordinary loop whose batches come from
pdeop's DataLoader and are copied to the device; ``plain_resident``, the same loop drawing its
batches by index from training tensors kept on the device (in the same order); ``pdeop``, the
framework with ``data.device_resident=false``; ``pdeop_resident``, with ``data.device_resident=true``.
On a GPU, ``plain_resident / plain`` is what the data path alone gains and ``pdeop_resident /
plain_resident`` what the framework costs once both draw their batches on the device. The plain loops
follow ``trainer.compile`` and ``trainer.matmul_precision`` as pdeop does.

Where that cost goes: ``--ablate`` adds ``pdeop_resident`` with parts of the framework taken away by config
overrides (``ABLATIONS``): its two checkpoints an epoch, its other callbacks, the sanity check, and all of these
with no logger (``bare``, Lightning's own loop alone). A variant without checkpoints is tested with its last
weights, not its best ones. ``pdeop_resident-<ablation>`` also names one in ``--variants``.

    python benchmarks/fno_overhead.py                       # the default Darcy config
    python benchmarks/fno_overhead.py --epochs 20 data=darcy_fno trainer=gpu
    python benchmarks/fno_overhead.py --variants plain,pdeop trainer=gpu trainer.matmul_precision=high
    python benchmarks/fno_overhead.py --ablate --variants plain_resident,pdeop_resident --epochs 20 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pdeop.conf import CONF
from pdeop.data.sampling import training_sampler
from pdeop.pretrained.build import model_from_config
from pdeop.training.acceleration import Acceleration, accelerate, compile_network
from pdeop.training.operator_module import OperatorModule
from pdeop.training.run import build_module, build_trainer

VARIANTS = ("plain", "plain_resident", "pdeop", "pdeop_resident")
CHECKPOINTS = ["~callbacks.checkpoint", "~callbacks.latest", "++trainer.enable_checkpointing=false"]
OTHER_CALLBACKS = [f"~callbacks.{name}" for name in ("sigterm_agreement", "step_seed", "lr_monitor", "throughput",
                                                     "stream_monitor", "rank_consistency", "nonfinite_guard",
                                                     "prediction_plots")]
NO_SANITY_CHECK = ["++trainer.num_sanity_val_steps=0"]
ABLATIONS = {  # pdeop_resident with a part of the framework removed, by config overrides (bare: and no logger)
    "no_checkpoints": CHECKPOINTS,
    "no_callbacks": OTHER_CALLBACKS,
    "no_sanity_check": NO_SANITY_CHECK,
    "bare": CHECKPOINTS + OTHER_CALLBACKS + NO_SANITY_CHECK,
}


def loader_batches(datamodule, device: torch.device) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """An epoch's training batches as an ordinary loop gets them: from the DataLoader, each copied to ``device``."""
    loader = datamodule.train_dataloader()

    def epoch(number: int):
        loader.sampler.set_epoch(number)
        for x, y in loader:
            yield x.to(device), y.to(device)

    return epoch


def resident_batches(datamodule, device: torch.device) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """An epoch's training batches indexed out of tensors kept on ``device``, in the DataLoader's order."""
    train = datamodule.splits["train"]
    x_all, y_all = (torch.from_numpy(a).to(device) for a in (train.inputs, train.outputs))
    sampler = training_sampler(range(len(x_all)), datamodule.settings.shuffle_seed)
    batch_size = datamodule.settings.batch_size

    def epoch(number: int):
        sampler.set_epoch(number)
        for indices in torch.tensor(list(sampler)).to(device).split(batch_size):
            yield x_all[indices], y_all[indices]

    return epoch


def plain_loop(cfg: DictConfig, datamodule, device: torch.device, resident: bool = False) -> dict:
    """A hand-written loop doing what the framework does, with nothing else; ``resident``: batches from the device."""
    torch.manual_seed(cfg.seed)
    model = model_from_config(OmegaConf.to_container(cfg.model, resolve=True)).to(device)
    acceleration = Acceleration.of(cfg.trainer)
    torch.set_float32_matmul_precision(acceleration.matmul_precision)
    if acceleration.compile:
        compile_network(model, acceleration.compile_options)
    optimizer = instantiate(cfg.optim)(model.parameters())
    scheduler = instantiate(cfg.scheduler.fn)(optimizer)
    loss_fn = instantiate(cfg.loss)
    metric = OperatorModule.relative_l2
    x_norm = datamodule.input_normaliser.to(device)
    y_norm = datamodule.output_normaliser.to(device)

    def predict(x):
        return y_norm.inverse_transform(model(x_norm.transform(x)))

    def evaluate(loader) -> float:
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                total += metric(predict(x), y).item() * x.shape[0]
                count += x.shape[0]
        model.train()
        return total / count

    batches = (resident_batches if resident else loader_batches)(datamodule, device)
    val_loader = datamodule.val_dataloader()
    best, best_state = float("inf"), None
    samples = 0
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for epoch in range(cfg.trainer.max_epochs):
        for x, y in batches(epoch):
            optimizer.zero_grad()
            loss = loss_fn(predict(x), y)
            loss.backward()
            optimizer.step()
            samples += x.shape[0]
        scheduler.step()
        val = evaluate(val_loader)
        if val < best:
            best, best_state = val, copy.deepcopy(model.state_dict())
    sync()
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    tests = {res: evaluate(loader) for res, loader in zip(datamodule.test_resolutions, datamodule.test_dataloader())}
    return {"samples_per_s": samples / seconds, "seconds": seconds, "test": tests}


def framework(cfg: DictConfig, datamodule, device: torch.device) -> dict:
    """pdeop's path as train.py runs it: its LightningModule, trainer, callbacks, checkpoints and logger."""
    pl.seed_everything(cfg.seed, verbose=False)
    config = OmegaConf.to_container(cfg, resolve=True)
    module = build_module(cfg, datamodule, config)
    accelerate(module.model, Acceleration.of(cfg.trainer), cfg.trainer.precision, datamodule.preflight_inputs)
    trainer = build_trainer(cfg)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    sync()
    seconds = time.perf_counter() - start
    best = "best" if trainer.checkpoint_callback is not None else None  # an ablation may have no checkpoints
    results = {k: v for per_loader in trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
               for k, v in per_loader.items()}
    tests = {res: results[f"test/rel_l2_{res}"] for res in datamodule.test_resolutions}
    samples = cfg.data.n_train * cfg.trainer.max_epochs
    return {"samples_per_s": samples / seconds, "seconds": seconds, "test": tests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)} and pdeop_resident-<ablation>")
    parser.add_argument("--ablate", action="store_true",
                        help=f"also run pdeop_resident without each of: {', '.join(ABLATIONS)}")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=darcy_fno trainer=gpu")
    args = parser.parse_args()
    ablated = [f"pdeop_resident-{name}" for name in ABLATIONS]
    variants = args.variants.split(",")
    variants += [name for name in ablated if args.ablate and name not in variants]
    if not variants or any(v not in VARIANTS + tuple(ablated) for v in variants):
        parser.error(f"--variants: expected a comma-separated choice of {', '.join(VARIANTS)} or "
                     f"{', '.join(ablated)}, got {args.variants!r}")

    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(str(CONF), version_base="1.3"):
        overrides = [f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false",
                     "trainer.enable_model_summary=false", f"paths.output_dir={tmp}/run", *args.overrides]
        cfg = compose("config", overrides=overrides)
        if str(cfg.trainer.precision) not in ("32", "32-true"):
            parser.error(f"trainer.precision={cfg.trainer.precision}: the plain loops run in float32; "
                         "compare at 32-true")
        configs, datamodules = {}, {}
        for resident in (False, True):  # the plain loops use the first for validation, test and the DataLoader
            configs[resident] = cfg.copy()
            configs[resident].data.device_resident = resident
            datamodules[resident] = instantiate(configs[resident].data)
            datamodules[resident].prepare_data()
            datamodules[resident].setup("fit")
        ablation_configs = {f"pdeop_resident-{name}": compose("config", overrides=overrides + removed)
                            for name, removed in ABLATIONS.items() if f"pdeop_resident-{name}" in variants}
        for name, ablation_cfg in ablation_configs.items():
            ablation_cfg.data.device_resident = True
            if name == "pdeop_resident-bare":
                ablation_cfg.logger = {}  # whichever loggers the overrides chose
        device = torch.device("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu")
        results = {name: [] for name in variants}
        for repeat in range(args.repeats):
            def framework_run(name: str, run_cfg: DictConfig, resident: bool) -> dict:
                run_cfg = run_cfg.copy()
                run_cfg.paths.output_dir = f"{tmp}/run{repeat}-{name}"
                return framework(run_cfg, datamodules[resident], device)

            runs = {"plain": lambda: plain_loop(cfg, datamodules[False], device),
                    "plain_resident": lambda: plain_loop(cfg, datamodules[False], device, resident=True),
                    "pdeop": lambda: framework_run("pdeop", configs[False], False),
                    "pdeop_resident": lambda: framework_run("pdeop_resident", configs[True], True)}
            runs |= {name: (lambda name=name: framework_run(name, ablation_configs[name], True))
                     for name in ablation_configs}
            # rotate which goes first, so warm-up and drift favour none
            for name in variants[repeat % len(variants):] + variants[:repeat % len(variants)]:
                results[name].append(runs[name]())
            print(f"repeat {repeat}: " + ", ".join(f"{name} {results[name][-1]['samples_per_s']:.1f} samples/s"
                                                   for name in variants), flush=True)

    summary = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "epochs": args.epochs, "repeats": args.repeats, "overrides": args.overrides,
        "n_train": cfg.data.n_train, "batch_size": cfg.data.batch_size,
    }
    for name, runs in results.items():
        summary[name] = {
            "samples_per_s": statistics.median(r["samples_per_s"] for r in runs),
            "fit_s": statistics.median(r["seconds"] for r in runs),
            "test_rel_l2": {res: statistics.median(r["test"][res] for r in runs) for res in runs[0]["test"]},
        }
    ratios = {"throughput_ratio": ("pdeop", "plain"), "resident_throughput_ratio": ("pdeop_resident", "plain_resident"),
              "pdeop_resident_over_plain": ("pdeop_resident", "plain"),
              "plain_data_path_gain": ("plain_resident", "plain"), "pdeop_data_path_gain": ("pdeop_resident", "pdeop")}
    for key, (over, under) in ratios.items():
        if over in summary and under in summary:
            summary[key] = summary[over]["samples_per_s"] / summary[under]["samples_per_s"]
    if "pdeop_resident" in summary:  # what each removed part cost, in median seconds of the whole fit
        summary["ablation_saves_s"] = {name: summary["pdeop_resident"]["fit_s"] - summary[name]["fit_s"]
                                       for name in summary if name.startswith("pdeop_resident-")}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
