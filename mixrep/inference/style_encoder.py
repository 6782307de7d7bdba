"""The Python API: load a trained style encoder and embed stems, mixes or files.

    >>> from mixrep.inference.style_encoder import StyleEncoder
    >>> encoder = StyleEncoder.from_checkpoint("outputs/demo/.../last.ckpt")
    >>> encoder.embed_stems(stems, sample_rate=44100)   # (batch, 4, 2, samples) -> (batch, dim)
    >>> encoder.embed_file("song.mp3")                  # (dim,) mean of several clips
    >>> print(encoder.describe_path("stems/").to_text()) # decoded settings (encoders with a decoder)

Embeddings are L2-normalised, so cosine similarity is a dot product. Loading needs neither
Lightning nor FAISS: the checkpoint describes itself (:mod:`mixrep.models.checkpoint`).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio

from mixrep.audio.io import audio_duration, audio_info, read_segment
from mixrep.audio.primitives import rms_db
from mixrep.constants import CHANNELS, MIN_EMBED_SECONDS, SILENCE_RMS_DB, STEMS
from mixrep.devices import resolve_device
from mixrep.errors import CheckpointError, refused_global
from mixrep.files import require_stem_files
from mixrep.frontend import FrontEnd, FrontEndConfig
from mixrep.inference.describe import Comparison, Description, compare_embeddings, describe_embeddings
from mixrep.models.checkpoint import read_encoder
from mixrep.models.encoder import MixStyleEncoder
from mixrep.separation.base import Separator

log = logging.getLogger(__name__)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint file safely (``weights_only``: no pickled code runs).

    Raises:
        CheckpointError: missing, unreadable or not a PyTorch file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with `bash scripts/train.sh`")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing checkpoint {path}: it holds pickled objects beyond tensors and plain values "
            f"({refused_global(e)}), which loading would run; nothing in it was run. mixrep checkpoints hold none: "
            f"use a checkpoint written by mixrep training") from e
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path} (corrupt or not a PyTorch file): {e}") from e


def aggregate_clips(clip_embeddings: np.ndarray) -> np.ndarray:
    """One track vector from its clips: the L2-normalised mean of the clip embeddings.

    The mean of unit vectors maximises the summed cosine to the clips; normalising it makes the
    inner product a cosine again.

    Raises:
        ValueError: no clips, or clips whose mean is zero or not finite.

    Shape:
        ``(clips, dim)`` -> ``(dim,)`` float32.
    """
    clip_embeddings = np.asarray(clip_embeddings, dtype=np.float32)
    if clip_embeddings.ndim != 2 or clip_embeddings.shape[0] == 0:
        raise ValueError(f"expected (clips>=1, dim) embeddings, got shape {clip_embeddings.shape}")
    mean = clip_embeddings.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if not np.isfinite(norm) or norm <= 1e-12:
        raise ValueError("the clip embeddings average to zero or are not finite: nothing to aggregate")
    return mean / norm


def recorded_separator(checkpoint: dict, where: str) -> str:
    """The Demucs model name a checkpoint's training data used (``htdemucs`` when it names none).

    A checkpoint is a file the user did not write, so it may name a pretrained separator but never
    choose a file to load: a weights file it records (``weights_path``, e.g. a ``.th`` pickle) is
    ignored with a warning naming it. Weights come only from the caller
    (``separator_weights=``, ``--weights``). A name that is not a pretrained one is returned as is:
    :attr:`StyleEncoder.separator` refuses it unless the caller passed weights it labels.
    """
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    if data.get("weights_path"):
        log.warning("%s records the Demucs weights file %r; a checkpoint never chooses a file to load, so it is "
                    "ignored: pass separator_weights= (--weights) to separate with it", where, data["weights_path"])
    name = data.get("separator", "htdemucs")
    return name if isinstance(name, str) else repr(name)


@dataclass(frozen=True)
class _Clips:
    """Audible clips of one input, read once: ``audio`` ``(clips, 4, 2, samples)`` of a stem folder
    (``are_stems``) or ``(clips, 1, 2, samples)`` of a mixture, at ``sample_rate``."""

    audio: np.ndarray
    sample_rate: int
    are_stems: bool


class StyleEncoder:
    """A trained mixing-style encoder with its front end.

    Return convention: every ``embed_*`` method returns NumPy ``float32`` arrays of L2-normalised
    embeddings (``(batch, dim)`` for batches and clips, ``(dim,)`` for a whole file or folder);
    clip offsets are ``float64`` seconds. Inputs may be NumPy arrays or torch tensors, on any
    device. These methods run without gradients; for a differentiable path (gradients with
    respect to stems, e.g. to fit a mix to a reference style) call the two modules directly:
    ``mel, features = encoder.frontend(stems)`` then ``encoder.model.embed(mel, features)``.

    Args:
        model: the encoder network.
        frontend: the front-end config it was trained with.
        model_hash: content hash of the weights (indexes record it).
        device: where to run; ``None``/``"auto"`` picks a GPU when present.
        separator: separates mixtures (default: the checkpoint's Demucs model, loaded on first use).
        separator_name, separator_weights: which Demucs to load when ``separator`` is ``None``: a
            pretrained name, or a label for a weights file or folder the caller chose
            (``separator_weights``; see :class:`~mixrep.separation.demucs.DemucsSeparator`).

    Attributes:
        embedding_dim: size of the embeddings.
        model_hash: content hash of the encoder weights (recorded by indexes built with it).
        sample_rate: rate in Hz the encoder was trained at; inputs at other rates are resampled.
        clip_seconds: clip length used in training (the length :meth:`embed_file` cuts).
        frontend: the :class:`~mixrep.frontend.FrontEnd` (on :attr:`device`).
        model: the :class:`~mixrep.models.encoder.MixStyleEncoder` (on :attr:`device`, eval mode).
    """

    def __init__(self, model: MixStyleEncoder, frontend: FrontEndConfig, model_hash: str,
                 device: torch.device | str | None = None, separator: Separator | None = None,
                 separator_name: str = "htdemucs", separator_weights: str | None = None) -> None:
        self.device = resolve_device(device)
        self.frontend = FrontEnd(frontend).to(self.device)
        if model.config.uses_features and model.config.num_features != self.frontend.num_features:
            raise CheckpointError(f"the encoder takes {model.config.num_features} mix features but its front end "
                                  f"computes {self.frontend.num_features} (features={list(frontend.features)}); "
                                  f"use the mixrep version that trained it")
        self.model = model.to(self.device).eval()
        self.sample_rate = frontend.sample_rate
        self.clip_seconds = frontend.clip_seconds
        self.model_hash = model_hash
        self.embedding_dim = model.config.embedding_dim
        self._separator = separator
        self.separator_name = separator_name
        self.separator_weights = separator_weights

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str | None = None,
                        separator: Separator | None = None,
                        separator_weights: str | Path | None = None) -> StyleEncoder:
        """Load a checkpoint written by training (Lightning ``.ckpt``); needs nothing else.

        No pickled code runs: the file is read with ``weights_only`` and it may name a pretrained
        separator but never a file to load (:func:`recorded_separator`).

        Args:
            separator_weights: local Demucs weights (``.th``/``.safetensors`` file or model folder)
                for mixtures, instead of the pretrained model the checkpoint names.

        Raises:
            CheckpointError: missing, corrupt, of another kind or encoder class, or weights or
                settings that do not match their recorded hashes.
        """
        return cls.from_loaded(load_checkpoint(path), path, device, separator, separator_weights)

    @classmethod
    def from_loaded(cls, checkpoint: dict, path: str | Path, device: torch.device | str | None = None,
                    separator: Separator | None = None,
                    separator_weights: str | Path | None = None) -> StyleEncoder:
        """Like :meth:`from_checkpoint`, from a dict :func:`load_checkpoint` already read from ``path``."""
        model, frontend, model_hash = read_encoder(checkpoint, str(path))
        try:
            config = FrontEndConfig.from_dict(frontend, where=str(path))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: unreadable front-end config {frontend!r}: {e}") from e
        return cls(model, config, model_hash, device=device, separator=separator,
                   separator_name=recorded_separator(checkpoint, str(path)),
                   separator_weights=None if separator_weights is None else str(separator_weights))

    @property
    def separator(self) -> Separator:
        """The separator used for mixtures (Demucs as configured in training, loaded on first use).

        Raises:
            CheckpointError: no weights were passed and :attr:`separator_name` is not a pretrained
                Demucs name (a checkpoint trained with local weights: pass ``separator_weights``).
        """
        if self._separator is None:
            from mixrep.separation.demucs import DemucsSeparator, is_pretrained_name

            if self.separator_weights is None and not is_pretrained_name(self.separator_name):
                raise CheckpointError(
                    f"the encoder was trained with the Demucs separator {self.separator_name!r}, which is not a "
                    f"pretrained Demucs name; pass its weights as separator_weights= (--weights PATH), or "
                    f"separate the mixtures yourself and embed the stems")

            self._separator = DemucsSeparator(self.separator_name, weights_path=self.separator_weights,
                                              device=str(self.device))
        return self._separator

    def _prepare_stems(self, stems: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        stems = torch.as_tensor(stems).to(device=self.device, dtype=torch.float32)
        if stems.ndim != 4 or stems.shape[1] != len(STEMS) or stems.shape[2] != CHANNELS:
            raise ValueError(f"stems must be (batch, {len(STEMS)} stems in order {', '.join(STEMS)}, "
                             f"{CHANNELS} channels, samples), got shape {tuple(stems.shape)}")
        if stems.shape[-1] < MIN_EMBED_SECONDS * sample_rate:
            raise ValueError(f"clips must last at least {MIN_EMBED_SECONDS} s: got {stems.shape[-1]} samples "
                             f"at {sample_rate} Hz ({stems.shape[-1] / sample_rate:.2f} s)")
        if not bool(torch.isfinite(stems).all()):
            raise ValueError("stems contain NaN or infinite samples")
        if sample_rate != self.sample_rate:
            stems = torchaudio.functional.resample(stems, sample_rate, self.sample_rate)
        return stems

    @torch.no_grad()
    def embed_stems(self, stems: torch.Tensor | np.ndarray, sample_rate: int) -> np.ndarray:
        """Embed separated stems.

        Shape:
            stems: ``(batch, 4, 2, samples)`` in the order drums, bass, other, vocals, any length
            of at least 1 s -> ``(batch, embedding_dim)`` float32, L2-normalised.
        """
        return self.model.embed(*self._model_inputs(stems, sample_rate)).float().cpu().numpy()

    @torch.no_grad()
    def decoder_inputs(self, stems: torch.Tensor | np.ndarray, sample_rate: int) -> np.ndarray:
        """What the settings decoders read of separated stems (:meth:`MixStyleEncoder.decoder_input
        <mixrep.models.encoder.MixStyleEncoder.decoder_input>`): the representation or the embedding.

        Shape:
            stems: ``(batch, 4, 2, samples)`` -> ``(batch, decoder input size)`` float32.
        """
        return self.model.decoder_input(*self._model_inputs(stems, sample_rate)).float().cpu().numpy()

    def _model_inputs(self, stems: torch.Tensor | np.ndarray, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        mel, features = self.frontend(self._prepare_stems(stems, sample_rate))
        if mel.shape[-1] < self.model.min_frames:
            raise ValueError(f"clip too short for the encoder ({mel.shape[-1]} frames < {self.model.min_frames})")
        return mel, features

    @torch.no_grad()
    def mix_features(self, stems: torch.Tensor | np.ndarray, sample_rate: int) -> np.ndarray:
        """The front end's mix features of separated stems (what the encoder's feature branch sees).

        Shape:
            stems: ``(batch, 4, 2, samples)`` -> ``(batch, num_features)`` float32, in physical units
            (names: ``encoder.frontend.feature_names``).
        """
        return self.frontend(self._prepare_stems(stems, sample_rate)).features.float().cpu().numpy()

    @torch.no_grad()
    def embed_audio(self, mix: torch.Tensor | np.ndarray, sample_rate: int) -> np.ndarray:
        """Embed stereo mixtures, separating them with :attr:`separator` first (at its own rate).

        Shape:
            mix: ``(batch, 2, samples)`` -> ``(batch, embedding_dim)`` float32.
        """
        mix = torch.as_tensor(mix).to(dtype=torch.float32)
        if mix.ndim != 3 or mix.shape[1] != CHANNELS:
            raise ValueError(f"mix must be (batch, {CHANNELS}, samples), got shape {tuple(mix.shape)}")
        separator = self.separator
        if sample_rate != separator.sample_rate:
            mix = torchaudio.functional.resample(mix, sample_rate, separator.sample_rate)
        return self.embed_stems(separator.separate(mix), separator.sample_rate)

    def clip_offsets(self, duration_seconds: float, max_clips: int = 8) -> np.ndarray:
        """Start times (s) of up to ``max_clips`` evenly spaced, non-overlapping clips, ``(clips,)`` float64.

        A track shorter than one clip gets a single clip covering all of it.

        Raises:
            ValueError: ``max_clips`` below 1.
        """
        if max_clips < 1:
            raise ValueError(f"max_clips must be at least 1, got {max_clips}")
        clips = int(min(max_clips, max(1, duration_seconds // self.clip_seconds)))
        if clips == 1:
            return np.array([max(0.0, (duration_seconds - self.clip_seconds) / 2)])
        return np.linspace(0.0, duration_seconds - self.clip_seconds, clips)

    def _clip_plan(self, duration_seconds: float, max_clips: int, what: str) -> tuple[np.ndarray, float]:
        """Clip start times (s) and clip length (s) for a track, refusing tracks under 1 s."""
        if duration_seconds < MIN_EMBED_SECONDS:
            raise ValueError(f"{what} lasts {duration_seconds:.2f} s; at least {MIN_EMBED_SECONDS} s is needed")
        return self.clip_offsets(duration_seconds, max_clips), min(self.clip_seconds, duration_seconds)

    def _stem_file_clips(self, stem_paths: Sequence[str | Path], max_clips: int) -> tuple[np.ndarray, np.ndarray]:
        """Stems ``(clips, 4, 2, samples)`` at the encoder's rate of evenly spaced clips of one file
        per stem (STEMS order), and the clip start times in seconds ``(clips,)``."""
        if len(stem_paths) != len(STEMS):
            raise ValueError(f"expected {len(STEMS)} stem files ({', '.join(STEMS)}), got {len(stem_paths)}")
        offsets, seconds = self._clip_plan(min(audio_duration(p) for p in stem_paths), max_clips,
                                           f"the stems {stem_paths[0]}...")
        stems = np.stack([np.stack([read_segment(p, float(t), seconds, self.sample_rate) for p in stem_paths])
                          for t in offsets])
        return stems, offsets

    @torch.no_grad()
    def _separated_clips(self, path: str | Path, max_clips: int) -> tuple[torch.Tensor, np.ndarray]:
        """Stems ``(clips, 4, 2, samples)`` at the separator's rate of evenly spaced clips of a mixture
        (decoded at that rate, so the separator never sees band-limited audio), and the start times."""
        offsets, seconds = self._clip_plan(audio_duration(path), max_clips, str(path))
        separator = self.separator
        mixes = np.stack([read_segment(path, float(t), seconds, separator.sample_rate) for t in offsets])
        return separator.separate(torch.from_numpy(mixes)), offsets

    def embed_file_clips(self, path: str | Path, max_clips: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Embed several clips of one audio file (a mixture; separated with :attr:`separator`).

        The clips are decoded at the separator's rate (44.1 kHz for Demucs), separated, and the
        stems resampled to the encoder's rate, so the separator never sees band-limited audio.

        Returns:
            ``(clips, embedding_dim)`` float32 L2-normalised embeddings and the clip start times
            in seconds ``(clips,)``.
        """
        stems, offsets = self._separated_clips(path, max_clips)
        return self.embed_stems(stems, self.separator.sample_rate), offsets

    def embed_stems_clips(self, stem_paths: Sequence[str | Path], max_clips: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Embed several clips of a pre-separated track: one audio file per stem, STEMS order.

        Returns:
            ``(clips, embedding_dim)`` float32 L2-normalised embeddings and the clip start times
            in seconds ``(clips,)`` (no separation involved).
        """
        stems, offsets = self._stem_file_clips(stem_paths, max_clips)
        return self.embed_stems(stems, self.sample_rate), offsets

    def embed_stem_folder(self, folder: str | Path, max_clips: int = 8) -> np.ndarray:
        """One embedding ``(embedding_dim,)`` for a folder of stems (``drums.wav``, ``bass.flac``...,
        chosen by :func:`mixrep.files.require_stem_files`), aggregated over clips like
        :meth:`embed_file`, with no separation.

        Raises:
            DatasetError: not a folder, or a stem is missing.
        """
        return aggregate_clips(self.embed_stems_clips(require_stem_files(folder), max_clips)[0])

    @property
    def decodes_settings(self) -> bool:
        """Whether the encoder has settings decoders (:meth:`describe`, :meth:`compare_paths`)."""
        return self.model.decodes_settings

    def require_decoder(self) -> None:
        if not self.decodes_settings:
            raise CheckpointError("this checkpoint's encoder was trained for retrieval only and has no settings "
                                  "decoder, so it cannot describe a mix (it still embeds and searches): pass "
                                  "--checkpoint with an encoder trained with --model.settings_weight > 0")

    def describe(self, stems: torch.Tensor | np.ndarray, sample_rate: int) -> Description:
        """The decoded settings of one mix's stems, in engineer's units (see :mod:`mixrep.inference.describe`).

        Shape:
            stems: ``(stems=4, channels=2, samples)`` or several clips of one mix ``(clips, 4, 2, samples)``.

        Raises:
            CheckpointError: the encoder has no settings decoder.
            ValueError: silent stems, clips under 1 s, or a wrong shape.
        """
        self.require_decoder()
        stems = torch.as_tensor(stems)
        stems = stems[None] if stems.ndim == 3 else stems
        if stems.ndim == 4 and not bool((stems.abs() > 0).any()):
            raise ValueError("the stems are silent (every sample is 0): a silent mix has no settings to read")
        return describe_embeddings(self.model, self.decoder_inputs(stems, sample_rate))

    def _checked_clips(self, path: str | Path, max_clips: int) -> _Clips:
        """The clips of an audio file (a mixture) or a stem folder that can be described, read once:
        the clips :meth:`embed_file_clips` / :meth:`embed_stems_clips` cut, checked (headers, then
        silence per clip; no separation, no encoder), with the mask of the audible ones.

        Raises:
            ValueError: a mono file, a file shorter than one clip, or silence in every clip.
            DatasetError: a folder without the four stems.
            AudioReadError: an unreadable file.
        """
        path = Path(path)
        files = require_stem_files(path) if path.is_dir() else (path,)
        for file in files:
            duration_seconds, _, channels = audio_info(file)
            if channels == 1:
                raise ValueError(f"{file} is mono: pan and width cannot be read from one channel; describe the "
                                 f"stereo mix (or stereo stems)")
            if duration_seconds < self.clip_seconds:
                raise ValueError(f"{file} lasts {duration_seconds:.2f} s, shorter than the encoder's "
                                 f"{self.clip_seconds:g} s clip: describe a longer excerpt")
        # Stems are read at the encoder's rate, a mixture at the separator's (it is separated next).
        rate = self.sample_rate if path.is_dir() else self.separator.sample_rate
        offsets, seconds = self._clip_plan(min(audio_duration(f) for f in files), max_clips, str(path))
        audio = np.stack([np.stack([read_segment(f, float(t), seconds, rate) for f in files]) for t in offsets])
        audible = np.asarray([rms_db(clip) > SILENCE_RMS_DB for clip in audio])
        if not audible.any():
            raise ValueError(f"{path} is silent (below {SILENCE_RMS_DB:g} dBFS RMS in every clip): there is no mix "
                             f"to describe")
        return _Clips(audio[audible], rate, are_stems=path.is_dir())

    @torch.no_grad()
    def _clips_decoder_inputs(self, clips: _Clips) -> np.ndarray:
        """What the decoders read ``(clips, size)`` of checked clips (a mixture's separated first)."""
        audio = torch.from_numpy(clips.audio)
        stems = audio if clips.are_stems else self.separator.separate(audio[:, 0])
        return self.decoder_inputs(stems, clips.sample_rate)

    def describe_path(self, path: str | Path, max_clips: int = 8) -> Description:
        """:meth:`describe` of an audio file (a mixture, separated first) or a folder of the four stems,
        from up to ``max_clips`` clips (silent clips left out).

        Raises:
            CheckpointError: the encoder has no settings decoder (checked before any audio is read).
            ValueError: a mono file, a file shorter than one clip, or silence.
            DatasetError: a folder without the four stems.
            AudioReadError: an unreadable file.
        """
        self.require_decoder()
        return describe_embeddings(self.model, self._clips_decoder_inputs(self._checked_clips(path, max_clips)))

    def compare_paths(self, path_a: str | Path, path_b: str | Path, max_clips: int = 8) -> Comparison:
        """What the relative decoder says turns mix ``path_a`` into mix ``path_b`` (files or stem folders).

        Both inputs are checked before either is embedded (separation of a mixture takes long).

        Raises:
            the errors of :meth:`describe_path`.
        """
        self.require_decoder()
        clips_a, clips_b = self._checked_clips(path_a, max_clips), self._checked_clips(path_b, max_clips)
        return compare_embeddings(self.model, self._clips_decoder_inputs(clips_a), self._clips_decoder_inputs(clips_b))

    def embed_file(self, path: str | Path, max_clips: int = 8) -> np.ndarray:
        """One embedding ``(embedding_dim,)`` for a whole file: the L2-normalised mean of the
        embeddings of up to ``max_clips`` evenly spaced clips (:meth:`embed_file_clips`)."""
        return aggregate_clips(self.embed_file_clips(path, max_clips)[0])
