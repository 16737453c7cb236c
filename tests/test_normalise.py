"""Unit-Gaussian normaliser: statistics, round trip, precision, resolution independence."""

import numpy as np
import torch

from pdeop.data.normalise import fit_channel_normaliser


def test_round_trip_and_unit_statistics():
    torch.manual_seed(0)
    data = (torch.randn(50, 2, 16, 16) * torch.tensor([3.0, 0.1]).view(1, 2, 1, 1)
            + torch.tensor([5.0, -2.0]).view(1, 2, 1, 1))
    normaliser = fit_channel_normaliser(data)
    encoded = normaliser.transform(data)
    torch.testing.assert_close(encoded.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(encoded.std(dim=(0, 2, 3)), torch.ones(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(normaliser.inverse_transform(encoded), data, atol=1e-5, rtol=1e-6)


def test_large_offset_keeps_precision():
    # Mean 1e4, std 1: E[x^2] - E[x]^2 in float32 would lose the variance entirely.
    torch.manual_seed(1)
    data = 1e4 + torch.randn(200, 1, 32, 32)
    normaliser = fit_channel_normaliser(data)
    assert abs(normaliser.std.item() - data.double().std().item()) < 1e-3


def test_statistics_are_buffers_saved_with_the_module_and_apply_at_any_resolution():
    normaliser = fit_channel_normaliser(torch.rand(10, 1, 8, 8) * 4 + 1)
    state = normaliser.state_dict()
    assert set(state) >= {"mean", "std"}
    fine = torch.rand(2, 1, 32, 32)
    assert normaliser.transform(fine).shape == fine.shape


def test_chunked_statistics_equal_the_one_pass_fit():
    from pdeop.data.normalise import ChannelStats

    rng = np.random.default_rng(0)
    data = (1e4 + rng.standard_normal((37, 3, 8, 6)) * np.array([1e-2, 1.0, 50.0])[None, :, None, None])
    whole = fit_channel_normaliser(torch.from_numpy(data))
    stats = ChannelStats()
    for start, stop in ((0, 1), (1, 11), (11, 37)):  # uneven chunks, one of a single sample
        stats.add(data[start:stop])
    chunked = stats.normaliser(data.ndim, torch.float64)
    torch.testing.assert_close(chunked.mean, whole.mean, rtol=1e-13, atol=0)
    torch.testing.assert_close(chunked.std, whole.std, rtol=1e-9, atol=0)
