"""A tiny regression head trained through the real CLI (seconds on a CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def tiny_regression_args(root: Path, encoder: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", "configs/regression.yaml", "--model.encoder_checkpoint", str(encoder),
        "--data.chain", "egd", "--data.group_chain", "g",
        "--data.processor_options", '{"eq": {"bins": 64}, "reverb": {"ir_seconds": 0.5}}',
        "--data.num_songs", "20", "--data.song_seconds", "4", "--data.clip_seconds", "1.5", "--data.batch_size", "2",
        "--data.train_items", "4", "--data.val_items", "2", "--data.num_workers", "0",
        "--model.n_mels", "16", "--model.channels", "[4, 8]", "--model.track_dim", "16", "--model.hidden", "32",
        "--model.basis_size", "4", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1",
        "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root), *extra,
    ]


@pytest.fixture(scope="session")
def tiny_head(tmp_path_factory, repo_root, tiny_checkpoint) -> Path:
    from mixrep.cli.train_head import train_head
    from mixrep.training.runs import last_checkpoint_path

    root = tmp_path_factory.mktemp("regression_run")
    cwd = os.getcwd()
    os.chdir(repo_root)
    try:
        cli = train_head(tiny_regression_args(root, tiny_checkpoint))
    finally:
        os.chdir(cwd)
    path = Path(last_checkpoint_path(cli.trainer))
    assert path.is_file()
    return path
