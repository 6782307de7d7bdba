"""The public API: StyleEncoder loading, embedding and its refusals; `mixrep embed`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixrep.api import StyleEncoder
from mixrep.audio.io import write_audio
from mixrep.cli import main as mixrep_main
from mixrep.errors import CheckpointError
from mixrep.separation.demucs import DemucsSeparator
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
    a, b = encoder.embed_stems(x, SR), encoder.embed_stems(x, SR)
    assert a.shape == (2, encoder.embedding_dim) == (2, 16)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(a, b)
    # Batching does not change an item's embedding (eval-mode BatchNorm).
    torch.testing.assert_close(encoder.embed_stems(x[:1], SR), a[:1], atol=1e-5, rtol=0)
    for seconds in (1.0, 2.7, 6.0):
        assert encoder.embed_stems(stems(1, seconds), SR).shape == (1, 16)


def test_other_sample_rates_are_resampled(encoder):
    x = stems(1, 2.0)
    resampled = torch.from_numpy(np.ascontiguousarray(
        __import__("torchaudio").functional.resample(x, SR, 22_050).numpy()))
    a, b = encoder.embed_stems(x, SR), encoder.embed_stems(resampled, 22_050)
    assert torch.nn.functional.cosine_similarity(a, b).item() > 0.9


def test_silence_gives_a_finite_embedding(encoder):
    out = encoder.embed_stems(torch.zeros(1, 4, 2, SR), SR)
    assert torch.isfinite(out).all() and out.norm().item() == pytest.approx(1.0, abs=1e-5)


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
    assert out.shape == (1, 16) and torch.isfinite(out).all()
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
