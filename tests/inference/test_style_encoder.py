"""The public API: StyleEncoder loading, embedding and its refusals; `mixrep embed`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio

from mixrep.audio.io import write_audio
from mixrep.cli import main as mixrep_main
from mixrep.corpora.synthetic import SynthConfig, SyntheticSource
from mixrep.errors import CheckpointError
from mixrep.inference.style_encoder import StyleEncoder
from mixrep.separation.demucs import DemucsSeparator
from mixrep.styles.chains import AugmentConfig, apply_chain, sample_chain
from tests.separation.conftest import tiny_htdemucs

SR = 44_100


@pytest.fixture(scope="module")
def encoder(tiny_checkpoint):
    return StyleEncoder.from_checkpoint(tiny_checkpoint, device="cpu",
                                        separator=DemucsSeparator(model=tiny_htdemucs(), device="cpu"))


def stems(batch=2, seconds=1.5, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy((0.1 * rng.standard_normal((batch, 4, 2, int(seconds * SR)))).astype(np.float32))


def test_embed_stems_is_normalised_deterministic_and_any_length(encoder):
    x = stems()
    a, b = encoder.embed_stems(x, SR), encoder.embed_stems(x.numpy(), SR)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    assert a.shape == (2, encoder.embedding_dim) == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a, b)  # tensors and arrays alike
    # Batching does not change an item's embedding (eval-mode BatchNorm).
    np.testing.assert_allclose(encoder.embed_stems(x[:1], SR), a[:1], atol=1e-5, rtol=0)
    for seconds in (1.0, 2.7, 6.0):
        assert encoder.embed_stems(stems(1, seconds), SR).shape == (1, 16)


def test_every_method_returns_numpy(encoder, tmp_path):
    path = write_audio(tmp_path / "song.wav", 0.1 * np.random.default_rng(2).standard_normal((2, 3 * SR)), SR)
    clips, offsets = encoder.embed_file_clips(path)
    outputs = [encoder.embed_stems(stems(1), SR), encoder.embed_audio(stems(1).sum(dim=1), SR), clips, offsets,
               encoder.embed_file(path), encoder.clip_offsets(10.0)]
    assert all(isinstance(out, np.ndarray) for out in outputs)
    assert [out.dtype for out in outputs] == [np.float32] * 3 + [np.float64, np.float32, np.float64]


@pytest.fixture(scope="module")
def style_encoder(style_checkpoint):
    return StyleEncoder.from_checkpoint(style_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def song_stems():
    """Clips of two synthetic songs at 22.05 kHz (the style checkpoint's rate), ``(2, 4, 2, samples)``."""
    source = SyntheticSource(SynthConfig(num_songs=2, song_seconds=4.0, sample_rate=22_050, seed=9))
    return np.stack([source.read_stems(track, 0.5, 3.0) for track in source.tracks()])


@pytest.mark.parametrize("rate", [32_000, 44_100, 48_000])
def test_other_sample_rates_are_resampled_to_the_encoders(style_encoder, song_stems, rate):
    # The same audio given at another rate must embed as at the native rate (cosine distance), within
    # a tolerance that wrong resampling breaks and far below what a change of mix does. Measured:
    # correct path 3e-5 to 9e-5; the API resampling by linear interpolation instead, 2e-4 to 1.9e-3
    # (4.6e-4 worst clip at 48 kHz); input made by linear interpolation, 4e-3 to 8e-3; a style
    # chain, 1.6e-2 to 1.2e-1.
    tolerance = 2.5e-4
    native = style_encoder.embed_stems(song_stems, 22_050)
    other_rate = torchaudio.functional.resample(torch.from_numpy(song_stems), 22_050, rate)
    distance = 1.0 - (native * style_encoder.embed_stems(other_rate, rate)).sum(axis=1)
    assert distance.max() < tolerance, distance
    wrong = torch.nn.functional.interpolate(torch.from_numpy(song_stems).flatten(1, 2), scale_factor=rate / 22_050,
                                            mode="linear").unflatten(1, (4, 2))
    assert (1.0 - (native * style_encoder.embed_stems(wrong, rate)).sum(axis=1)).min() > tolerance
    chain = sample_chain(AugmentConfig(), np.random.default_rng(1))
    restyled = np.stack([apply_chain(song, chain, 22_050) for song in song_stems])
    assert (1.0 - (native * style_encoder.embed_stems(restyled, 22_050)).sum(axis=1)).min() > 10 * tolerance


def test_silence_gives_a_finite_embedding(encoder):
    out = encoder.embed_stems(torch.zeros(1, 4, 2, SR), SR)
    assert np.isfinite(out).all() and np.linalg.norm(out) == pytest.approx(1.0, abs=1e-5)


class RecordingSeparator:
    """A stand-in separator at 44.1 kHz that records what it is given (mix in the 'other' slot)."""

    name, sample_rate = "recording", 44_100

    def __init__(self):
        self.inputs = []

    def separate(self, mix):
        self.inputs.append(mix.clone())
        out = torch.zeros(mix.shape[0], 4, *mix.shape[1:])
        out[:, 2] = mix
        return out


def test_files_are_decoded_at_the_separators_rate_not_the_encoders(tiny_checkpoint, tmp_path):
    separator = RecordingSeparator()
    encoder = StyleEncoder.from_checkpoint(tiny_checkpoint, device="cpu", separator=separator)
    assert encoder.sample_rate == 22_050  # the demo config's rate
    t = np.arange(4 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 15_000.0 * t)  # above the encoder's Nyquist (11.025 kHz)
    path = write_audio(tmp_path / "bright.wav", np.stack([tone, tone]), SR)
    encoder.embed_file_clips(path)
    (mix,) = separator.inputs
    spectrum = np.abs(np.fft.rfft(mix[0, 0].numpy()))
    freqs = np.fft.rfftfreq(mix.shape[-1], 1 / SR)
    assert freqs[spectrum.argmax()] == pytest.approx(15_000.0, abs=5.0)  # Demucs sees the full band


def test_bad_stems_are_refused_clearly(encoder):
    with pytest.raises(ValueError, match=r"drums, bass, other, vocals.*\(2, 2, 2, 44100\)"):
        encoder.embed_stems(torch.zeros(2, 2, 2, SR), SR)
    with pytest.raises(ValueError, match="at least 1.0 s"):
        encoder.embed_stems(torch.zeros(1, 4, 2, SR // 2), SR)
    with pytest.raises(ValueError, match="NaN"):
        encoder.embed_stems(torch.full((1, 4, 2, SR), float("nan")), SR)


def test_embed_audio_and_files_separate_first(encoder, tmp_path):
    mix = stems(1, 2.5).sum(dim=1)
    out = encoder.embed_audio(mix, SR)
    assert out.shape == (1, 16) and np.isfinite(out).all()
    path = write_audio(tmp_path / "song.flac", (0.1 * np.random.default_rng(1).standard_normal((2, 5 * SR))), SR)
    clips, offsets = encoder.embed_file_clips(path)
    assert clips.shape == (len(offsets), 16) and len(offsets) == 3  # 5 s track, 1.5 s clips
    assert np.all(np.diff(offsets) >= encoder.clip_seconds - 1e-9) and offsets[-1] + encoder.clip_seconds <= 5.0
    whole = encoder.embed_file(path)
    mean = clips.mean(axis=0)
    np.testing.assert_allclose(whole, mean / np.linalg.norm(mean), atol=1e-6)


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path, tiny_checkpoint):
    with pytest.raises(CheckpointError, match="does not exist"):
        StyleEncoder.from_checkpoint(tmp_path / "missing.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt"):
        StyleEncoder.from_checkpoint(corrupt)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a mixrep style-encoder checkpoint"):
        StyleEncoder.from_checkpoint(foreign)
    tampered = tmp_path / "tampered.ckpt"
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    name = next(k for k in checkpoint["state_dict"] if k.endswith("weight"))
    checkpoint["state_dict"][name] = checkpoint["state_dict"][name] + 1e-3
    torch.save(checkpoint, tampered)
    with pytest.raises(CheckpointError, match="do not match their recorded hash"):
        StyleEncoder.from_checkpoint(tampered)
    renamed = tmp_path / "renamed.ckpt"
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    checkpoint["mixrep"]["encoder_class"] = "somewhere.OtherEncoder"
    torch.save(checkpoint, renamed)
    with pytest.raises(CheckpointError, match="class 'somewhere.OtherEncoder'"):
        StyleEncoder.from_checkpoint(renamed)


def test_embed_command_writes_embeddings_of_stem_folders(tmp_path, tiny_checkpoint, encoder):
    folders = []
    for song in range(2):
        folder = tmp_path / f"song{song}"
        for stem, audio in zip(("drums", "bass", "other", "vocals"), stems(1, 3.0, seed=song)[0].numpy()):
            write_audio(folder / f"{stem}.wav", audio, SR)
        folders.append(folder)
    out = tmp_path / "emb.npz"
    assert mixrep_main(["embed", "--checkpoint", str(tiny_checkpoint), "--stems", *map(str, folders),
                        "--out", str(out)]) == 0
    data = np.load(out)
    assert data["embeddings"].shape == (2, 16) and str(data["model_hash"]) == encoder.model_hash
    np.testing.assert_allclose(np.linalg.norm(data["embeddings"], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(data["embeddings"][0], encoder.embed_stem_folder(folders[0]), atol=1e-5)
    assert mixrep_main(["embed", "--checkpoint", str(tiny_checkpoint), "--stems", str(tmp_path),
                        "--out", str(out)]) == 2  # not a stem folder: clear error, exit code 2
