"""``mixrep train encoder|head``: the LightningCLIs of the style encoder and of the Stage 2 head.

    mixrep train encoder fit --config configs/demo.yaml [--trainer.max_epochs 2 ...]
    mixrep train head fit --config configs/regression.yaml [--model.encoder_checkpoint PATH]

Everything after ``encoder``/``head`` is LightningCLI's own command line: a subcommand (``fit``,
``validate``, ``test``, ``predict``), ``--config`` files and ``--section.key value`` overrides,
``--help``, ``--print_config``. ``bash scripts/train.sh`` wraps it. The encoder's model owns the front
end (``--model.n_mels``, ``--model.n_fft``...); the data module's sample rate, clip length and seed
are linked into it, so checkpoints record exactly how inputs must be prepared. The head's CLI is
:mod:`mixrep.cli.train_head`.
"""

from __future__ import annotations

import argparse
from typing import Literal

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from mixrep.training.datamodule import TripletDataModule
from mixrep.errors import CheckpointError
from mixrep.training.callbacks import StyleRetrievalEval
from mixrep.training.contrastive import ContrastiveStyleModule, check_decoder_styles
from mixrep.training.runs import (
    add_training_callbacks, averaging_after_style_eval, lightning_cli, model_differences, report_fit,
    resume_checkpoint, share_cpu_with_workers,
)

LINKED = ("sample_rate", "clip_seconds", "seed")
TARGETS = ("encoder", "head")


class EncoderCLI(LightningCLI):
    """LightningCLI of the style encoder: linked front-end arguments, mixed precision on GPUs."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--task", type=Literal["encoder", "style"], default="encoder",
                            help="the `mixrep train` target of this config (`style`: configs saved before "
                                 "it was named)")
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
        differences = model_differences(checkpoint.get("hyper_parameters", {}), config["model"])
        if differences:
            raise CheckpointError(
                f"cannot resume from {config['ckpt_path']}: its model was trained with other arguments than "
                "this run's (" + "; ".join(differences) + "). Resume with the config and --model arguments of the "
                "run that wrote it (`bash scripts/train.sh --config <its config> --ckpt_path ...`), or start a new "
                "run without --ckpt_path to train another model.")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config["trainer"]
        if trainer.get("precision") in (None, "auto") and torch.cuda.is_available():
            trainer["precision"] = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        if not torch.cuda.is_available() and trainer.get("accelerator") in (None, "auto", "cpu"):
            share_cpu_with_workers(int(config["data"].get("num_workers") or 0))
        check_decoder_styles(float(config["model"].get("settings_weight") or 0.0), config["data"].get("styles"))

    def instantiate_trainer(self, **kwargs):
        trainer = super().instantiate_trainer(**kwargs)
        averaging_after_style_eval(trainer.callbacks)
        return trainer

    def after_fit(self) -> None:
        report_fit(self.trainer, "training finished", "mixrep evaluate --checkpoint")


def train_encoder(args: list[str] | None = None, run: bool = True) -> EncoderCLI:
    """``mixrep train encoder ARGS``: the style encoder's LightningCLI on ``args`` (``None``: ``sys.argv[1:]``)."""
    return lightning_cli(EncoderCLI, ContrastiveStyleModule, TripletDataModule, args, run, prog="mixrep train encoder")


def train(target: str, args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """``mixrep train TARGET ARGS``: ``encoder`` (:func:`train_encoder`) or ``head``
    (:func:`mixrep.cli.train_head.train_head`)."""
    if target == "head":
        from mixrep.cli.train_head import train_head

        return train_head(args, run)
    if target != "encoder":
        raise ValueError(f"unknown training target {target!r}; use one of {', '.join(TARGETS)}")
    return train_encoder(args, run)


def register(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "train", help="train the style encoder or the Stage 2 head (LightningCLI)",
        description="Train with LightningCLI. Everything after the target is LightningCLI's command line: a\n"
                    "subcommand (fit, validate, test, predict), --config files, --section.key overrides,\n"
                    "--print_config; `mixrep train encoder --help` lists them. A head names its style encoder:\n"
                    "--model.encoder_checkpoint PATH, or `demo` (configs/regression.yaml): the best checkpoint\n"
                    "`make demo` recorded in outputs/demo/best.json. It is resolved once, at the start, and the\n"
                    "run's config and checkpoint record its absolute path and sha256.",
        epilog="examples:\n"
               "  mixrep train encoder fit --config configs/demo.yaml --trainer.max_epochs 2\n"
               "  mixrep train encoder fit --config configs/demo.yaml --ckpt_path outputs/demo/.../last.ckpt\n"
               "  mixrep train head fit --config configs/regression.yaml --model.encoder_checkpoint enc.ckpt\n"
               "`bash scripts/train.sh` runs the same with configs/demo.yaml as the default config.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("target", choices=TARGETS, help="encoder: the style encoder (configs/demo.yaml, configs/"
                                                         "fma.yaml); head: the Stage 2 head (configs/regression.yaml)")
    command.add_argument("lightning_args", nargs=argparse.REMAINDER, metavar="ARGS",
                         help="LightningCLI's arguments, from its subcommand on (`fit --config configs/demo.yaml`)")
    command.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    train(args.target, args.lightning_args)
    return 0
