"""Training through LightningCLI: configs, fast_dev_run, resume, NaN guard, DDP."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mixrep.training.callbacks import StyleRetrievalEval, TrainingTimer
from mixrep.training.cli import MixrepCLI, averaging_after_style_eval, last_checkpoint_path, main
from mixrep.errors import CheckpointError
from mixrep.models.checkpoint import CHECKPOINT_KIND, read_encoder
from mixrep.training.contrastive import ContrastiveStyleModule
from mixrep.training.datamodule import TripletDataModule
from tests.conftest import tiny_fit_args

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml") if yaml.safe_load(p.read_text()).get("task") != "regression")
"""The style-encoder configs (``configs/regression.yaml`` trains the Stage 2 head: tests/transfer)."""


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_config_instantiates(config):
    cli = MixrepCLI(ContrastiveStyleModule, TripletDataModule, args=["--config", str(config)], run=False)
    assert isinstance(cli.model, ContrastiveStyleModule)
    # Front-end settings are linked from the data module into the model (and so into checkpoints).
    for name in ("clip_seconds", "sample_rate", "seed"):
        assert cli.model.hparams[name] == cli.datamodule.hparams[name]
    assert cli.trainer.gradient_clip_val == 1.0


def test_fma_config_mirrors_the_prototype():
    cli = MixrepCLI(ContrastiveStyleModule, TripletDataModule, args=["--config", "configs/fma.yaml"], run=False)
    data, model = cli.datamodule.hparams, cli.model.hparams
    assert (data.batch_size, data.clip_seconds, data.source, data.transport_dtype) == (24, 10.0, "fma", "float16")
    assert cli.model.frontend_config.n_mels == 128
    assert (model.embedding_dim, model.lr, model.temperature) == (768, 2e-4, 0.1)
    assert cli.datamodule.augment.gain.max_gain_db == 9.0 and cli.datamodule.augment.gain.prob == 0.5


def test_fast_dev_run_on_cpu(tmp_path):
    cli = main(tiny_fit_args(tmp_path, "--trainer.fast_dev_run", "2", "--trainer.accelerator", "cpu"))
    metrics = cli.trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and 0.0 <= float(metrics["val/map"]) <= 1.0


def test_last_checkpoint_is_rewritten_every_epoch_best_only_on_improvement(tmp_path):
    cli = main(tiny_fit_args(tmp_path, "--trainer.max_epochs", "3"))
    last = torch.load(last_checkpoint_path(cli.trainer), map_location="cpu", weights_only=True)
    assert last["global_step"] == cli.trainer.global_step == 6
    best = cli.trainer.checkpoint_callback
    assert best.monitor == "val/map" and Path(best.best_model_path).is_file()
    assert torch.load(best.best_model_path, weights_only=True)["global_step"] in (2, 4, 6)


def test_checkpoint_describes_itself(tiny_checkpoint):
    checkpoint = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    meta = checkpoint["mixrep"]
    assert meta["kind"] == CHECKPOINT_KIND and len(meta["content_hash"]) == 16
    assert meta["encoder_config"]["embedding_dim"] == 16 and meta["frontend"]["n_mels"] == 32


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_resume_with_dataloader_workers_continues_identically(tmp_path):
    # The uninterrupted run also writes a checkpoint after every epoch; resuming a second run from
    # the one of epoch 0 must end with the same weights, optimiser and schedule state. Workers
    # prefetch sampler indices before Lightning restores the epoch: the sampler must start at the
    # restored epoch, or the resumed run replays epoch 0's triplets.
    # (Two ModelCheckpoints with equal settings cannot share a trainer: "last" saves every 2 here.)
    workers = ("--data.num_workers", "2")
    straight = main(tiny_fit_args(tmp_path / "straight", "--trainer.max_epochs", "2", *workers,
                                  "--periodic_checkpoint.every_n_epochs", "1", "--last_checkpoint.every_n_epochs", "2"))
    (midway,) = (tmp_path / "straight").rglob("epoch00.ckpt")
    resumed = main(tiny_fit_args(tmp_path / "resumed", "--trainer.max_epochs", "2", *workers, "--ckpt_path", str(midway)))
    assert resumed.trainer.global_step == straight.trainer.global_step == 4
    a = _weights(Path(last_checkpoint_path(straight.trainer)))
    b = _weights(Path(last_checkpoint_path(resumed.trainer)))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)


def test_resume_refuses_a_checkpoint_of_another_model_naming_the_fields(tmp_path, tiny_checkpoint):
    # The model's own arguments (LightningCLI would silently take the checkpoint's instead)...
    with pytest.raises(CheckpointError, match=r"model.embedding_dim: checkpoint 16, this run 32; model.n_mels: "
                                              r"checkpoint 32, this run 40"):
        main(tiny_fit_args(tmp_path, "--model.n_mels", "40", "--model.embedding_dim", "32",
                           "--ckpt_path", str(tiny_checkpoint)))
    # ...and the front-end settings linked from the data module.
    with pytest.raises(CheckpointError, match=r"model.sample_rate: checkpoint 22050, this run 44100"):
        main(tiny_fit_args(tmp_path, "--data.sample_rate", "44100", "--ckpt_path", str(tiny_checkpoint)))
    # Trainer.fit(ckpt_path=...) without the CLI: the module checks when the weights load.
    hparams = {k: v for k, v in torch.load(tiny_checkpoint, weights_only=True)["hyper_parameters"].items()
               if not k.startswith("_")}
    other = ContrastiveStyleModule(**{**hparams, "n_mels": 40, "hop_length": 256})
    with pytest.raises(CheckpointError, match=r"encoder n_mels: checkpoint 32, this run 40.*front end hop_length: "
                                              r"checkpoint 512, this run 256"):
        other.on_load_checkpoint(torch.load(tiny_checkpoint, weights_only=True))
    assert not list(tmp_path.rglob("*.ckpt"))
    # From the shell: a clear message and exit code 2, no traceback.
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    result = subprocess.run(["bash", "scripts/train.sh", "--config", "configs/fma.yaml", "--data.root", str(tmp_path),
                             "--ckpt_path", str(tiny_checkpoint)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and result.stderr.startswith("error: cannot resume") and "Traceback" not in result.stderr
    assert "model.embedding_dim: checkpoint 16, this run 768" in result.stderr


def _train_sh_config(*args: str) -> dict:
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    result = subprocess.run(["bash", "scripts/train.sh", *args, "--print_config"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return yaml.safe_load(result.stdout)


def test_train_sh_adds_arguments_to_the_demo_config_unless_another_config_is_given():
    demo = _train_sh_config("--trainer.max_epochs", "2")
    assert demo["trainer"]["max_epochs"] == 2  # the argument...
    assert (demo["data"]["sample_rate"], demo["model"]["n_mels"]) == (22050, 64)
    # The default that generalises (README, cross-domain table): two soundfonts, the third
    # (MuseScore_General) held out for evaluation; mixing-style space, same_chain pairs, feature branch.
    assert demo["data"]["source"] == ["soundfont"] and demo["data"]["soundfonts"] == ["FluidR3_GM", "TimGM6mb"]
    assert (demo["data"]["styles"], demo["data"]["strategy"], demo["model"]["feature_branch_dim"]) == (
        "mix_style", "same_chain", 64)
    assert demo["trainer"]["default_root_dir"] == "outputs/demo"  # ...on top of configs/demo.yaml
    fma = _train_sh_config("--config", "configs/fma.yaml", "--data.root", "/data/fma")
    assert (fma["data"]["source"], fma["data"]["sample_rate"], fma["model"]["embedding_dim"]) == ("fma", 44100, 768)


def test_nan_loss_stops_the_run_without_writing_a_checkpoint(tmp_path, monkeypatch):
    import mixrep.training.contrastive as contrastive

    real = contrastive.info_nce

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        return type(out)(out.loss * float("nan"), out.accuracy, out.logits)

    monkeypatch.setattr(contrastive, "info_nce", poisoned)
    with pytest.raises(FloatingPointError, match=r"batch 0 .*track indices"):
        main(tiny_fit_args(tmp_path))
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tmp_path):
    args = tiny_fit_args(tmp_path, "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                         "--trainer.strategy", "ddp", "--trainer.limit_train_batches", "1.0")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "mixrep.training.cli", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size: 2" in result.stderr + result.stdout or "GLOBAL_RANK: 1" in result.stderr + result.stdout
    checkpoint = Path(next(tmp_path.rglob("last.ckpt")))
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    # The distributed sampler gives each process half of the 16 items of an epoch: 2 batches of 4
    # each instead of 4 batches in a single process.
    assert state["global_step"] == math.ceil(16 / 2 / 4) == 2


def test_weight_averaging_scores_and_saves_the_averaged_encoder(tmp_path):
    # EMA from the config's trainer.callbacks comes before the metric callbacks in Lightning's order; the
    # CLI moves it after the style metric, so val/map (and the best checkpoint) score the averaged weights.
    cli = main(tiny_fit_args(tmp_path, "--trainer.max_epochs", "2",
                             "--trainer.callbacks+=lightning.pytorch.callbacks.EMAWeightAveraging",
                             "--trainer.callbacks.decay=0.5"))
    names = [type(c).__name__ for c in cli.trainer.callbacks]
    assert names.index("StyleRetrievalEval") < names.index("EMAWeightAveraging")
    checkpoint = torch.load(last_checkpoint_path(cli.trainer), map_location="cpu", weights_only=True)
    encoder, _, _ = read_encoder(checkpoint, "last.ckpt")  # the recorded hash is that of the stored (averaged) weights
    raw = checkpoint["current_model_state"]
    floats = [k for k, v in checkpoint["state_dict"].items() if k.startswith("encoder.") and v.is_floating_point()]
    assert any(not torch.equal(checkpoint["state_dict"][k], raw[k]) for k in floats)
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(value, checkpoint["state_dict"]["encoder." + name], rtol=0, atol=0)


def test_averaging_moves_after_the_last_style_metric_and_keeps_the_rest_in_order():
    from lightning.pytorch.callbacks import EMAWeightAveraging

    ema, style, timer = EMAWeightAveraging(), StyleRetrievalEval(), TrainingTimer()
    callbacks = [ema, timer, style]
    averaging_after_style_eval(callbacks)
    assert callbacks == [timer, style, ema]
    callbacks = [timer, ema]  # no style metric (another task): untouched
    averaging_after_style_eval(callbacks)
    assert callbacks == [timer, ema]
