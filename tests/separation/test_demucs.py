"""DemucsSeparator: shapes, resampling, stem order, local weights and the missing-weights message."""

from __future__ import annotations

import builtins
import io
import logging
import pickle

import pytest
import torch
from tests.separation.conftest import TINY_RATE, GainModel, offline_demucs, save_demucs_package, tiny_htdemucs

from mixrep.errors import SeparationError
from mixrep.files import digest, file_chunks
from mixrep.separation.base import Separator
from mixrep.separation.demucs import DemucsSeparator, remote_model_urls, state_hash


def test_tiny_htdemucs_returns_finite_stems_at_the_input_rate_band_limited_by_the_model_rate():
    separator = DemucsSeparator("tiny", model=tiny_htdemucs(), device="cpu")
    assert isinstance(separator, Separator) and separator.sample_rate == TINY_RATE
    rate = 22_050
    mix = 0.1 * torch.randn(2, 2, int(2.5 * rate), generator=torch.Generator().manual_seed(0))
    stems = separator.separate(mix, sample_rate=rate)
    assert stems.shape == (2, 4, 2, mix.shape[-1]) and stems.dtype == torch.float32
    assert torch.isfinite(stems).all() and stems.abs().max() > 0
    # The model ran at 8 kHz: after resampling back to 22.05 kHz nothing is left above its 4 kHz Nyquist.
    power = torch.fft.rfft(stems, dim=-1).abs() ** 2
    freqs_hz = torch.fft.rfftfreq(mix.shape[-1], 1 / rate)
    assert power[..., freqs_hz > 4_200].sum() < 1e-3 * power.sum()


def test_sources_are_matched_by_name_and_extra_sources_fold_into_other():
    sources = ["vocals", "guitar", "drums", "other", "bass"]
    gains = [0.1, 0.2, 0.3, 0.15, 0.25]  # sums to 1: the four stems add up to the mix
    separator = DemucsSeparator("gain", model=GainModel(sources, gains))
    mix = 0.1 * torch.randn(1, 2, 2 * TINY_RATE, generator=torch.Generator().manual_seed(1))
    mix -= mix.mean(dim=1, keepdim=True).mean(dim=-1, keepdim=True)  # zero DC: normalisation is exactly undone
    stems = separator.separate(mix)
    expected = {"drums": 0.3, "bass": 0.25, "other": 0.2 + 0.15, "vocals": 0.1}
    for index, stem in enumerate(("drums", "bass", "other", "vocals")):
        torch.testing.assert_close(stems[:, index], expected[stem] * mix, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(stems.sum(dim=1), mix, atol=1e-6, rtol=1e-5)


def test_a_model_without_the_needed_sources_is_refused():
    with pytest.raises(SeparationError, match=r"needs stereo models with at least drums, bass and vocals"):
        DemucsSeparator("karaoke", model=GainModel(["vocals", "accompaniment"], [0.5, 0.5]))


def test_segment_longer_than_the_transformer_was_trained_on_is_refused():
    with pytest.raises(SeparationError, match=r"segment_seconds=3 exceeds the 2 s"):
        DemucsSeparator("tiny", model=tiny_htdemucs(), segment_seconds=3.0)


def test_local_th_weights_load_lazily_verify_their_checksum_and_separate_like_the_model(tmp_path):
    model = tiny_htdemucs(seed=3)
    path = save_demucs_package(model, tmp_path / "tiny.th")
    separator = DemucsSeparator("tiny", weights_path=path)
    # name (the cache key) and rate are known without building the network, and it pickles unloaded
    assert separator._model is None and separator.sample_rate == TINY_RATE
    separator = pickle.loads(pickle.dumps(separator))
    mix = 0.1 * torch.randn(1, 2, 2 * TINY_RATE, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(separator.separate(mix), DemucsSeparator("tiny", model=model).separate(mix))
    assert DemucsSeparator("tiny", weights_path=path).name == separator.name
    other = save_demucs_package(tiny_htdemucs(seed=4), tmp_path / "other" / "tiny.th")
    assert DemucsSeparator("tiny", weights_path=other).name != separator.name
    damaged = tmp_path / path.name.replace("tiny", "bad")
    damaged.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(SeparationError, match=r"Invalid checksum"):
        DemucsSeparator("tiny", weights_path=damaged).load()


def test_missing_weights_offline_explain_how_to_get_them(monkeypatch, tmp_path):
    calls = offline_demucs(monkeypatch, tmp_path / "hub")
    separator = DemucsSeparator("htdemucs")
    assert isinstance(separator, Separator) and separator.sample_rate == 44_100
    assert calls == [] and separator.name.startswith("demucs-htdemucs-")  # a warm cache needs no weights
    with pytest.raises(SeparationError) as info:
        separator.separate(torch.zeros(1, 2, 100))
    message = str(info.value)
    assert calls == ["htdemucs"]
    assert "https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/955717e8-8726e21a.th" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "python -m demucs -n htdemucs" in message
    assert "--weights PATH" in message and "--source stems" not in message  # `separate` has no such option
    assert "Name or service not known" in message


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(SeparationError, match=r"nope\.th do not exist"):
        DemucsSeparator(weights_path=tmp_path / "nope.th")


class Payload:
    """Unpickling this creates ``marker``: stands for any code a pickle can run."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def write_package(path, content) -> None:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    path.write_bytes(buffer.getvalue())


def test_a_th_with_a_wrong_checksum_is_refused_before_it_is_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    package = {"klass": Payload(marker), "args": [], "kwargs": {}, "state": {}}
    evil = tmp_path / "955717e8-deadbeef.th"  # a released-looking name whose checksum the bytes do not have
    write_package(evil, package)
    with pytest.raises(SeparationError, match=r"Invalid checksum.*Nothing was loaded"):
        DemucsSeparator("htdemucs", weights_path=evil)
    assert not marker.exists()


class Note:
    """A harmless object outside demucs' model classes."""


def test_a_package_beyond_demucs_classes_is_refused_unread_unless_its_name_carries_a_matching_checksum(
        tmp_path, caplog):
    marker = tmp_path / "unpickled"
    path = save_demucs_package(tiny_htdemucs(seed=6), tmp_path / "tiny.th")
    package = torch.load(path, weights_only=False)
    package["note"] = Payload(marker)
    unnamed = tmp_path / "custom.th"  # no checksum in the name: nothing vouches for these bytes
    write_package(unnamed, package)
    with pytest.raises(SeparationError, match=r"\(io.open\).*no checksum to verify first, so nothing was loaded"):
        DemucsSeparator("tiny", weights_path=unnamed).load()
    assert not marker.exists()
    package["note"] = Note()
    write_package(unnamed, package)
    named = tmp_path / f"custom-{digest(file_chunks([unnamed]), digits=8)}.th"  # the caller vouches: sha256sum
    unnamed.rename(named)
    with caplog.at_level(logging.WARNING, logger="mixrep.separation.demucs"):
        DemucsSeparator("tiny", weights_path=named).load()
    assert "unpickling the file in full, which runs code stored in it" in caplog.text


def test_a_demucs_package_is_read_with_weights_only(tmp_path, caplog, monkeypatch):
    path = save_demucs_package(tiny_htdemucs(seed=5), tmp_path / "tiny.th")
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("weights_only")) or real_load(*a, **k))
    with caplog.at_level(logging.WARNING, logger="mixrep.separation.demucs"):
        separator = DemucsSeparator("tiny", weights_path=path).load()
    assert separator.sample_rate == TINY_RATE and loads == [True, True]  # rate at construction, then the model
    assert "unpickling the file in full" not in caplog.text


def test_the_remote_file_list_is_parsed_without_demucs_private_helpers():
    urls = remote_model_urls()
    assert urls["955717e8"] == "https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/955717e8-8726e21a.th"
    assert urls["0d19c1c6"].startswith("https://dl.fbaipublicfiles.com/demucs/mdx_final/0d19c1c6-")
    assert len(urls) > 20 and all(url.endswith(".th") for url in urls.values())


def test_state_hash_is_stable_covers_every_value_and_takes_zero_dim_buffers():
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.arange(6.0).reshape(2, 3))
        model.bias.copy_(torch.tensor([0.5, -1.0]))
    # The value the stem cache's separator names were built from before the hashing helper: keep it.
    assert state_hash(model) == "932484b22e7e7bb72e127a9f79be2bdbb6970983c76c72f21dd1ce1b18eb88bc"
    with torch.no_grad():
        model.bias[1] = -1.5
    assert state_hash(model) != "932484b22e7e7bb72e127a9f79be2bdbb6970983c76c72f21dd1ce1b18eb88bc"
    norm = torch.nn.BatchNorm1d(4)  # num_batches_tracked: a 0-dim int64 buffer
    before = state_hash(norm)
    norm.num_batches_tracked += 1
    assert state_hash(norm) != before
