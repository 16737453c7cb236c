"""Does the framework cost speed or accuracy? pdeop's training of neuralop's FNO against a plain PyTorch loop.

Both train the same ``neuralop.models.FNO`` (built from pdeop/conf/model/fno.yaml) on the same stored
Darcy data, with the same epochs, batch size, optimiser, schedule, loss, normalisation and
per-epoch validation, then score the test set with the best-validation weights. The two are
run alternately ``--repeats`` times in one process (which goes first alternates too), and the
medians and their ratio printed. Throughput is training samples over the wall time of the whole
fit, validation and checkpointing included.

    python benchmarks/fno_overhead.py                       # the default Darcy config
    python benchmarks/fno_overhead.py --epochs 20 data=darcy_fno trainer=gpu
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pdeop.conf import CONF
from pdeop.pretrained.build import model_from_config
from pdeop.training.operator_module import OperatorModule
from pdeop.training.run import build_module, build_trainer


def plain_loop(cfg: DictConfig, datamodule, device: torch.device) -> dict:
    """A hand-written loop doing what the framework does, with nothing else."""
    torch.manual_seed(cfg.seed)
    model = model_from_config(OmegaConf.to_container(cfg.model, resolve=True)).to(device)
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

    train_loader = datamodule.train_dataloader()
    val_loader = datamodule.val_dataloader()
    best, best_state = float("inf"), None
    samples = 0
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for epoch in range(cfg.trainer.max_epochs):
        train_loader.sampler.set_epoch(epoch)
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
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
    trainer = build_trainer(cfg)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    sync()
    seconds = time.perf_counter() - start
    results = {k: v for per_loader in trainer.test(module, datamodule=datamodule, ckpt_path="best", verbose=False)
               for k, v in per_loader.items()}
    tests = {res: results[f"test/rel_l2_{res}"] for res in datamodule.test_resolutions}
    samples = cfg.data.n_train * cfg.trainer.max_epochs
    return {"samples_per_s": samples / seconds, "seconds": seconds, "test": tests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=darcy_fno trainer=gpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[
            f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false", f"paths.output_dir={tmp}/run", *args.overrides,
        ])
        datamodule = instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
        device = torch.device("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu")
        results = {"plain": [], "pdeop": []}
        for repeat in range(args.repeats):
            run_cfg = cfg.copy()
            run_cfg.paths.output_dir = f"{tmp}/run{repeat}"
            runs = {"plain": lambda: plain_loop(cfg, datamodule, device),
                    "pdeop": lambda: framework(run_cfg, datamodule, device)}
            # alternate which goes first, so warm-up and drift do not favour one side
            for name in (["plain", "pdeop"] if repeat % 2 == 0 else ["pdeop", "plain"]):
                results[name].append(runs[name]())
            print(f"repeat {repeat}: plain {results['plain'][-1]['samples_per_s']:.1f} samples/s, "
                  f"pdeop {results['pdeop'][-1]['samples_per_s']:.1f} samples/s", flush=True)

    summary = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "epochs": args.epochs, "repeats": args.repeats, "overrides": args.overrides,
        "n_train": cfg.data.n_train, "batch_size": cfg.data.batch_size,
    }
    for name, runs in results.items():
        summary[name] = {
            "samples_per_s": statistics.median(r["samples_per_s"] for r in runs),
            "test_rel_l2": {res: statistics.median(r["test"][res] for r in runs) for res in runs[0]["test"]},
        }
    summary["throughput_ratio"] = summary["pdeop"]["samples_per_s"] / summary["plain"]["samples_per_s"]
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
