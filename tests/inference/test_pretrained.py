"""The checkpoint shipped in the package: verified before loading, the default of the retrieval commands."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mixrep.cli import main
from mixrep.errors import CheckpointError
from mixrep.inference import pretrained
from mixrep.inference.style_encoder import StyleEncoder

pytestmark = pytest.mark.skipif(not pretrained.SHIPPED_SHA256, reason="no checkpoint is shipped in this build")


def test_the_shipped_checkpoint_verifies_loads_and_embeds():
    encoder = StyleEncoder.from_checkpoint(pretrained.shipped_checkpoint(), device="cpu")
    stems = np.random.default_rng(0).normal(0, 0.1, (2, 4, 2, int(encoder.clip_seconds * encoder.sample_rate)))
    embeddings = encoder.embed_stems(stems.astype(np.float32), encoder.sample_rate)
    assert embeddings.shape == (2, encoder.embedding_dim)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_an_altered_shipped_checkpoint_is_refused_before_loading(tmp_path, monkeypatch):
    altered = tmp_path / "style-encoder.ckpt"
    shutil.copy(pretrained.SHIPPED_CHECKPOINT, altered)
    data = bytearray(altered.read_bytes())
    data[-100] ^= 0xFF
    altered.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "SHIPPED_CHECKPOINT", altered)
    with pytest.raises(CheckpointError, match="modified or damaged"):
        pretrained.checkpoint_or_shipped(None)
    monkeypatch.setattr(pretrained, "SHIPPED_CHECKPOINT", tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="pass --checkpoint"):
        pretrained.checkpoint_or_shipped(None)


def noise_stems(folder, sample_rate: int, seed: int):
    """A folder of four 3 s stereo noise stems."""
    from mixrep.audio.io import write_audio
    from mixrep.constants import STEMS

    folder.mkdir()
    rng = np.random.default_rng(seed)
    for stem in STEMS:
        write_audio(folder / f"{stem}.wav", rng.normal(0, 0.1, (2, 3 * sample_rate)).astype(np.float32), sample_rate)
    return folder


def test_embed_without_a_checkpoint_uses_the_shipped_encoder(tmp_path):
    encoder = StyleEncoder.from_checkpoint(pretrained.shipped_checkpoint(), device="cpu")
    folder = noise_stems(tmp_path / "song", encoder.sample_rate, seed=1)
    out = tmp_path / "emb.npz"
    assert main(["embed", "--stems", str(folder), "--out", str(out)]) == 0
    saved = np.load(out)
    assert str(saved["model_hash"]) == encoder.model_hash
    assert np.allclose(saved["embeddings"][0], encoder.embed_stem_folder(folder), atol=1e-5)


def test_describe_without_a_checkpoint_reads_with_the_shipped_decoder_or_says_it_has_none(tmp_path, capsys):
    encoder = StyleEncoder.from_checkpoint(pretrained.shipped_checkpoint(), device="cpu")
    folder = noise_stems(tmp_path / "song", encoder.sample_rate, seed=2)
    code = main(["describe", str(folder)])
    err = capsys.readouterr().err
    if encoder.decodes_settings:
        assert code == 0
    else:
        assert code == 2 and "no settings decoder" in err and "--checkpoint" in err
