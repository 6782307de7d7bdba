"""LightningCLI of Stage 2: ``bash scripts/train.sh --config configs/regression.yaml``.

``mixrep.training.cli`` hands a config whose top-level ``task`` is ``regression`` to this CLI. The
console settings of the data module (sample rate, chains, processor options) are linked into the
model, so the head checkpoint records the console it drives.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from mixrep.data.transfer import TransferDataModule
from mixrep.errors import CheckpointError
from mixrep.training.callbacks import TrainingTimer
from mixrep.training.cli import last_checkpoint_path, share_cpu_with_workers
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
        parser.add_lightning_class_args(ModelCheckpoint, "best_checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.add_lightning_class_args(TrainingTimer, "timer")
        parser.set_defaults({
            "trainer.gradient_clip_val": 1.0,
            "best_checkpoint.monitor": "val/audio_loss",
            "best_checkpoint.mode": "min",
            "best_checkpoint.filename": "best-epoch{epoch:02d}-loss{val/audio_loss:.3f}",
            "best_checkpoint.auto_insert_metric_name": False,
            "last_checkpoint.filename": "last",
            "last_checkpoint.save_top_k": 1,
            "last_checkpoint.every_n_epochs": 1,
            "last_checkpoint.enable_version_counter": False,
            "lr_monitor.logging_interval": "step",
        })

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        model = config["model"]
        if model.get("encoder_checkpoint") in (None, "", "auto"):
            model["encoder_checkpoint"] = str(latest_encoder_checkpoint())
        share_cpu_with_workers(int(config["data"].get("num_workers") or 0))

    def after_fit(self) -> None:
        trainer = self.trainer
        if not trainer.is_global_zero:
            return
        timer = next((c for c in trainer.callbacks if isinstance(c, TrainingTimer)), None)
        print("\nregression head trained")
        print(f"  best checkpoint: {trainer.checkpoint_callback.best_model_path or '(none)'}")
        print(f"  last checkpoint: {last_checkpoint_path(trainer) or '(none)'}")
        if timer is not None and timer.steps:
            t = timer.summary
            print(f"  {t['steps']} steps in {t['fit_seconds']:.0f} s of fit (data {t['data_seconds']:.0f} s, "
                  f"steps {t['step_seconds']:.0f} s)")
        best = trainer.checkpoint_callback.best_model_path
        if best:
            print(f"  evaluate: mixrep evaluate-transfer --head {best}")


def main(args: list[str] | None = None) -> RegressionCLI:
    return RegressionCLI(RegressionModule, TransferDataModule, seed_everything_default=0,
                         save_config_kwargs={"overwrite": True}, args=args)
