"""Band split: layout, exact unfold values, per-band locality of the grouped CNN."""

from __future__ import annotations

import pytest
import torch

from mixrep.models.bandsplit import BandLayout, SubBandCNN, split_bands


@pytest.mark.parametrize(
    ("n_mels", "n_bands", "padded"), [(128, 12, 130), (64, 6, 70), (40, 3, 40), (20, 1, 20)]
)
def test_layout_covers_every_mel(n_mels: int, n_bands: int, padded: int) -> None:
    layout = BandLayout(n_mels, band_size=20, band_overlap=10)
    assert layout.n_bands == n_bands
    assert layout.padded_mels == padded
    covered = {m for start, stop in layout.edges() for m in range(start, stop)}
    assert covered == set(range(n_mels))
    assert layout.bands_containing(0) == [0]
    if n_bands > 1:
        assert layout.bands_containing(15) == [0, 1]


def test_layout_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="band_overlap"):
        BandLayout(64, band_size=20, band_overlap=20)
    with pytest.raises(ValueError, match="larger than n_mels"):
        BandLayout(16, band_size=20, band_overlap=10)


def test_split_bands_places_band_b_channel_c_at_b_times_channels_plus_c() -> None:
    layout = BandLayout(64, band_size=20, band_overlap=10)
    x = torch.randn(2, 3, 64, 5)
    bands = split_bands(x, layout)
    assert bands.shape == (2, 6 * 3, 20, 5)
    for band, (start, stop) in enumerate(layout.edges()):
        for c in range(3):
            got = bands[:, band * 3 + c]
            assert torch.equal(got[:, : stop - start], x[:, c, start:stop])
    # Last band (mels 50..69) is padded by repeating mel 63.
    pad = bands[:, 5 * 3 + 1, 14:]
    assert torch.equal(pad, x[:, 1, 63:64].expand(2, 6, 5))


def _band_outputs(out: torch.Tensor, band: int, out_channels: int) -> torch.Tensor:
    return out[..., band * out_channels : (band + 1) * out_channels]


@pytest.mark.parametrize("conditioned", [False, True])
def test_changing_mels_changes_only_the_bands_that_contain_them(conditioned: bool) -> None:
    torch.manual_seed(0)
    layout = BandLayout(64, band_size=20, band_overlap=10)
    cnn = SubBandCNN(layout, 8, hidden_channels=4, out_channels=5, conditioned=conditioned)
    cnn.train()  # a few passes so the BatchNorm running statistics are not the trivial init
    with torch.no_grad():
        for _ in range(3):
            warm_film = (torch.rand(4, 24) + 0.5, torch.randn(4, 24)) if conditioned else ()
            cnn(torch.randn(4, 8, 64, 12), *warm_film)
    cnn.eval()
    film_args = (torch.rand(2, 24) + 0.5, torch.randn(2, 24)) if conditioned else ()
    x = torch.randn(2, 8, 64, 12)
    base = cnn(x, *film_args)
    for mels in (range(0, 10), range(30, 40), range(60, 64)):
        changed = x.clone()
        changed[:, :, mels.start : mels.stop] += 3.0 * torch.randn(2, 8, len(mels), 12)
        out = cnn(changed, *film_args)
        touched = {b for m in mels for b in layout.bands_containing(m)}
        for band in range(layout.n_bands):
            same = torch.equal(_band_outputs(out, band, 5), _band_outputs(base, band, 5))
            assert same == (band not in touched), (mels, band, touched)


def test_grouped_weights_are_separate_per_band() -> None:
    layout = BandLayout(40, band_size=20, band_overlap=10)
    cnn = SubBandCNN(layout, in_channels=8, hidden_channels=4, out_channels=5, conditioned=False)
    assert cnn.conv1.weight.shape == (3 * 4, 8, 3, 3)  # groups=3: 8 input channels per band
    assert cnn.conv2.weight.shape == (3 * 5, 4, 3, 3)
    assert cnn.conv1.groups == cnn.conv2.groups == 3


def test_cnn_requires_film_parameters_exactly_when_conditioned() -> None:
    layout = BandLayout(40, band_size=20, band_overlap=10)
    x = torch.randn(2, 8, 40, 6)
    with pytest.raises(ValueError, match="conditioned=True"):
        SubBandCNN(layout, 8, 4, 5, conditioned=True)(x)
    with pytest.raises(ValueError, match="conditioned=False"):
        SubBandCNN(layout, 8, 4, 5, conditioned=False)(x, torch.ones(2, 12), torch.zeros(2, 12))
