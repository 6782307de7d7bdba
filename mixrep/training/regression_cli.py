"""LightningCLI of Stage 2: ``bash scripts/train.sh --config configs/regression.yaml``.

``mixrep.training.cli`` hands a config whose top-level ``task`` is ``regression`` to this CLI. The
console settings of the data module (sample rate, chains, processor options) are linked into the
model, so the head checkpoint records the console it drives.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from mixrep.training.head_data import TransferDataModule
from mixrep.errors import CheckpointError
from mixrep.training.cli import add_training_callbacks, report_fit, resume_checkpoint, share_cpu_with_workers
from mixrep.training.regression import RegressionModule

LINKED = ("sample_rate", "chain", "group_chain", "processor_options")


def latest_encoder_checkpoint(root: str | Path = "outputs/demo") -> Path:
    """The newest ``last.ckpt`` of the style-encoder runs under ``root`` (what ``make demo`` trains).

    Raises:
        CheckpointError: none there, with the command that trains one.
    """
    found = sorted(Path(root).glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CheckpointError(f"no style-encoder checkpoint under {root}/: train one first with `bash scripts/train.sh` "
                              f"(or pass --model.encoder_checkpoint PATH)")
    return found[-1]


class RegressionCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--task", default="regression", help="which training this config is for")
        for name in LINKED:
            parser.link_arguments(f"data.{name}", f"model.{name}")
        add_training_callbacks(parser, monitor="val/audio_loss", mode="min", label="loss")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        resume_checkpoint(config)
        model = config["model"]
        if model.get("encoder_checkpoint") in (None, "", "auto"):
            model["encoder_checkpoint"] = str(latest_encoder_checkpoint())
        share_cpu_with_workers(int(config["data"].get("num_workers") or 0))

    def after_fit(self) -> None:
        report_fit(self.trainer, "regression head trained", "mixrep evaluate-transfer --head")


def main(args: list[str] | None = None) -> RegressionCLI:
    return RegressionCLI(RegressionModule, TransferDataModule, seed_everything_default=0,
                         save_config_kwargs={"overwrite": True}, args=args)
