"""Training through LightningCLI: configs, fast_dev_run, resume, NaN guard, DDP."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from mixrep.cli import main as mixrep_main
from mixrep.constants import STEMS
from mixrep.errors import CheckpointError
from mixrep.models.checkpoint import CHECKPOINT_KIND, read_encoder
from mixrep.training.callbacks import StyleRetrievalEval, TrainingTimer
from mixrep.cli.train import EncoderCLI, train_encoder
from mixrep.training.contrastive import ContrastiveStyleModule
from mixrep.cli.train_head import HeadCLI, train_head
from mixrep.training.runs import (
    DEMO_RECORD, averaging_after_style_eval, file_sha256, last_checkpoint_path, resolve_encoder_checkpoint,
)
from tests.conftest import tiny_fit_args
from tests.inference.conftest import tiny_regression_args

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml") if yaml.safe_load(p.read_text()).get("task") == "encoder")
"""The style-encoder configs (``configs/regression.yaml``, ``task: head``, trains the Stage 2 head)."""


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_config_builds_a_model_that_embeds_the_clips_of_its_data(config):
    # Through the real parser, without training or data: the model the config builds must take the
    # clips its data module makes ((batch, stems, channels, samples) at the data's rate and clip length:
    # the front end's settings are linked from the data module, so checkpoints record them) and embed them.
    cli = train_encoder(["--config", str(config)], run=False)
    model, data = cli.model, cli.datamodule.hparams
    assert isinstance(cli, EncoderCLI) and isinstance(model, ContrastiveStyleModule)
    frontend = model.frontend_config
    assert (frontend.sample_rate, frontend.clip_seconds, model.hparams.seed) == (data.sample_rate, data.clip_seconds,
                                                                                 data.seed)
    clips = torch.randn(2, len(STEMS), 2, round(data.sample_rate * data.clip_seconds)) * 0.1
    model.eval()
    with torch.no_grad():
        mel, features = model.frontend(clips)
        embedding = model(mel, features)
    assert mel.shape[:3] == (2, 2 * len(STEMS), frontend.n_mels) and features.shape == (2, model.frontend.num_features)
    assert embedding.shape == (2, model.hparams.embedding_dim) and torch.isfinite(embedding).all()
    torch.testing.assert_close(embedding.norm(dim=-1), torch.ones(2))
    assert cli.trainer.gradient_clip_val == 1.0


class LossPerStep(L.Callback):
    """The training loss of every step, as the training step returned it."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.losses.append(float(outputs["loss"]))


def mean_average_precision(embeddings: np.ndarray, song_ids: np.ndarray, style_ids: np.ndarray) -> float:
    """mAP of style retrieval written out by hand (relevant: the query's style on another song): the
    mean over queries of the precision at the rank of each relevant item, ranked by cosine similarity."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = unit @ unit.T
    precisions = []
    for query in range(len(embeddings)):
        others = [i for i in np.argsort(-similarity[query], kind="stable") if i != query]
        relevant = [style_ids[i] == style_ids[query] and song_ids[i] != song_ids[query] for i in others]
        hits = np.cumsum(relevant)
        precisions.append(np.mean([hits[rank] / (rank + 1) for rank in range(len(others)) if relevant[rank]]))
    return float(np.mean(precisions))


def test_a_short_cpu_fit_learns_its_batch_and_scores_its_final_weights(tmp_path):
    # Eight steps on one fixed batch (overfit_batches: the same 4 triplets every epoch): a training
    # loop that learns drives the InfoNCE loss on it far down (measured: to 0.1-0.3 of the first step's
    # on seeds 0-3); one that does not (no optimiser step, no gradient, a zero learning rate) keeps it.
    cli = train_encoder(tiny_fit_args(tmp_path, "--trainer.overfit_batches", "1", "--trainer.max_epochs", "8",
                                      "--trainer.check_val_every_n_epoch", "8", "--model.lr", "3e-3",
                                      "--style_eval.num_styles", "3")[1:], run=False)
    losses = LossPerStep()
    cli.trainer.callbacks.append(losses)
    cli.trainer.fit(cli.model, cli.datamodule)
    assert len(losses.losses) == cli.trainer.global_step == 8
    assert np.mean(losses.losses[-3:]) < 0.5 * losses.losses[0], losses.losses
    # val/map: the style set is 2 held-out songs x 3 styles, and the logged value is the mAP of the
    # final weights on it (recomputed here by hand, not through the metric the callback uses).
    style_eval = next(c for c in cli.trainer.callbacks if isinstance(c, StyleRetrievalEval))
    pairs = set(zip(style_eval.style_set.song_ids.tolist(), style_eval.style_set.style_ids.tolist()))
    assert len(style_eval.style_set.song_ids) == len(pairs) == 2 * 3
    encoder = cli.model.encoder.eval()
    with torch.no_grad():
        embeddings = encoder.embed(style_eval.style_set.mels, style_eval.style_set.features).numpy()
    expected = mean_average_precision(embeddings, style_eval.style_set.song_ids, style_eval.style_set.style_ids)
    assert float(cli.trainer.callback_metrics["val/map"]) == pytest.approx(expected, abs=1e-6)


def test_mixrep_train_encoder_rewrites_last_every_epoch_and_records_the_best(tmp_path):
    # Through the `mixrep` command line, as `bash scripts/train.sh` runs it.
    assert mixrep_main(["train", "encoder", *tiny_fit_args(tmp_path, "--trainer.max_epochs", "3")]) == 0
    (last,) = tmp_path.rglob("last.ckpt")
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 6
    record = json.loads((tmp_path / "best.json").read_text())
    assert record["monitor"] == "val/map" and record["last_model_path"] == str(last.resolve())
    assert torch.load(record["best_model_path"], weights_only=True)["global_step"] in (2, 4, 6)


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
    straight = train_encoder(tiny_fit_args(tmp_path / "straight", "--trainer.max_epochs", "2", *workers,
                                  "--periodic_checkpoint.every_n_epochs", "1", "--last_checkpoint.every_n_epochs", "2"))
    (midway,) = (tmp_path / "straight").rglob("epoch00.ckpt")
    resumed = train_encoder(tiny_fit_args(tmp_path / "resumed", "--trainer.max_epochs", "2", *workers,
                                          "--ckpt_path", str(midway)))
    assert resumed.trainer.global_step == straight.trainer.global_step == 4
    a = _weights(Path(last_checkpoint_path(straight.trainer)))
    b = _weights(Path(last_checkpoint_path(resumed.trainer)))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)


def test_resume_refuses_a_checkpoint_of_another_model_naming_the_fields(tmp_path, tiny_checkpoint):
    # The model's own arguments (LightningCLI would silently take the checkpoint's instead)...
    with pytest.raises(CheckpointError, match=r"model.embedding_dim: checkpoint 16, this run 32; model.n_mels: "
                                              r"checkpoint 32, this run 40"):
        train_encoder(tiny_fit_args(tmp_path, "--model.n_mels", "40", "--model.embedding_dim", "32",
                           "--ckpt_path", str(tiny_checkpoint)))
    # ...and the front-end settings linked from the data module.
    with pytest.raises(CheckpointError, match=r"model.sample_rate: checkpoint 22050, this run 44100"):
        train_encoder(tiny_fit_args(tmp_path, "--data.sample_rate", "44100", "--ckpt_path", str(tiny_checkpoint)))
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


def test_train_sh_picks_the_head_by_the_config_or_by_name_and_refuses_a_mismatch():
    head = _train_sh_config("--config=configs/regression.yaml", "--trainer.max_epochs", "1")
    assert (head["task"], head["model"]["encoder_checkpoint"], head["data"]["chain"]) == ("head", "demo", "ecnsgdr")
    assert head["trainer"]["max_epochs"] == 1
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    result = subprocess.run(["bash", "scripts/train.sh", "head", "--config", "configs/demo.yaml", "--print_config"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "usage: mixrep train head" in result.stderr
    assert 'key "task"' in result.stderr and "Got value: encoder" in result.stderr


def head_args(root: Path, encoder: str | Path, *extra: str) -> list[str]:
    """The tests' tiny head arguments for ``train_head(..., run=False)`` from any working directory."""
    args = tiny_regression_args(root, encoder, *extra)[1:]  # no subcommand
    return [str(REPO / a) if a == "configs/regression.yaml" else a for a in args]


def test_the_demo_encoder_is_the_one_best_json_names_whatever_the_file_times(tmp_path, monkeypatch, tiny_checkpoint):
    # `make demo` recorded a best checkpoint; a later (or resumed) run left a newer last.ckpt beside it,
    # which "the newest last.ckpt" would have taken.
    named = tmp_path / "outputs/demo/tensorboard/version_0/checkpoints/best-epoch03-map0.500.ckpt"
    other = tmp_path / "outputs/demo/tensorboard/version_1/checkpoints/last.ckpt"
    for path in (named, other):
        path.parent.mkdir(parents=True)
        shutil.copyfile(tiny_checkpoint, path)
    (tmp_path / "outputs/demo/best.json").write_text(json.dumps({"best_model_path": str(named)}))
    monkeypatch.chdir(tmp_path)
    for older, newer in ((named, other), (other, named)):
        os.utime(older, (1_000_000, 1_000_000))
        os.utime(newer, (2_000_000, 2_000_000))
        assert resolve_encoder_checkpoint("demo") == named.resolve()
    # The head's CLI resolves it once; its config (what the run saves as config.yaml) and the model's
    # hyperparameters (what its checkpoints hold) record the absolute path and the file's sha256.
    cli = train_head(head_args(tmp_path / "head", "demo"), run=False)
    assert isinstance(cli, HeadCLI)
    saved = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))["model"]
    for recorded in (saved, cli.model.hparams):
        assert recorded["encoder_checkpoint"] == str(named.resolve())
        assert recorded["encoder_sha256"] == file_sha256(named) == hashlib.sha256(named.read_bytes()).hexdigest()


def test_a_head_without_its_named_encoder_says_to_run_make_demo_or_pass_a_path(tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.chdir(tmp_path)
    hint = r"run `make demo`.*--model.encoder_checkpoint PATH"
    with pytest.raises(CheckpointError, match=rf"recorded in {DEMO_RECORD}, which does not exist; {hint}"):
        resolve_encoder_checkpoint("demo")
    DEMO_RECORD.parent.mkdir(parents=True)
    DEMO_RECORD.write_text(json.dumps({"best_model_path": str(tmp_path / "gone.ckpt")}))
    with pytest.raises(CheckpointError, match=rf"names {tmp_path / 'gone.ckpt'}, which does not exist; {hint}"):
        resolve_encoder_checkpoint("demo")
    with pytest.raises(CheckpointError, match=rf"missing.ckpt \(model.encoder_checkpoint\) does not exist; {hint}"):
        resolve_encoder_checkpoint("missing.ckpt")
    with pytest.raises(CheckpointError, match=rf"'auto': name the style encoder.*{hint}"):  # no more "newest file"
        resolve_encoder_checkpoint("auto")
    # A saved config names the file's sha256: another file under that name is refused before training.
    args = head_args(tmp_path / "head", tiny_checkpoint, "--model.encoder_sha256", "0" * 64)
    with pytest.raises(CheckpointError, match=r"has sha256 [0-9a-f]{64}, not the 0{64} this run's config names"):
        train_head(args, run=False)


def test_nan_loss_stops_the_run_without_writing_a_checkpoint(tmp_path, monkeypatch):
    import mixrep.training.contrastive as contrastive

    real = contrastive.info_nce

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        return type(out)(out.loss * float("nan"), out.accuracy, out.logits)

    monkeypatch.setattr(contrastive, "info_nce", poisoned)
    with pytest.raises(FloatingPointError, match=r"batch 0 .*track indices"):
        train_encoder(tiny_fit_args(tmp_path))
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tmp_path):
    args = tiny_fit_args(tmp_path, "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                         "--trainer.strategy", "ddp", "--trainer.limit_train_batches", "1.0")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "mixrep.cli", "train", "encoder", *args], cwd=REPO, env=env,
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
    cli = train_encoder(tiny_fit_args(tmp_path, "--trainer.max_epochs", "2",
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
