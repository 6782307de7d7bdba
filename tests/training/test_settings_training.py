"""Training the settings decoders jointly with InfoNCE (``--model.settings_weight``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mixrep.cli import main as mixrep_main
from mixrep.cli.train import train_encoder
from mixrep.inference.style_encoder import load_checkpoint
from mixrep.models.checkpoint import read_encoder
from mixrep.styles.settings_vector import NUM_SETTINGS, SETTINGS_VERSION
from mixrep.training.runs import last_checkpoint_path
from tests.conftest import tiny_fit_args

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def test_a_fit_with_settings_weight_logs_the_decoder_losses_and_writes_a_decoding_encoder(tmp_path):
    cli = train_encoder(tiny_fit_args(tmp_path, "--model.settings_weight", "2.0", "--model.relative_weight", "0.25"))
    metrics = {k: float(v) for k, v in cli.trainer.logged_metrics.items()}
    for name in ("train/settings_loss", "train/relative_loss", "val/settings_loss", "val/relative_loss"):
        assert math.isfinite(metrics[name]) and metrics[name] > 0, (name, metrics)
    # the joint loss: InfoNCE + w * settings + w * relative_weight * relative
    joint = metrics["train/info_nce"] + 2.0 * metrics["train/settings_loss"] + 2.0 * 0.25 * metrics["train/relative_loss"]
    assert metrics["train/loss"] == pytest.approx(joint, rel=1e-5)

    path = last_checkpoint_path(cli.trainer)
    encoder, _, _ = read_encoder(load_checkpoint(path), str(path))
    assert encoder.decodes_settings and encoder.config.settings_version == SETTINGS_VERSION
    assert encoder.config.decoder_input == "representation"  # the training default
    representation = torch.randn(2, encoder.representation_dim)
    with torch.no_grad():
        assert encoder.decode_settings(representation).shape == (2, NUM_SETTINGS)


def test_retrieval_only_training_builds_no_decoder_and_has_no_decoder_losses():
    cli = train_encoder(tiny_fit_args(Path("/nonexistent"))[1:], run=False)  # no "fit": nothing runs
    assert not cli.model.encoder.decodes_settings
    assert cli.model.decoder_losses({}, ()) == {}


def test_settings_weight_with_chain_styles_is_refused_before_any_data_is_built(tmp_path, monkeypatch, capsys):
    from mixrep.training.datamodule import TripletDataModule

    def no_data(*args, **kwargs):
        raise AssertionError("the data module was set up before the refusal")

    monkeypatch.setattr(TripletDataModule, "setup", no_data)
    monkeypatch.setattr(TripletDataModule, "prepare_data", no_data)
    with pytest.raises(ValueError, match="settings_weight > 0 needs training styles with settings vectors: use "
                                         "the data option styles: mix_style"):
        train_encoder(tiny_fit_args(tmp_path, "--model.settings_weight", "1.0", "--data.styles", "chains"))
    args = tiny_fit_args(tmp_path, "--model.settings_weight", "0.5", "--data.styles", "chains")
    assert mixrep_main(["train", "encoder", *args]) == 2
    assert "(got styles: chains)" in capsys.readouterr().err


def test_negative_weights_are_refused():
    with pytest.raises(ValueError, match=r"settings_weight \(-1.0\) and relative_weight \(0.5\) must be >= 0"):
        train_encoder(tiny_fit_args(Path("/nonexistent"), "--model.settings_weight", "-1.0")[1:], run=False)
