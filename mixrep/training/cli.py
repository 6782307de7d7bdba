"""LightningCLI entry point: ``python -m mixrep.training.cli fit --config configs/demo.yaml``.

``scripts/train.sh`` wraps it. The model owns the front end (``--model.n_mels``, ``--model.n_fft``...);
the data module's sample rate and clip length are linked into it, so checkpoints record exactly
how inputs must be prepared.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, WeightAveraging
from lightning.pytorch.cli import LightningCLI

from mixrep.inference.style_encoder import load_checkpoint
from mixrep.training.datamodule import TripletDataModule
from mixrep.errors import CheckpointError, MixrepError
from mixrep.files import atomic_write_text
from mixrep.training.callbacks import StyleRetrievalEval, TrainingTimer
from mixrep.training.contrastive import ContrastiveStyleModule

log = logging.getLogger(__name__)

LINKED = ("sample_rate", "clip_seconds", "seed")


class MixrepCLI(LightningCLI):
    """LightningCLI with linked front-end arguments and mixed precision on GPUs."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--task", default="style", help="which training this config is for (see config_task)")
        for name in LINKED:
            parser.link_arguments(f"data.{name}", f"model.{name}")
        parser.add_lightning_class_args(StyleRetrievalEval, "style_eval")
        add_training_callbacks(parser, monitor="val/map", mode="max", label="map")
        parser.add_lightning_class_args(ModelCheckpoint, "periodic_checkpoint")
        parser.set_defaults({
            "periodic_checkpoint.every_n_epochs": 5,
            "periodic_checkpoint.save_top_k": -1,
            "periodic_checkpoint.filename": "epoch{epoch:02d}",
            "periodic_checkpoint.auto_insert_metric_name": False,
        })

    def parse_arguments(self, parser, args) -> None:
        """Parse, then refuse a ``--ckpt_path`` whose model arguments differ from this run's.

        LightningCLI rebuilds the model from the checkpoint's own hyperparameters when resuming,
        so model arguments that differ (another ``--config``, a changed ``--model.*``) would be
        ignored silently; they are reported instead.
        """
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        checkpoint = resume_checkpoint(config)
        if checkpoint is None:
            return
        ckpt_path = config["ckpt_path"]
        saved = checkpoint.get("hyper_parameters", {})
        model = config["model"]
        differences = [f"model.{name}: checkpoint {_plain(saved[name])!r}, this run {_plain(model[name])!r}"
                       for name in sorted(saved) if name in model and _plain(saved[name]) != _plain(model[name])]
        if differences:
            raise CheckpointError(
                f"cannot resume from {ckpt_path}: its model was trained with other arguments than this run's ("
                + "; ".join(differences) + "). Resume with the config and --model arguments of the run that wrote "
                "it (`bash scripts/train.sh --config <its config> --ckpt_path ...`), or start a new run without "
                "--ckpt_path to train another model.")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config["trainer"]
        if trainer.get("precision") in (None, "auto") and torch.cuda.is_available():
            trainer["precision"] = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        if not torch.cuda.is_available() and trainer.get("accelerator") in (None, "auto", "cpu"):
            share_cpu_with_workers(int(config["data"].get("num_workers") or 0))

    def instantiate_trainer(self, **kwargs):
        trainer = super().instantiate_trainer(**kwargs)
        averaging_after_style_eval(trainer.callbacks)
        return trainer

    def after_fit(self) -> None:
        report_fit(self.trainer, "training finished", "mixrep evaluate --checkpoint")


def resume_checkpoint(config) -> dict | None:
    """The checkpoint a ``fit`` config resumes from (``ckpt_path``), read safely, and its run continued.

    The file is read with ``weights_only`` (:func:`mixrep.api.load_checkpoint`), so a checkpoint
    holding pickled code is refused with a clear error before Lightning reads it. When it lies in a
    version folder of this run's logger (``<save_dir>/<name>/version_N/checkpoints/``), the logger
    is set to that version: the resumed run writes into the same folder, and Lightning's
    ``ModelCheckpoint`` then restores its best model and score instead of starting over (it reloads
    them only for the same folder). ``None`` without ``ckpt_path`` or for Lightning's special values
    (``last``, ``best``...).

    Raises:
        CheckpointError: the file cannot be read safely.
    """
    ckpt_path = config.get("ckpt_path") if config is not None else None
    if not ckpt_path or not Path(ckpt_path).is_file():
        return None
    checkpoint = load_checkpoint(ckpt_path)
    version = resumed_version(Path(ckpt_path), config["trainer"].get("logger"))
    if version is not None:
        config["trainer"]["logger"]["init_args"]["version"] = version
        log.info("resuming %s in its own run folder (version_%d): the best checkpoint so far is kept", ckpt_path,
                 version)
    return checkpoint


def resumed_version(ckpt_path: Path, logger) -> int | None:
    """N when ``ckpt_path`` is ``<save_dir>/<name>/version_N/checkpoints/*.ckpt`` of the configured
    logger (whose own version is unset), else ``None``."""
    init = logger.get("init_args") if hasattr(logger, "get") else None
    if init is None or init.get("version") is not None or init.get("save_dir") is None:
        return None
    folder = ckpt_path.resolve().parent
    found = re.fullmatch(r"version_(\d+)", folder.parent.name) if folder.name == "checkpoints" else None
    logs = Path(init["save_dir"]) / (init.get("name") or "lightning_logs")
    if found is None or not logs.exists() or folder.parent.parent != logs.resolve():
        return None
    return int(found.group(1))


BEST_RECORD = "best.json"
"""Written after a fit into the run folder and the logger's ``save_dir``: the run's best checkpoint."""


def write_best_record(trainer) -> Path | None:
    """Record the best checkpoint of a finished fit in ``<run folder>/best.json`` and
    ``<save_dir>/best.json`` (the newest finished run there), atomically; scripts read it instead of
    guessing from file times. Returns the run's record path (``None`` without a logger or a best).

    The record: ``best_model_path``, ``best_model_score``, ``monitor``, ``last_model_path``, ``run_dir``.
    """
    checkpoint = trainer.checkpoint_callback
    logger = trainer.logger
    if checkpoint is None or not checkpoint.best_model_path or logger is None or not logger.log_dir:
        return None
    score, last = checkpoint.best_model_score, last_checkpoint_path(trainer)
    record = json.dumps({"best_model_path": str(Path(checkpoint.best_model_path).resolve()),
                         "best_model_score": None if score is None else float(score), "monitor": checkpoint.monitor,
                         "last_model_path": str(Path(last).resolve()) if last else None,
                         "run_dir": str(Path(logger.log_dir).resolve())}, indent=1)
    atomic_write_text(Path(logger.save_dir) / BEST_RECORD, record)
    return atomic_write_text(Path(logger.log_dir) / BEST_RECORD, record)


def averaging_after_style_eval(callbacks: list) -> None:
    """Move weight averaging (``trainer.callbacks: EMAWeightAveraging``) after the style metric, in place.

    Weight averaging swaps the averaged weights in at the start of validation and back at its end
    (``on_validation_epoch_end``); the style metric is computed in that same hook, so it must run
    first, or ``val/map`` (and the best checkpoint, which stores the averaged weights) would score
    the raw weights. Lightning calls callbacks in list order, and the config's callbacks come first.
    """
    evals = [i for i, c in enumerate(callbacks) if isinstance(c, StyleRetrievalEval)]
    if not evals:
        return
    averaging = [c for c in callbacks[:evals[-1]] if isinstance(c, WeightAveraging)]
    for callback in averaging:
        callbacks.remove(callback)
    position = max(i for i, c in enumerate(callbacks) if isinstance(c, StyleRetrievalEval)) + 1
    callbacks[position:position] = averaging


def add_training_callbacks(parser, monitor: str, mode: str, label: str) -> None:
    """The always-on callbacks of every mixrep training, each configurable from YAML under its own key.

    ``best_checkpoint`` keeps the best epoch by ``monitor`` (file ``best-epochNN-<label>X.XXX``);
    ``last_checkpoint`` is the single newest checkpoint, rewritten every epoch (Lightning writes
    ``save_last`` copies only when that callback saved a top-k file, hence its own callback);
    ``lr_monitor`` logs the learning rate per step and ``timer`` splits fit time into data and steps.
    Also clips gradients at norm 1 by default.
    """
    parser.add_lightning_class_args(ModelCheckpoint, "best_checkpoint")
    parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
    parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
    parser.add_lightning_class_args(TrainingTimer, "timer")
    parser.set_defaults({
        "trainer.gradient_clip_val": 1.0,
        "best_checkpoint.monitor": monitor,
        "best_checkpoint.mode": mode,
        "best_checkpoint.filename": f"best-epoch{{epoch:02d}}-{label}{{{monitor}:.3f}}",
        "best_checkpoint.auto_insert_metric_name": False,
        "last_checkpoint.filename": "last",
        "last_checkpoint.save_top_k": 1,
        "last_checkpoint.every_n_epochs": 1,
        "last_checkpoint.enable_version_counter": False,
        "lr_monitor.logging_interval": "step",
    })


def report_fit(trainer, title: str, evaluate_command: str) -> None:
    """Print where a finished fit left its checkpoints and logs, its time split, and the next command.

    Also writes ``timing.json`` (the ``timer`` callback's summary and the load average) into the log dir.
    Rank zero only.
    """
    if not trainer.is_global_zero:
        return
    checkpoint = trainer.checkpoint_callback
    print(f"\n{title}")
    if checkpoint is not None:
        print(f"  best checkpoint: {checkpoint.best_model_path or '(none)'}"
              + (f" ({checkpoint.monitor} = {float(checkpoint.best_model_score):.4f})"
                 if checkpoint.best_model_score is not None else ""))
        print(f"  last checkpoint: {last_checkpoint_path(trainer) or '(none)'}")
    timer = next((c for c in trainer.callbacks if isinstance(c, TrainingTimer)), None)
    if timer is not None and timer.steps:
        t = timer.summary
        print(f"  {t['steps']} steps in {t['fit_seconds']:.0f} s of fit ({t['steps_per_second']:.2f} steps/s while "
              f"training; waiting for data {t['data_seconds']:.0f} s, steps {t['step_seconds']:.0f} s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if trainer.logger is not None and trainer.logger.log_dir:
        if timer is not None:
            atomic_write_text(Path(trainer.logger.log_dir) / "timing.json",
                              json.dumps({**timer.summary, "load_average": list(os.getloadavg())}, indent=1))
        print(f"  logs: {trainer.logger.log_dir}")
        print(f"  view them: tensorboard --logdir {trainer.logger.save_dir}")
    record = write_best_record(trainer)
    if record is not None:
        print(f"  best checkpoint recorded in {record}")
    if checkpoint is not None and checkpoint.best_model_path:
        print(f"  evaluate: {evaluate_command} {checkpoint.best_model_path}")


def share_cpu_with_workers(workers: int) -> int:
    """On a CPU, give the training process the cores the DataLoader workers leave (at least one).

    The front end and the encoder run in the training process while every worker restyles
    clips; intra-op threads beyond the free cores only wait on each other (measured on 2 cores with
    2 workers: the front end 4x to 8x slower with 2 threads than with 1). Returns the thread count.
    """
    if workers <= 0:
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, min(torch.get_num_threads(), cores - workers))
    if threads != torch.get_num_threads():
        log.info("training on the CPU with %d DataLoader workers on %d cores: %d intra-op thread(s)",
                 workers, cores, threads)
        torch.set_num_threads(threads)
    return threads


def last_checkpoint_path(trainer) -> str:
    """Path of the newest checkpoint written by the ``last_checkpoint`` callback ('' if none)."""
    for callback in trainer.checkpoint_callbacks:
        if callback.filename == "last" and callback.monitor is None:
            return callback.best_model_path
    return ""


def _plain(value):
    """Tuples and lists compare equal (YAML gives lists, checkpoints may hold tuples)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


TASKS = ("style", "regression")


def config_task(args: list[str]) -> str:
    """The ``task`` of a training command line: ``--task`` if given, else the top-level ``task`` key
    of its last ``--config`` file that has one, else ``"style"`` (the encoder).

    Raises:
        MixrepError: an unknown task, or a config file that cannot be read.
    """
    import yaml

    task = "style"
    for i, arg in enumerate(args):
        value = None
        if arg in ("--config", "-c") and i + 1 < len(args):
            path = Path(args[i + 1])
            try:
                data = yaml.safe_load(path.read_text()) if path.is_file() else None
            except (OSError, yaml.YAMLError) as e:
                raise MixrepError(f"cannot read config {path}: {e}") from e
            value = data.get("task") if isinstance(data, dict) else None
        elif arg.startswith("--config="):
            return config_task(["--config", arg.split("=", 1)[1], *args[i + 1:]])
        elif arg == "--task" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--task="):
            value = arg.split("=", 1)[1]
        if value is not None:
            task = str(value)
    if task not in TASKS:
        raise MixrepError(f"unknown training task {task!r}; use one of {', '.join(TASKS)}")
    return task


def main(args: list[str] | None = None) -> LightningCLI:
    """Train the style encoder, or the Stage 2 head for a config with ``task: regression``."""
    if config_task(sys.argv[1:] if args is None else args) == "regression":
        from mixrep.training.regression_cli import main as regression_main

        return regression_main(args)
    return MixrepCLI(ContrastiveStyleModule, TripletDataModule, seed_everything_default=0,
                     save_config_kwargs={"overwrite": True}, args=args)


if __name__ == "__main__":
    try:
        main()
    except MixrepError as e:  # a refused resume, a missing dataset...: the message says what to do
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
