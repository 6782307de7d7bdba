"""Shared fixtures: a tiny trained style-encoder checkpoint (seconds to make on a CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")


def tiny_fit_args(root: Path, *extra: str) -> list[str]:
    """LightningCLI arguments for a very small run on the synthetic corpus alone, written under ``root``.

    ``configs/demo.yaml`` trains on soundfont renderings; the tiny run uses the numpy synth instead so that
    the suite never renders a corpus (tests of the soundfont corpus use a tiny SF2 fixture).
    """
    return [
        "fit", "--config", "configs/demo.yaml", "--data.source", "synth",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root),
        "--data.synth_songs", "20", "--data.synth_song_seconds", "4", "--data.clip_seconds", "1.5",
        "--model.n_mels", "32", "--model.n_fft", "1024", "--data.batch_size", "4", "--data.num_workers", "0",
        "--model.channels", "[4, 8]", "--model.embedding_dim", "16", "--model.band_size", "8",
        "--model.band_overlap", "4", "--model.warmup_steps", "1",
        "--style_eval.num_songs", "2", "--style_eval.num_styles", "2", "--data.items_per_epoch", "16",
        *extra,
    ]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def tiny_fit(root: Path, repo_root: Path, *extra: str) -> Path:
    """Train :func:`tiny_fit_args` (plus ``extra``) under ``root`` from the repository root; the last checkpoint."""
    from mixrep.cli.train import train_encoder
    from mixrep.training.runs import last_checkpoint_path

    cwd = os.getcwd()
    os.chdir(repo_root)
    try:
        cli = train_encoder(tiny_fit_args(root, *extra))
    finally:
        os.chdir(cwd)
    path = Path(last_checkpoint_path(cli.trainer))
    assert path.is_file()
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, repo_root) -> Path:
    """A checkpoint of a 2-step run: real format, tiny model (16-d embeddings, 32 mels)."""
    return tiny_fit(tmp_path_factory.mktemp("tiny_run"), repo_root)


@pytest.fixture(scope="session")
def style_checkpoint(tmp_path_factory, repo_root) -> Path:
    """A checkpoint trained for 24 steps with the same_chain strategy on the synth under per-stem
    chains: small, but it has learnt to tell mixing styles apart (about a minute on a 2-core CPU)."""
    from mixrep.cli.train import train_encoder
    from mixrep.training.runs import last_checkpoint_path

    root = tmp_path_factory.mktemp("style_run")
    cwd = os.getcwd()
    os.chdir(repo_root)
    try:
        cli = train_encoder(tiny_fit_args(
            root, "--data.sample_rate", "22050", "--model.n_fft", "512", "--model.hop_length", "256",
            "--data.items_per_epoch", "384", "--data.batch_size", "16", "--trainer.limit_train_batches", "1.0",
            "--model.channels", "[8, 16]", "--model.embedding_dim", "32", "--model.lr", "2e-3",
            "--data.synth_songs", "40", "--data.synth_cache_songs", "40", "--data.strategy", "same_chain",
            # the per-stem chains the index tests restyle their songs with, no feature branch
            "--data.styles", "chains", "--model.feature_branch_dim", "0"))
    finally:
        os.chdir(cwd)
    return Path(last_checkpoint_path(cli.trainer))


@pytest.fixture(scope="session")
def tiny_decoder_checkpoint(tmp_path_factory, repo_root) -> Path:
    """Like :func:`tiny_checkpoint`, trained with the settings decoders (``--model.settings_weight 1.0``)."""
    return tiny_fit(tmp_path_factory.mktemp("tiny_decoder_run"), repo_root, "--model.settings_weight", "1.0")
