"""A training run's plumbing, shared by ``mixrep train encoder`` and ``mixrep train head``.

Resuming safely (:func:`resume_checkpoint`), the always-on callbacks (:func:`add_training_callbacks`),
the best checkpoint's record ``best.json`` (:func:`write_best_record`, read back by
:func:`read_best_record`), the report after a fit, CPU threads beside DataLoader workers, and the
style encoder a head trains against (:func:`resolve_encoder_checkpoint`: a path, or ``demo``: the
best checkpoint ``make demo`` recorded; never "the newest file").
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from pathlib import Path

import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, WeightAveraging
from lightning.pytorch.cli import LightningCLI

from mixrep.inference.style_encoder import load_checkpoint
from mixrep.errors import CheckpointError
from mixrep.files import atomic_write_text, digest, file_chunks
from mixrep.training.callbacks import StyleRetrievalEval, TrainingTimer

log = logging.getLogger(__name__)


def resume_checkpoint(config) -> dict | None:
    """The checkpoint a ``fit`` config resumes from (``ckpt_path``), read safely, and its run continued.

    The file is read with ``weights_only`` (:func:`mixrep.inference.style_encoder.load_checkpoint`), so a checkpoint
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


def model_differences(saved: dict, model: dict) -> list[str]:
    """``model.<name>: checkpoint X, this run Y`` for every argument a checkpoint's hyperparameters
    (``saved``) and this run's model config hold with different values (tuples and lists compare equal:
    YAML gives lists, checkpoints may hold tuples)."""
    return [f"model.{name}: checkpoint {_plain(saved[name])!r}, this run {_plain(model[name])!r}"
            for name in sorted(saved) if name in model and _plain(saved[name]) != _plain(model[name])]


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


DEMO_ENCODER = "demo"
"""The ``encoder_checkpoint`` value naming the best encoder ``make demo`` recorded in :data:`DEMO_RECORD`."""

DEMO_RECORD = Path("outputs/demo") / BEST_RECORD
"""Where ``make demo`` (``configs/demo.yaml``'s logger ``save_dir``) records its best checkpoint; relative
to the working directory, the repository root for ``scripts/*.sh``."""


def read_best_record(path: str | Path) -> dict:
    """The record :func:`write_best_record` wrote at ``path``.

    Raises:
        CheckpointError: missing, not JSON, or without a ``best_model_path``.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist: no finished training run recorded its best checkpoint there "
                              f"(`make demo` writes {DEMO_RECORD})") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read the best-checkpoint record {path}: {e}") from e
    if not isinstance(record, dict) or not isinstance(record.get("best_model_path"), str):
        raise CheckpointError(f"{path} is not a best-checkpoint record (no best_model_path); it is written by a "
                              f"finished `mixrep train` run")
    return record


def resolve_encoder_checkpoint(value: str | Path | None, demo_record: str | Path = DEMO_RECORD) -> Path:
    """The absolute path of the style-encoder checkpoint a head trains against.

    ``value`` is a checkpoint path, or :data:`DEMO_ENCODER` (``"demo"``): the best checkpoint of the
    encoder ``make demo`` trained, as ``demo_record`` records it. Nothing is picked by file time.

    Raises:
        CheckpointError: no value (or the removed ``auto``), no record, or no such checkpoint file;
            each message says to run ``make demo`` or to pass ``--model.encoder_checkpoint PATH``.
    """
    hint = "run `make demo` to train the demo encoder, or pass --model.encoder_checkpoint PATH"
    if value is None or str(value) in ("", "auto"):
        raise CheckpointError(f"model.encoder_checkpoint is {value!r}: name the style encoder the head trains against, "
                              f"`demo` (the best checkpoint `make demo` recorded in {demo_record}) or a checkpoint "
                              f"path; {hint}")
    if str(value) == DEMO_ENCODER:
        if not Path(demo_record).is_file():
            raise CheckpointError(f"model.encoder_checkpoint: demo is the best encoder `make demo` recorded in "
                                  f"{demo_record}, which does not exist; {hint}")
        try:
            path = Path(read_best_record(demo_record)["best_model_path"])
        except CheckpointError as e:
            raise CheckpointError(f"model.encoder_checkpoint: demo: {e}; {hint}") from None
        if not path.is_file():
            raise CheckpointError(f"model.encoder_checkpoint: demo: {demo_record} names {path}, which does not exist; "
                                  f"{hint}")
    else:
        path = Path(value).expanduser()
        if not path.is_file():
            raise CheckpointError(f"the style-encoder checkpoint {path} (model.encoder_checkpoint) does not exist; "
                                  f"{hint}")
    return path.resolve()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex), as ``sha256sum`` prints it."""
    return digest(file_chunks([path]))


def lightning_cli(cli_class: type[LightningCLI], model_class: type, datamodule_class: type, args: list[str] | None,
                  run: bool = True, prog: str | None = None) -> LightningCLI:
    """Run one of mixrep's LightningCLIs on ``args`` (``None``: ``sys.argv[1:]``), seeded with 0 by default;
    ``prog``: the command its help and errors name (``mixrep train encoder``).

    ``mixrep train`` hands LightningCLI the arguments after ``encoder``/``head`` while ``sys.argv`` holds
    the whole command line, which LightningCLI warns about (it suspects a mistake); that warning is off.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        return cli_class(model_class, datamodule_class, seed_everything_default=0,
                         save_config_kwargs={"overwrite": True}, args=args, run=run,
                         parser_kwargs={} if prog is None else {"prog": prog})
