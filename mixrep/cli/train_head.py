"""``mixrep train head``: the LightningCLI of Stage 2 (``bash scripts/train.sh --config configs/regression.yaml``).

The console settings of the data module (sample rate, chains, processor options) are linked into
the model, so the head checkpoint records the console it drives. The style encoder is named by
``model.encoder_checkpoint``: a path, or ``demo`` (the best checkpoint ``make demo`` recorded in
``outputs/demo/best.json``). It is resolved once, before anything is built, and the run's saved
config, hyperparameters and checkpoint hold the absolute path and the file's sha256
(``model.encoder_sha256``), so a saved config retrains against the same file or says it changed.
"""

from __future__ import annotations

import logging
from typing import Literal

from lightning.pytorch.cli import LightningCLI

from mixrep.training.head_data import TransferDataModule
from mixrep.training.regression import RegressionModule
from mixrep.training.runs import (
    add_training_callbacks, file_sha256, lightning_cli, report_fit, resolve_encoder_checkpoint, resume_checkpoint,
    share_cpu_with_workers,
)

log = logging.getLogger(__name__)

LINKED = ("sample_rate", "chain", "group_chain", "processor_options")


class HeadCLI(LightningCLI):
    """LightningCLI of the regression head: linked console arguments, the encoder resolved once."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--task", type=Literal["head", "regression"], default="head",
                            help="the `mixrep train` target of this config (`regression`: configs saved before it was "
                                 "named)")
        for name in LINKED:
            parser.link_arguments(f"data.{name}", f"model.{name}")
        add_training_callbacks(parser, monitor="val/audio_loss", mode="min", label="loss")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        resume_checkpoint(config)
        model = config["model"]
        path = resolve_encoder_checkpoint(model.get("encoder_checkpoint"))
        model["encoder_checkpoint"] = str(path)
        if model.get("encoder_sha256") is None:  # a given one is checked against the file by RegressionModule
            model["encoder_sha256"] = file_sha256(path)
        log.info("the head trains against the style encoder %s (sha256 %s)", path, model["encoder_sha256"])
        share_cpu_with_workers(int(config["data"].get("num_workers") or 0))

    def after_fit(self) -> None:
        report_fit(self.trainer, "regression head trained", "mixrep evaluate-transfer --head")


def train_head(args: list[str] | None = None, run: bool = True) -> HeadCLI:
    """``mixrep train head ARGS``: the head's LightningCLI on ``args`` (``None``: ``sys.argv[1:]``)."""
    return lightning_cli(HeadCLI, RegressionModule, TransferDataModule, args, run, prog="mixrep train head")
