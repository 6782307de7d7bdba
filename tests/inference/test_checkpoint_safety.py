"""A checkpoint the user did not write runs no code: it may name a pretrained separator, never a file to load.

The payloads are real: unpickling them creates a file in ``tmp_path``, and each test asserts it was not created.
"""

from __future__ import annotations

import builtins
import io
import logging

import numpy as np
import pytest
import torch
from tests.separation.conftest import GainModel, offline_demucs, save_demucs_package, tiny_htdemucs

from mixrep.inference.style_encoder import StyleEncoder, load_checkpoint
from mixrep.audio.io import write_audio
from mixrep.cli import main as mixrep_main
from mixrep.errors import CheckpointError
from mixrep.evaluation.encoder import training_source
from mixrep.models.checkpoint import seal
from mixrep.inference import StyleTransfer

RATE = 44_100


class Payload:
    """Unpickling this creates ``marker``: stands for any code a pickle can run."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def evil_checkpoint(source, tmp_path, name: str):
    """``source`` with a pickled ``.th`` named as its separator weights, hashes recomputed as an attacker
    would; returns ``(checkpoint path, marker path)``."""
    marker = tmp_path / f"{name}.pwned"
    package = tmp_path / f"{name}.th"
    buffer = io.BytesIO()
    torch.save({"klass": Payload(marker), "args": [], "kwargs": {}, "state": {}}, buffer)
    package.write_bytes(buffer.getvalue())
    checkpoint = load_checkpoint(source)
    checkpoint.setdefault("datamodule_hyper_parameters", {}).update(separator="htdemucs", weights_path=str(package))
    seal(checkpoint)
    path = tmp_path / f"{name}.ckpt"
    torch.save(checkpoint, path)
    return path, marker


@pytest.fixture
def pretrained_demucs(monkeypatch, tmp_path):
    """``htdemucs`` installed as a linear 'separator' (no download): returns the names loaded."""
    model = GainModel(["drums", "bass", "other", "vocals"], [0.25] * 4, samplerate=RATE)
    return offline_demucs(monkeypatch, tmp_path / "hub", model=model)


def mixture(tmp_path):
    rng = np.random.default_rng(0)
    return write_audio(tmp_path / "mix.wav", (0.1 * rng.standard_normal((2, 3 * RATE))).astype(np.float32), RATE)


def test_embed_ignores_a_weights_file_the_checkpoint_names(tiny_checkpoint, tmp_path, pretrained_demucs, caplog):
    evil, marker = evil_checkpoint(tiny_checkpoint, tmp_path, "encoder")
    out = tmp_path / "emb.npz"
    with caplog.at_level(logging.WARNING, logger="mixrep.inference.style_encoder"):
        assert mixrep_main(["embed", "--checkpoint", str(evil), str(mixture(tmp_path)), "--out", str(out)]) == 0
    assert not marker.exists()
    assert pretrained_demucs == ["htdemucs"] and np.load(out)["embeddings"].shape == (1, 16)
    assert "encoder.th" in caplog.text and "never chooses a file to load" in caplog.text
    mine = save_demucs_package(tiny_htdemucs(), tmp_path / "mine" / "tiny.th")  # the user's own choice
    assert mixrep_main(["embed", "--checkpoint", str(evil), str(tmp_path / "mix.wav"), "--out", str(out),
                        "--weights", str(mine)]) == 0
    assert pretrained_demucs == ["htdemucs"] and not marker.exists()  # separated with the user's weights


def test_mix_with_a_head_naming_a_pickle_runs_no_code(tiny_head, tmp_path, pretrained_demucs):
    evil, marker = evil_checkpoint(tiny_head, tmp_path, "head")
    tracks = tmp_path / "song"
    tracks.mkdir()
    rng = np.random.default_rng(1)
    for name in ("kick", "bass"):
        write_audio(tracks / f"{name}.wav", (0.1 * rng.standard_normal((2, 3 * 22_050))).astype(np.float32), 22_050)
    out = tmp_path / "out.wav"
    assert mixrep_main(["mix", "--tracks", str(tracks), "--reference", str(mixture(tmp_path)), "--head", str(evil),
                        "--out", str(out), "--no-balance"]) == 0
    assert not marker.exists() and out.is_file() and pretrained_demucs == ["htdemucs"]
    transfer = StyleTransfer.from_checkpoint(evil)
    assert transfer.encoder.separator_weights is None and transfer.encoder.separator_name == "htdemucs"
    mine = save_demucs_package(tiny_htdemucs(), tmp_path / "mine" / "tiny.th")  # the user's own choice
    out.unlink()
    assert mixrep_main(["mix", "--tracks", str(tracks), "--reference", str(tmp_path / "mix.wav"), "--head", str(evil),
                        "--out", str(out), "--no-balance", "--weights", str(mine)]) == 0
    assert not marker.exists() and out.is_file() and pretrained_demucs == ["htdemucs"]  # the user's weights, not the hub's
    assert StyleTransfer.from_checkpoint(evil, separator_weights=mine).encoder.separator_weights == str(mine)


def test_evaluation_reopens_the_training_source_without_the_recorded_weights(tiny_checkpoint, tmp_path, monkeypatch):
    evil, marker = evil_checkpoint(tiny_checkpoint, tmp_path, "evaluate")
    seen = {}
    monkeypatch.setattr("mixrep.evaluation.encoder.build_source", lambda kind, root, **options: seen.update(options))
    training_source(load_checkpoint(evil), 22_050)
    assert "weights_path" not in seen and seen["separator"] == "htdemucs" and not marker.exists()
    download = load_checkpoint(evil)
    download["datamodule_hyper_parameters"]["separator"] = "hf://someone/model"  # demucs would fetch it
    with pytest.raises(CheckpointError, match=r"'hf://someone/model', which is not a pretrained Demucs name"):
        training_source(download, 22_050)


def test_weights_come_only_from_the_caller(tiny_checkpoint, tmp_path):
    unknown = load_checkpoint(tiny_checkpoint)
    for name in ("../../somewhere/model", "hf://someone/model"):
        unknown["datamodule_hyper_parameters"]["separator"] = name
        seal(unknown)
        encoder = StyleEncoder.from_loaded(unknown, "unknown.ckpt")
        with pytest.raises(CheckpointError, match=rf"'{name}'.*not a pretrained Demucs name"):
            _ = encoder.separator
    weights = tmp_path / "mine.th"
    weights.write_bytes(b"")
    chosen = StyleEncoder.from_loaded(unknown, "unknown.ckpt", separator_weights=weights)
    assert chosen.separator_weights == str(weights)


def test_edited_settings_are_refused_and_version_2_checkpoints_still_load(tiny_checkpoint, tiny_head, tmp_path):
    for source in (tiny_checkpoint, tiny_head):
        edited = load_checkpoint(source)
        edited["datamodule_hyper_parameters"]["separator"] = "htdemucs_6s"  # not resealed
        path = tmp_path / "edited.ckpt"
        torch.save(edited, path)
        with pytest.raises(CheckpointError, match=r"settings .* do not match their recorded hash"):
            StyleEncoder.from_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"settings .* do not match their recorded hash"):
        StyleTransfer.from_checkpoint(path, encoder_checkpoint=tiny_checkpoint)
    old = load_checkpoint(tiny_checkpoint)  # as version 2 wrote it: no metadata hash
    old["mixrep"]["version"] = 2
    del old["mixrep"]["metadata_hash"]
    old["datamodule_hyper_parameters"]["separator"] = "htdemucs_ft"
    path = tmp_path / "version2.ckpt"
    torch.save(old, path)
    encoder = StyleEncoder.from_checkpoint(path)
    assert encoder.model_hash == StyleEncoder.from_checkpoint(tiny_checkpoint).model_hash
    assert encoder.separator_name == "htdemucs_ft"
