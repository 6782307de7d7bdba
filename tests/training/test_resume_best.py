"""Resuming keeps the best checkpoint of the run, and scripts read it from the run's best.json (issue 27 item 7)."""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixrep.errors import CheckpointError
from mixrep.training.callbacks import StyleRetrievalEval
from mixrep.cli.train import train_encoder as main
from tests.conftest import tiny_fit_args

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def scripted_map(monkeypatch, values: list[float]) -> None:
    """Make epoch ``e``'s validation metric ``values[e]``, like the drill of the issue."""
    def log_scripted(self, trainer, pl_module) -> None:
        pl_module.log("val/map", values[min(trainer.current_epoch, len(values) - 1)])

    monkeypatch.setattr(StyleRetrievalEval, "on_validation_epoch_end", log_scripted)


def test_a_resumed_run_keeps_the_better_best_and_records_it(tmp_path, monkeypatch, recwarn):
    scripted_map(monkeypatch, [0.462, 0.461])  # epoch 0 is the better one
    first = main(tiny_fit_args(tmp_path))
    run = Path(first.trainer.logger.log_dir)
    (best_epoch0,) = run.glob("checkpoints/best-*.ckpt")
    assert json.loads((run / "best.json").read_text())["best_model_path"] == str(best_epoch0.resolve())
    resumed = main(tiny_fit_args(tmp_path, "--trainer.max_epochs", "2",
                                 "--ckpt_path", str(run / "checkpoints" / "last.ckpt")))
    assert Path(resumed.trainer.logger.log_dir) == run  # the same version folder, not version_1
    assert not (run.parent / "version_1").exists()
    assert not [w for w in recwarn if "won't be reloaded" in str(w.message)]  # Lightning restored the best
    callback = resumed.trainer.checkpoint_callback
    assert resumed.trainer.current_epoch == 2 and float(callback.best_model_score) == pytest.approx(0.462)
    assert Path(callback.best_model_path) == best_epoch0 and best_epoch0.is_file()
    record = json.loads((run / "best.json").read_text())
    assert record["best_model_path"] == str(best_epoch0.resolve()) and record["best_model_score"] == pytest.approx(0.462)
    assert json.loads((tmp_path / "best.json").read_text()) == record  # the newest finished run of the save_dir


def test_resuming_a_pickle_is_a_clear_error_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return builtins.open, (str(marker), "w")

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, evil)
    with pytest.raises(CheckpointError, match=r"refusing checkpoint .*evil.ckpt.*\(io.open\).*nothing in it was run"):
        main(tiny_fit_args(tmp_path, "--ckpt_path", str(evil)))
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    result = subprocess.run(["bash", "scripts/train.sh", "--ckpt_path", str(evil)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.startswith("error: refusing checkpoint"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not marker.exists()


def test_the_demo_scripts_read_the_recorded_best_not_the_newest_file():
    for script in ("scripts/demo.sh", "scripts/transfer_demo.sh"):
        text = (REPO / script).read_text()
        assert "ls -t" not in text and "best.json" in text, script
