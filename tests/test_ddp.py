"""Multi-process training: sharding without repeats, identical weights on every rank, exact metrics."""

import csv

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pdeop.data.sampling import RankSlice, training_sampler
from pdeop.training.run import build_module


@pytest.mark.parametrize("n, world", [(64, 2), (65, 2), (10, 3)])
def test_ranks_share_each_epoch_without_repeats(n, world):
    for epoch in (0, 1):
        shards = []
        for rank in range(world):
            sampler = training_sampler(range(n), seed=4, rank=rank, world_size=world)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
            # the order pdeop's runs and checkpoints have always had: a permutation from seed + epoch, trimmed to
            # a multiple of the world size, every world-th entry from the rank (a torch change would show here)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(4 + epoch))[: n - n % world]
            assert shards[-1] == order[rank::world].tolist()
        seen = [i for shard in shards for i in shard]
        assert len(seen) == len(set(seen)) == n - n % world  # no sample twice, equal steps per rank
        assert {len(shard) for shard in shards} == {n // world}
    evaluation = [i for rank in range(world) for i in RankSlice(n, rank, world)]
    assert sorted(evaluation) == list(range(n))  # every evaluation sample exactly once



def test_the_rank_check_sees_the_imaginary_part_of_complex_weights():
    """FNO's spectral weights are complex: ranks that differ only in their imaginary parts must differ."""
    from pdeop.training.callbacks import weight_checksums

    layer = torch.nn.Module()
    layer.weight = torch.nn.Parameter(torch.tensor([1 + 2j, 3 - 1j]))
    before = weight_checksums(layer)
    with torch.no_grad():
        layer.weight.imag += 0.5
    assert not torch.equal(before, weight_checksums(layer))

@pytest.mark.slow
def test_two_processes_train_in_step_and_report_the_single_process_metric(train):
    _, run = train("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2",
                   "data.n_val=15", own_process=True)  # an odd validation set: ranks evaluate 8 and 7 samples
    with open(run / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    mismatch = [float(r["ddp/weight_mismatch"]) for r in rows if r.get("ddp/weight_mismatch")]
    assert mismatch == [0.0]
    logged = [float(r["val/rel_l2"]) for r in rows if r.get("val/rel_l2")][-1]
    assert [int(r["step"]) for r in rows if r.get("val/rel_l2")][-1] == 2 * 64 // (8 * 2) - 1  # 4 steps an epoch

    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    config = checkpoint["pdeop_config"]
    cfg = OmegaConf.create(config)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule, config)
    module.load_state_dict(checkpoint["state_dict"])
    module.eval()
    val = datamodule.splits["val"]
    with torch.no_grad():
        single = module.relative_l2(module(torch.from_numpy(val.inputs)), torch.from_numpy(val.outputs)).item()
    assert len(val.inputs) == 15
    assert abs(single - logged) <= 1e-5 * single, (single, logged)
