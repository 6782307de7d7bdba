"""The Python API: load a trained style encoder and embed stems, mixes or files.

    >>> from mixrep.api import StyleEncoder
    >>> encoder = StyleEncoder.from_checkpoint("outputs/demo/.../last.ckpt")
    >>> encoder.embed_stems(stems, sample_rate=44100)   # (batch, 4, 2, samples) -> (batch, dim)
    >>> encoder.embed_file("song.mp3")                  # (dim,) mean of several clips

Embeddings are L2-normalised, so cosine similarity is a dot product.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchaudio

from mixrep.audio.features import mix_features, num_features
from mixrep.audio.io import audio_duration, read_segment
from mixrep.audio.mel import StemMelSpectrogram
from mixrep.constants import AUDIO_EXTENSIONS, CHANNELS, STEMS
from mixrep.errors import CheckpointError, DatasetError
from mixrep.index.embedder import aggregate_clips
from mixrep.models.encoder import EncoderConfig, MixStyleEncoder
from mixrep.separation.base import Separator
from mixrep.training.contrastive import CHECKPOINT_KIND, state_dict_hash

log = logging.getLogger(__name__)

MIN_CLIP_SECONDS = 1.0


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_checkpoint(path: str | Path) -> dict:
    """Read a mixrep checkpoint, refusing files of another kind with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with `bash scripts/train.sh`")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path} (corrupt or not a PyTorch file): {e}") from e
    meta = checkpoint.get("mixrep") if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"{path} is not a mixrep style-encoder checkpoint (no 'mixrep' section of kind "
                              f"{CHECKPOINT_KIND!r}); pass a checkpoint written by `bash scripts/train.sh`")
    return checkpoint


class StyleEncoder:
    """A trained mixing-style encoder with its front end (mel settings, mix features).

    Attributes:
        embedding_dim: size of the embeddings.
        model_hash: content hash of the encoder weights (recorded by indexes built with it).
        sample_rate: rate in Hz the encoder was trained at; inputs at other rates are resampled.
        clip_seconds: clip length used in training (the length :meth:`embed_file` cuts).
    """

    def __init__(self, encoder: MixStyleEncoder, frontend: dict, model_hash: str, device: torch.device | str | None = None,
                 separator: Separator | None = None, separator_name: str = "htdemucs",
                 separator_weights: str | None = None) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        self.encoder = encoder.to(self.device).eval()
        self.sample_rate = int(frontend["sample_rate"])
        self.clip_seconds = float(frontend["clip_seconds"])
        self.mel = StemMelSpectrogram(self.sample_rate, n_fft=int(frontend["n_fft"]),
                                      hop_length=int(frontend["hop_length"]), n_mels=int(frontend["n_mels"])).to(self.device)
        self.model_hash = model_hash
        self.embedding_dim = encoder.config.embedding_dim
        self._separator = separator
        self.separator_name = separator_name
        self.separator_weights = separator_weights

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str | None = None,
                        separator: Separator | None = None) -> StyleEncoder:
        """Load a checkpoint written by training (Lightning ``.ckpt``); needs nothing else.

        Raises:
            CheckpointError: missing, corrupt, of another kind, or weights that do not match
                their recorded hash.
        """
        return cls.from_loaded(load_checkpoint(path), path, device, separator)

    @classmethod
    def from_loaded(cls, checkpoint: dict, path: str | Path, device: torch.device | str | None = None,
                    separator: Separator | None = None) -> StyleEncoder:
        """Like :meth:`from_checkpoint`, from a dict :func:`load_checkpoint` already read from ``path``."""
        meta = checkpoint["mixrep"]
        config_dict = dict(meta["encoder_config"])
        known = set(EncoderConfig.__dataclass_fields__)
        for name in set(config_dict) - known:
            log.warning("checkpoint %s: ignoring unknown encoder argument %r", path, name)
            config_dict.pop(name)
        config_dict["channels"] = tuple(config_dict["channels"])
        config_dict["pool_size"] = tuple(config_dict.get("pool_size", (2, 2)))
        config = EncoderConfig(**config_dict)
        if config.num_features != num_features():
            raise CheckpointError(f"{path} was trained with {config.num_features} mix features; this mixrep "
                                  f"computes {num_features()}: use the mixrep version that trained it")
        weights = {k.removeprefix("encoder."): v for k, v in checkpoint["state_dict"].items()
                   if k.startswith("encoder.")}
        if state_dict_hash(weights) != meta["content_hash"]:
            raise CheckpointError(f"{path}: the weights do not match their recorded hash {meta['content_hash']} "
                                  f"(file modified or corrupt)")
        encoder = MixStyleEncoder(config)
        encoder.load_state_dict(weights)
        data = checkpoint.get("datamodule_hyper_parameters", {})
        return cls(encoder, meta["frontend"], meta["content_hash"], device=device, separator=separator,
                   separator_name=data.get("separator", "htdemucs"), separator_weights=data.get("weights_path"))

    @property
    def separator(self) -> Separator:
        """The separator used for mixtures (Demucs as configured in training, loaded on first use)."""
        if self._separator is None:
            from mixrep.separation.demucs import DemucsSeparator

            self._separator = DemucsSeparator(self.separator_name, weights_path=self.separator_weights,
                                              device=str(self.device))
        return self._separator

    def _check_stems(self, stems: torch.Tensor, sample_rate: int) -> torch.Tensor:
        stems = torch.as_tensor(stems, dtype=torch.float32)
        if stems.ndim != 4 or stems.shape[1] != len(STEMS) or stems.shape[2] != CHANNELS:
            raise ValueError(f"stems must be (batch, {len(STEMS)} stems in order {', '.join(STEMS)}, "
                             f"{CHANNELS} channels, samples), got shape {tuple(stems.shape)}")
        if stems.shape[-1] < MIN_CLIP_SECONDS * sample_rate:
            raise ValueError(f"clips must last at least {MIN_CLIP_SECONDS} s: got {stems.shape[-1]} samples "
                             f"at {sample_rate} Hz ({stems.shape[-1] / sample_rate:.2f} s)")
        if not torch.isfinite(stems).all():
            raise ValueError("stems contain NaN or infinite samples")
        if sample_rate != self.sample_rate:
            stems = torchaudio.functional.resample(stems, sample_rate, self.sample_rate)
        return stems

    @torch.no_grad()
    def embed_stems(self, stems: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """Embed separated stems.

        Shape:
            stems: ``(batch, 4, 2, samples)`` in the order drums, bass, other, vocals, any length
            of at least 1 s -> ``(batch, embedding_dim)`` L2-normalised, on the CPU.
        """
        stems = self._check_stems(stems, sample_rate)
        features = torch.from_numpy(np.stack([mix_features(s.numpy(), self.sample_rate) for s in stems]))
        stems = stems.to(self.device)
        mel = self.mel(stems)
        if mel.shape[-1] < self.encoder.min_frames:
            raise ValueError(f"clip too short for the encoder ({mel.shape[-1]} frames < {self.encoder.min_frames})")
        return self.encoder.embed(mel, features.to(self.device)).float().cpu()

    @torch.no_grad()
    def embed_audio(self, mix: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """Embed stereo mixtures, separating them with :attr:`separator` first.

        Shape:
            mix: ``(batch, 2, samples)`` -> ``(batch, embedding_dim)``.
        """
        mix = torch.as_tensor(mix, dtype=torch.float32)
        if mix.ndim != 3 or mix.shape[1] != CHANNELS:
            raise ValueError(f"mix must be (batch, {CHANNELS}, samples), got shape {tuple(mix.shape)}")
        separator = self.separator
        if sample_rate != separator.sample_rate:
            mix = torchaudio.functional.resample(mix, sample_rate, separator.sample_rate)
        stems = separator.separate(mix)
        return self.embed_stems(stems.cpu(), separator.sample_rate)

    def clip_offsets(self, duration_seconds: float, max_clips: int = 8) -> np.ndarray:
        """Start times (s) of up to ``max_clips`` evenly spaced, non-overlapping clips.

        A track shorter than one clip gets a single clip covering all of it.
        """
        clips = int(min(max_clips, max(1, duration_seconds // self.clip_seconds)))
        if clips == 1:
            return np.array([max(0.0, (duration_seconds - self.clip_seconds) / 2)])
        return np.linspace(0.0, duration_seconds - self.clip_seconds, clips)

    def _clip_plan(self, duration_seconds: float, max_clips: int, what: str) -> tuple[np.ndarray, float]:
        """Clip start times (s) and clip length (s) for a track, refusing tracks under 1 s."""
        if duration_seconds < MIN_CLIP_SECONDS:
            raise ValueError(f"{what} lasts {duration_seconds:.2f} s; at least {MIN_CLIP_SECONDS} s is needed")
        return self.clip_offsets(duration_seconds, max_clips), min(self.clip_seconds, duration_seconds)

    def embed_file_clips(self, path: str | Path, max_clips: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Embed several clips of one audio file (a mixture; separated with :attr:`separator`).

        Returns:
            ``(clips, embedding_dim)`` float32 L2-normalised embeddings and the clip start times
            in seconds ``(clips,)``.
        """
        offsets, seconds = self._clip_plan(audio_duration(path), max_clips, str(path))
        mixes = np.stack([read_segment(path, float(t), seconds, self.sample_rate) for t in offsets])
        return self.embed_audio(mixes, self.sample_rate).numpy(), offsets

    def embed_stems_clips(self, stem_paths: Sequence[str | Path], max_clips: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Embed several clips of a pre-separated track: one audio file per stem, STEMS order.

        Returns:
            ``(clips, embedding_dim)`` float32 L2-normalised embeddings and the clip start times
            in seconds ``(clips,)`` (no separation involved).
        """
        if len(stem_paths) != len(STEMS):
            raise ValueError(f"expected {len(STEMS)} stem files ({', '.join(STEMS)}), got {len(stem_paths)}")
        offsets, seconds = self._clip_plan(min(audio_duration(p) for p in stem_paths), max_clips,
                                           f"the stems {stem_paths[0]}...")
        stems = np.stack([np.stack([read_segment(p, float(t), seconds, self.sample_rate) for p in stem_paths])
                          for t in offsets])
        return self.embed_stems(stems, self.sample_rate).numpy(), offsets

    def embed_stem_folder(self, folder: str | Path, max_clips: int = 8) -> np.ndarray:
        """One embedding ``(embedding_dim,)`` for a folder of stems (``drums.wav``, ``bass.flac``...),
        aggregated over clips like :meth:`embed_file`, with no separation."""
        folder = Path(folder)
        paths = []
        for stem in STEMS:
            found = sorted(p for p in folder.glob(f"{stem}.*") if p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise DatasetError(f"{folder} has no {stem} stem; expected {', '.join(f'{s}.wav' for s in STEMS)} "
                                   f"(any audio extension)")
            paths.append(found[0])
        return aggregate_clips(self.embed_stems_clips(paths, max_clips)[0])

    def embed_file(self, path: str | Path, max_clips: int = 8) -> np.ndarray:
        """One embedding ``(embedding_dim,)`` for a whole file: the L2-normalised mean of the
        embeddings of up to ``max_clips`` evenly spaced clips (:meth:`embed_file_clips`)."""
        return aggregate_clips(self.embed_file_clips(path, max_clips)[0])
