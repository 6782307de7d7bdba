"""Demucs (Hybrid Transformer Demucs, Rouard et al. 2023) as a :class:`~mixrep.separation.base.Separator`.

Weights come from one of three places:

* a pretrained name (``htdemucs``, ``htdemucs_ft``, ...) loaded with ``demucs.pretrained.get_model``.
  When the legacy download of every model of the bag is already in torch hub's checkpoint folder,
  it is loaded from there directly, which avoids the HuggingFace hub's network retries offline;
* ``weights_path``: a ``.th`` package written by ``demucs.states`` (class, arguments and state,
  e.g. a downloaded ``955717e8-8726e21a.th``), a ``.safetensors`` file in demucs' HuggingFace
  export format, or a folder used as a demucs model repository (``<name>.yaml`` bags and
  ``<signature>.th`` files, like ``python -m demucs --repo``);
* ``model``: an already built ``HTDemucs``/``HDemucs``/``Demucs``/``BagOfModels``.

A ``.th`` package is a pickle, and unpickling runs code stored in the file. :func:`read_package`
first verifies the ``-<sha256 prefix>`` checksum a file name carries (``955717e8-8726e21a.th``, as
demucs releases and ``save_with_checksum`` name them), before anything is unpickled, then reads with
``torch.load(weights_only=True)`` allowing only demucs' model classes. A package holding other
objects (released packages keep their training arguments) is unpickled in full only when its name
carries a checksum that matched, with a warning; one without a checksum is refused. Weights files
come only from the caller (``weights_path=``, ``--weights``): a mixrep checkpoint may name a
pretrained model (:func:`is_pretrained_name`), never a file.

The model is loaded lazily, on the first :meth:`DemucsSeparator.separate`: :attr:`DemucsSeparator.name`
(the stem-cache key) is computed from the weights' identity without building the network, so a
warm stem cache is read without loading, or even having, the weights.

Shape:
    ``separate``: ``(batch, channels=2, samples)`` -> ``(batch, stems=4, channels=2, samples)``.
"""

from __future__ import annotations

import fractions
import logging
import os
import pickle
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import torch
import torchaudio.functional as AF
import yaml

from mixrep.audio.io import check_sample_rate
from mixrep.constants import CHANNELS, STEMS
from mixrep.errors import SeparationError, refused_global
from mixrep.files import digest, file_chunks

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = 0.25
DEMUCS_ROOT_URL = "https://dl.fbaipublicfiles.com/demucs/"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def remote_model_urls() -> dict[str, str]:
    """``signature -> url`` of every legacy download demucs lists (its ``remote/files.txt``).

    The list's format: ``# comment`` lines, ``root: <folder>/`` lines that set the folder of the
    files after them, and ``<signature>-<sha256 prefix>.th`` file names.
    """
    from demucs.pretrained import REMOTE_ROOT

    urls: dict[str, str] = {}
    root = ""
    for line in (REMOTE_ROOT / "files.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
        else:
            urls[line.split("-", 1)[0]] = DEMUCS_ROOT_URL + root + line
    return urls


def pretrained_names() -> frozenset[str]:
    """Every pretrained name demucs knows: its bags (``htdemucs``, ``mdx_extra``...) and single signatures."""
    from demucs.pretrained import REMOTE_ROOT

    return frozenset(p.stem for p in REMOTE_ROOT.glob("*.yaml")) | frozenset(remote_model_urls())


def is_pretrained_name(name: object) -> bool:
    """Whether ``name`` is one of :func:`pretrained_names` (the only separators a checkpoint may name)."""
    return isinstance(name, str) and name in pretrained_names()


def _remote_files(model_name: str) -> list[tuple[str, str]]:
    """``(url, file name)`` of every legacy download of a pretrained name; ``[]`` if unknown."""
    from demucs.pretrained import REMOTE_ROOT

    urls = remote_model_urls()
    bag = REMOTE_ROOT / f"{model_name}.yaml"
    signatures = yaml.safe_load(bag.read_text())["models"] if bag.is_file() else [model_name]
    if not all(sig in urls for sig in signatures):
        return []
    return [(urls[sig], urls[sig].rsplit("/", 1)[1]) for sig in signatures]


def name_checksum(path: Path) -> str | None:
    """The sha256 prefix a package's name carries (``<signature>-<hex>.th``), or ``None``."""
    if "-" not in path.stem:
        return None
    suffix = path.stem.rsplit("-", 1)[1].lower()
    return suffix if re.fullmatch(r"[0-9a-f]{8,64}", suffix) else None


def _safe_globals() -> list:
    """What a demucs package may hold besides tensors and plain containers: its model classes."""
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    return [Demucs, HDemucs, HTDemucs, fractions.Fraction]


def read_package(path: Path) -> dict:
    """Read a demucs ``.th`` package (``klass``, ``args``, ``kwargs``, ``state``) as safely as it allows.

    The checksum in the file name, if any, is verified before anything is unpickled. Then the file
    is read with ``weights_only=True``, allowing demucs' model classes only. A package that holds
    other objects is unpickled in full (which runs code stored in it) only when its name carries a
    checksum that matched, i.e. the caller vouched for these exact bytes, after a warning; without
    one it is refused, unread.

    Raises:
        SeparationError: the checksum does not match, the file needs a full unpickle and its name
            carries no checksum, or the file is not a readable package.
    """
    checksum = name_checksum(path)
    if checksum is not None:
        actual = digest(file_chunks([path]), digits=len(checksum))
        if actual != checksum:
            raise SeparationError(
                f"Invalid checksum for Demucs weights {path}: its name says sha256 {checksum}..., the file's is "
                f"{actual}...; the file is damaged or not what its name says. Nothing was loaded from it: "
                f"download it again from a trusted source.")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        beyond = refused_global(e)
        if checksum is None:
            raise SeparationError(
                f"Demucs weights {path} hold objects beyond demucs' model classes ({beyond}); "
                f"reading them means unpickling the file in full, which runs code stored in it, and its name "
                f"carries no checksum to verify first, so nothing was loaded. If you trust the file, name it "
                f"<name>-<first 8 hex digits of its sha256>{path.suffix} (`sha256sum {path}`) and pass it again."
            ) from e
        log.warning("Demucs weights %s hold objects beyond demucs' model classes (%s); unpickling the file in "
                    "full, which runs code stored in it: load weights only from trusted sources",
                    path, beyond)
        package = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= set(package):
        raise SeparationError(f"{path} is not a Demucs package (a dict with klass, args, kwargs and state, as "
                              f"demucs.states writes); pass a .th file written by demucs or a .safetensors export")
    return package


def torch_hub_checkpoints() -> Path:
    """Folder where ``torch.hub`` (and so demucs' legacy downloads) caches weight files."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _named_file_chunks(paths: list[Path]) -> Iterator[bytes | str]:
    """Each file's name then its bytes, in order: hashed, they identify a folder of weight files."""
    for path in paths:
        yield path.name
        yield from file_chunks([path])


def state_hash(model: torch.nn.Module) -> str:
    """sha256 of a model's state (names, dtypes, shapes, values) and, for bags, their weights."""
    return digest(_state_parts(model))


def _state_parts(model: torch.nn.Module) -> Iterator[bytes | str]:
    """What :func:`state_hash` hashes: each tensor's name, dtype, shape and bytes, then the bag weights."""
    for key, value in sorted(model.state_dict().items()):
        tensor = value.detach().to("cpu").contiguous()
        yield f"{key}:{tensor.dtype}:{tuple(tensor.shape)}"
        yield tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""  # 0-dim too
    yield repr(getattr(model, "weights", None))


def missing_weights_message(model_name: str, cause: BaseException | None = None) -> str:
    """How to get the pretrained weights of ``model_name`` on a machine without them."""
    files = _remote_files(model_name)
    checkpoints = torch_hub_checkpoints()
    lines = [f"cannot load the pretrained Demucs model {model_name!r}: its weights are not on this machine "
             f"and downloading them failed" + (f" ({type(cause).__name__}: {cause})" if cause else "") + "."]
    lines.append("Fix it one of these ways:")
    lines.append(f"  1. once, with network access: `python -m demucs -n {model_name} any_song.wav` "
                 f"(or `python -c \"from demucs.pretrained import get_model; get_model('{model_name}')\"`); "
                 f"the weights are then cached and work offline.")
    if files:
        urls = " ".join(url for url, _ in files)
        names = ", ".join(name for _, name in files)
        lines.append(f"  2. download {urls} on another machine and copy it to {checkpoints}/ "
                     f"(keep the file name {names})" +
                     (", or pass the file as weights_path= / --weights PATH." if len(files) == 1 else
                      ", or put the files and demucs/remote/" + model_name + ".yaml in one folder and pass "
                      "that folder as weights_path= / --weights PATH."))
    else:
        lines.append(f"  2. pass a local .th/.safetensors file or a demucs model folder as weights_path= / "
                     f"--weights PATH ({model_name!r} has no legacy download URL).")
    return "\n".join(lines)


class DemucsSeparator:
    """Pretrained Demucs separating mixtures into :data:`~mixrep.constants.STEMS`.

    Mixtures are normalised like ``demucs.api`` does (zero mean, unit std of the mono mix), resampled
    to the model rate, separated segment by segment with ``demucs.apply.apply_model`` (overlap-add with
    triangular windows) under ``torch.no_grad``, and resampled back. Model sources are matched
    by name; sources beyond drums/bass/vocals/other (``guitar``, ``piano`` of ``htdemucs_6s``) are
    summed into ``other`` so the four stems still add up to the mixture.

    Args:
        model_name: pretrained name (``htdemucs``, ``htdemucs_ft``, ``hdemucs_mmi``...), or a label
            for ``weights_path``/``model``.
        weights_path: local ``.th``/``.safetensors`` file or demucs model folder (see module docs).
        device: ``"cuda"``, ``"cpu"``, ...; ``None``/``"auto"`` picks CUDA when available.
        segment_seconds: chunk length for ``apply_model``; ``None`` uses the model's (7.8 s for
            HTDemucs, which cannot exceed it).
        shifts: random-shift averaging passes (0 = deterministic; each pass costs a full separation).
        overlap: overlap between consecutive chunks, in ``[0, 1)``.
        model: an already built demucs model (weights are then hashed for :attr:`name`).

    Attributes:
        name: ``demucs-<model_name>-<weights hash>`` plus non-default options; a stem-cache key.
        sample_rate: the model's rate in Hz (44100 for every released model), known before loading.
    """

    def __init__(
        self,
        model_name: str = "htdemucs",
        weights_path: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        segment_seconds: float | None = None,
        shifts: int = 0,
        overlap: float = DEFAULT_OVERLAP,
        model: torch.nn.Module | None = None,
    ) -> None:
        if shifts < 0:
            raise ValueError(f"shifts must be >= 0, got {shifts}")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if segment_seconds is not None and segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be > 0, got {segment_seconds}")
        self.model_name = model_name
        self.weights_path = Path(weights_path).expanduser() if weights_path is not None else None
        if self.weights_path is not None and not self.weights_path.exists():
            raise SeparationError(
                f"Demucs weights {self.weights_path} do not exist: pass a .th/.safetensors file or a folder of "
                f"demucs models, or leave weights_path unset to use the pretrained {model_name!r}."
            )
        self.device = resolve_device(device)
        self.segment_seconds = segment_seconds
        self.shifts = shifts
        self.overlap = overlap
        self._model = model
        self._lock = threading.Lock()
        self._ready = False
        self.name = self._make_name()
        self.sample_rate = self._declared_sample_rate()
        if model is not None:
            self._prepare(model)

    # ------------------------------------------------------------------ identity
    def _weights_id(self) -> str:
        if self._model is not None:
            return state_hash(self._model)[:12]
        if self.weights_path is not None:
            path = self.weights_path
            files = sorted(p for p in path.iterdir() if p.suffix in (".th", ".yaml", ".safetensors")) \
                if path.is_dir() else [path]
            return digest(_named_file_chunks(files), digits=12)
        files = _remote_files(self.model_name)
        # Released demucs files carry a sha256 prefix in their names: they identify the weights.
        return digest(" ".join(n for _, n in files), digits=12) if files else "pretrained"

    def _make_name(self) -> str:
        name = f"demucs-{self.model_name.replace('/', '_')}-{self._weights_id()}"
        if self.shifts:
            name += f"-shifts{self.shifts}"
        if self.overlap != DEFAULT_OVERLAP:
            name += f"-overlap{self.overlap:g}"
        if self.segment_seconds is not None:
            name += f"-segment{self.segment_seconds:g}"
        return name

    # ------------------------------------------------------------------ loading
    def _declared_sample_rate(self) -> int:
        """The model rate in Hz, known without building the network (checked again on loading).

        Every released Demucs is 44.1 kHz; a local package states its rate in its stored arguments.
        """
        if self._model is not None:
            return int(self._model.samplerate)
        path = self.weights_path
        try:
            if path is not None and path.suffix == ".th":
                return int(read_package(path)["kwargs"].get("samplerate", 44_100))
            if path is not None and path.suffix == ".safetensors":
                import json

                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as f:
                    return int(json.loads(f.metadata()["kwargs"]).get("samplerate", 44_100))
        except SeparationError:
            raise
        except Exception as e:
            raise SeparationError(f"cannot read Demucs weights {path}: {e}. Expected a demucs package "
                                  f"(.th written by demucs.states, or .safetensors).") from e
        return 44_100

    @property
    def model(self) -> torch.nn.Module:
        """The demucs model, loaded (thread-safely) on first use."""
        if not self._ready:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
                    log.info("loaded Demucs %s (%s) on %s", self.model_name, self.name, self.device)
                if not self._ready:
                    self._prepare(self._model)
        return self._model

    def __getstate__(self) -> dict:  # picklable for spawned DataLoader workers
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def load(self) -> DemucsSeparator:
        """Load the weights now (they are otherwise loaded by the first :meth:`separate`)."""
        _ = self.model
        return self

    def _load(self) -> torch.nn.Module:
        from demucs.pretrained import get_model

        if self.weights_path is not None:
            return self._load_local(self.weights_path)
        files = _remote_files(self.model_name)
        checkpoints = torch_hub_checkpoints()
        try:
            if files and all((checkpoints / name).is_file() for _, name in files):
                return self._load_cached_remote()
            return get_model(self.model_name)
        except SystemExit as e:  # demucs.utils.fatal, e.g. quantized models without diffq
            raise SeparationError(f"demucs refused to load {self.model_name!r} (see the message above)") from e
        except Exception as e:
            if "neither a single pre-trained model" in str(e):
                raise SeparationError(
                    f"{self.model_name!r} is not a pretrained Demucs model name (try htdemucs, htdemucs_ft, "
                    f"htdemucs_6s, hdemucs_mmi, mdx_extra) and no weights_path was given."
                ) from e
            raise SeparationError(missing_weights_message(self.model_name, e)) from e

    def _load_cached_remote(self) -> torch.nn.Module:
        """Load a pretrained name from torch hub's cache without trying the HuggingFace hub first."""
        from demucs.pretrained import REMOTE_ROOT
        from demucs.repo import AnyModelRepo, BagOnlyRepo, RemoteRepo

        model_repo = RemoteRepo(remote_model_urls())
        return AnyModelRepo(model_repo, BagOnlyRepo(REMOTE_ROOT, model_repo)).get_model(self.model_name)

    def _load_local(self, path: Path) -> torch.nn.Module:
        from demucs.pretrained import get_model
        from demucs.states import load_model

        try:
            if path.is_dir():
                return get_model(self.model_name, repo=path)
            if path.suffix == ".safetensors":
                from demucs.hf import load_safetensors_model

                return load_safetensors_model(path)
            return load_model(read_package(path))
        except SeparationError:
            raise
        except SystemExit as e:
            raise SeparationError(f"demucs refused to load {path} (see the message above)") from e
        except Exception as e:
            what = (f"a folder of demucs models holding {self.model_name}.yaml or {self.model_name}.th"
                    if path.is_dir() else "a demucs package (.th written by demucs.states, or .safetensors)")
            raise SeparationError(f"cannot load Demucs weights from {path}: {e}. Expected {what}.") from e

    def _prepare(self, model: torch.nn.Module) -> None:
        sources = list(model.sources)
        missing = [s for s in ("drums", "bass", "vocals") if s not in sources]
        if missing or int(model.audio_channels) != CHANNELS:
            raise SeparationError(
                f"Demucs model {self.model_name!r} has sources {sources} and {model.audio_channels} channels; "
                f"mixrep needs stereo models with at least drums, bass and vocals (others are summed into 'other')."
            )
        self._index = {stem: sources.index(stem) for stem in ("drums", "bass", "vocals")}
        self._other = [i for i, s in enumerate(sources) if s not in self._index]
        if self.segment_seconds is not None:
            from demucs.htdemucs import HTDemucs

            limit = float(model.segment) if isinstance(model, HTDemucs) else \
                float(getattr(model, "max_allowed_segment", float("inf")))
            if self.segment_seconds > limit:
                raise SeparationError(
                    f"segment_seconds={self.segment_seconds:g} exceeds the {limit:g} s this transformer model "
                    f"was trained on; use segment_seconds <= {limit:g} or leave it unset."
                )
        if int(model.samplerate) != self.sample_rate:
            raise SeparationError(f"Demucs model {self.model_name!r} runs at {model.samplerate} Hz, not the "
                                  f"{self.sample_rate} Hz its weights declared; pass it as model= instead")
        check_sample_rate(self.sample_rate, "Demucs model rate")
        model.eval()
        self._ready = True

    # ------------------------------------------------------------------ separation
    def separate(self, mix: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Separate a batch of stereo mixtures.

        Args:
            mix: mixtures at ``sample_rate``; any device (computation runs on :attr:`device`,
                the result is returned on ``mix.device``).
            sample_rate: rate of ``mix`` in Hz; ``None`` means :attr:`sample_rate`. Other rates are
                resampled to the model rate and the stems back (``torchaudio.functional.resample``).

        Shape:
            mix: ``(batch, channels=2, samples)``.
            returns: ``(batch, stems=4, channels=2, samples)`` float32 in STEMS order, same samples.
        """
        if mix.ndim != 3 or mix.shape[1] != CHANNELS:
            raise ValueError(f"expected mix of shape (batch, 2, samples), got {tuple(mix.shape)}")
        model = self.model
        in_rate = self.sample_rate if sample_rate is None else check_sample_rate(sample_rate)
        batch, _, length = mix.shape
        x = mix.float()
        if in_rate != self.sample_rate:
            x = AF.resample(x, in_rate, self.sample_rate)
        ref = x.mean(dim=1)  # mono mix, (batch, samples)
        mean = ref.mean(dim=-1)[:, None, None]
        std = ref.std(dim=-1)[:, None, None] + 1e-8
        from demucs.apply import apply_model

        with torch.no_grad():
            out = apply_model(model, (x - mean) / std, shifts=self.shifts, split=True, overlap=self.overlap,
                              segment=self.segment_seconds, device=self.device)
            out = out * std[:, None]
            stems = torch.stack([
                out[:, self._index["drums"]],
                out[:, self._index["bass"]],
                out[:, self._other].sum(dim=1) if self._other else torch.zeros_like(out[:, 0]),
                out[:, self._index["vocals"]],
            ], dim=1) + mean[:, None] / len(STEMS)  # the removed DC, shared so stems still sum to the mix
            if in_rate != self.sample_rate:
                stems = AF.resample(stems, self.sample_rate, in_rate)
            if stems.shape[-1] < length:
                stems = torch.nn.functional.pad(stems, (0, length - stems.shape[-1]))
            stems = stems[..., :length].contiguous()
        assert stems.shape == (batch, len(STEMS), CHANNELS, length), (stems.shape, (batch, 4, 2, length))
        return stems

    def __repr__(self) -> str:
        return f"DemucsSeparator(name={self.name!r}, device={str(self.device)!r})"
