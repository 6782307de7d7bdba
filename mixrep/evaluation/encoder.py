"""Cross-domain evaluation: score a trained encoder per domain against baselines on the same items.

A *domain* is a source of songs the style-retrieval set is built from (:mod:`mixrep.retrieval.style_set`):

- ``synth``: the numpy synthetic corpus, songs of :data:`EVAL_SEED` (no training run uses them);
- ``soundfont:NAME`` (or ``soundfont:PATH``): the same song generator's songs of :data:`EVAL_SEED`
  rendered with a General-MIDI soundfont (once, cached under ``corpus_dir``). By default the
  soundfont is one the checkpoint was **not** trained on (:func:`held_out_soundfont`);
- ``train``: the checkpoint's own training source, its ``val`` split (what training validates on);
- ``KIND:PATH`` or a bare ``PATH``: a dataset folder (``slakh``, ``medleydb``, ``moisesdb``,
  ``tracks``, ``stems``, ``soundfont``; the kind is detected from the layout when not given).

Styles come from a style space (:mod:`mixrep.styles.spaces`): by default the ``mix_style`` space
with its default ranges (the same distribution for every checkpoint), or ``chains``, the
checkpoint's own per-stem chains.

Scored on exactly the same items of each domain:

- ``trained``: the checkpoint;
- ``untrained``: the same architecture with freshly initialised weights (seeded);
- ``mix_features``, ``stem_features``, ``stem_descriptor``, ``mfcc``: handcrafted features
  (:mod:`mixrep.retrieval.baselines`); ``stem_descriptor`` (:mod:`mixrep.retrieval.descriptor`) is
  the strong one, so "trained - best baseline" says whether the embedding beats a plain z-scored
  handcrafted description of the stems.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mixrep.audio.fluidsynth import installed_soundfonts
from mixrep.corpora.rendered import detect_layout, find_soundfont, render_soundfont_corpus, soundfont_label
from mixrep.errors import CheckpointError, DatasetError
from mixrep.inference.style_encoder import StyleEncoder, load_checkpoint, recorded_separator
from mixrep.models.encoder import MixStyleEncoder
from mixrep.retrieval.baselines import feature_baselines
from mixrep.retrieval.metrics import StyleRetrievalScores, style_retrieval_scores
from mixrep.retrieval.style_set import StyleSet, build_style_set, embed_style_set
from mixrep.separation.demucs import is_pretrained_name
from mixrep.styles.chains import AugmentConfig
from mixrep.styles.spaces import STYLE_SPACES, StyleSpace, make_style_space
from mixrep.tracks import Source
from mixrep.training.datamodule import build_source

log = logging.getLogger(__name__)

EVAL_SEED = 7919
"""Song seed of the generated evaluation domains (training corpora use seeds ``seed + 1000 k``)."""
EVAL_SONG_SECONDS = 12.0
HELD_OUT_PREFERENCE = ("MuseScore_General", "TimGM6mb", "FluidR3_GM")
"""Which installed soundfont to hold out, first the one most unlike the others that is not trained on."""
BASELINES = ("untrained", "mix_features", "stem_features", "stem_descriptor", "mfcc")


@dataclass
class DomainScores:
    """One domain's scores: ``{model name: scores}`` and the size of its set."""

    domain: str
    description: str
    songs: int
    styles: int
    scores: dict[str, StyleRetrievalScores] = field(default_factory=dict)

    @property
    def best_baseline(self) -> str:
        """The baseline with the highest mAP on this domain."""
        return max((b for b in BASELINES if b in self.scores), key=lambda b: self.scores[b].map)

    def as_dict(self) -> dict:
        return {"domain": self.domain, "description": self.description, "songs": self.songs, "styles": self.styles,
                "best_baseline": self.best_baseline, "scores": {k: s.as_dict() for k, s in self.scores.items()}}


def _data_hparams(checkpoint: dict) -> dict:
    return dict(checkpoint.get("datamodule_hyper_parameters", {}))


def training_source(checkpoint: dict, sample_rate: int) -> Source:
    """Re-open the data source a loaded checkpoint was trained on (at ``sample_rate``).

    The separator is the pretrained Demucs model the checkpoint names
    (:func:`~mixrep.inference.style_encoder.recorded_separator`): a weights file it records is never loaded.

    Raises:
        CheckpointError: the checkpoint names a separator that is not a pretrained Demucs name.
    """
    data = _data_hparams(checkpoint)
    keys = ("synth_songs", "synth_song_seconds", "soundfonts", "soundfont_songs", "soundfont_song_seconds",
            "corpus_dir", "fma_subset", "cache_dir")
    options = {k: data[k] for k in keys if k in data}
    if "separator" in data:
        options["separator"] = recorded_separator(checkpoint, "the checkpoint")
        if not is_pretrained_name(options["separator"]):  # e.g. hf://someone/model: a download it would choose
            raise CheckpointError(f"the checkpoint's training data was separated with {options['separator']!r}, "
                                  f"which is not a pretrained Demucs name; a checkpoint never chooses a separator "
                                  f"file or download, so its training domain cannot be re-opened: evaluate other "
                                  f"domains (--domain SPEC)")
    if "seed" in data:
        options["synth_seed"] = data["seed"]
    return build_source(data.get("source", "synth"), data.get("root"), sample_rate=sample_rate, **options)


def trained_soundfonts(checkpoint: dict) -> list[Path]:
    """The soundfont files the checkpoint's training corpora were rendered with (resolved)."""
    data = _data_hparams(checkpoint)
    kinds = [data.get("source", "synth")] if isinstance(data.get("source", "synth"), str) else list(data["source"])
    if "soundfont" not in kinds or data.get("root"):
        return []
    names = data.get("soundfonts") or []
    if not names:
        from mixrep.audio.fluidsynth import default_soundfont

        default = default_soundfont()
        return [] if default is None else [default.resolve()]
    found = []
    for name in names:
        try:
            path = find_soundfont(name)
        except DatasetError:
            continue  # a path of the training machine that is not here
        if path is not None:
            found.append(path.resolve())
    return found


def held_out_soundfont(checkpoint: dict) -> Path | None:
    """An installed soundfont the checkpoint was not trained on (see :data:`HELD_OUT_PREFERENCE`)."""
    used = set(trained_soundfonts(checkpoint))
    candidates = [p for p in installed_soundfonts() if p.resolve() not in used]
    for name in HELD_OUT_PREFERENCE:
        for path in candidates:
            if path.name.lower().startswith(name.lower()):
                return path
    return candidates[0] if candidates else None


def default_domains(checkpoint: dict) -> list[str]:
    """``synth`` and ``soundfont:<held-out soundfont>`` (when one is installed)."""
    held_out = held_out_soundfont(checkpoint)
    if held_out is None:
        log.warning("no installed soundfont is held out from this checkpoint's training: the cross-domain table "
                    "has no sampled-instrument row (install more with scripts/install_system_deps.sh)")
        return ["synth"]
    return ["synth", f"soundfont:{held_out}"]


def open_domain(spec: str, checkpoint: dict, sample_rate: int, *, songs: int = 16, split: str | None = None,
                min_seconds: float = 1.0, corpus_dir: str | Path = "outputs/corpora") -> tuple[Source, str, str | None]:
    """The source of a domain spec (see the module docstring), its description and the split to
    take its songs from (``split`` for dataset folders, ``val`` for ``train``, else every song).
    Songs of dataset folders shorter than ``min_seconds`` (one clip) are skipped.

    Raises:
        DatasetError: an unknown kind, a missing folder, a soundfont that cannot be rendered here.
    """
    if spec == "synth":
        from mixrep.datasets.registry import open_source

        source = open_source("synth", sample_rate=sample_rate, num_songs=songs, song_seconds=EVAL_SONG_SECONDS,
                             seed=EVAL_SEED, cache_songs=songs)
        return source, f"synth (numpy, seed {EVAL_SEED})", None
    if spec == "train":
        return training_source(checkpoint, sample_rate), "training corpora (val split)", "val"
    kind, sep, rest = spec.partition(":")
    if kind == "soundfont" and sep and not Path(rest).is_dir():
        path = find_soundfont(rest)
        if path is None:
            raise DatasetError(f"domain {spec!r}: no installed soundfont is named {rest!r} (installed: "
                               f"{', '.join(p.name for p in installed_soundfonts()) or 'none'})")
        source = render_soundfont_corpus(path, corpus_dir=corpus_dir, seed=EVAL_SEED, songs=songs,
                                         song_seconds=EVAL_SONG_SECONDS, sample_rate=sample_rate, progress=False)
        if source is None:
            raise DatasetError(f"domain {spec!r}: FluidSynth cannot render {path} here")
        held_out = path.resolve() not in set(trained_soundfonts(checkpoint))
        return source, f"{soundfont_label(path)} ({'held out' if held_out else 'TRAINED ON'}, seed {EVAL_SEED})", None
    if not sep:
        kind, rest = detect_layout(spec), spec
    try:
        source = build_source(kind, rest, sample_rate=sample_rate, min_seconds=min_seconds)
    except ValueError as e:
        raise DatasetError(f"domain {spec!r}: {e}") from e
    return source, f"{kind} dataset {rest}", split


def score_encoders(encoder: StyleEncoder, style_set: StyleSet, seed: int = 0) -> dict[str, StyleRetrievalScores]:
    """Scores of the trained encoder and every baseline (:data:`BASELINES`) on ``style_set``."""
    torch.manual_seed(seed)
    untrained = MixStyleEncoder(encoder.model.config).to(encoder.device)
    song_ids, style_ids = style_set.song_ids, style_set.style_ids
    embeddings = {"trained": embed_style_set(encoder.model, style_set), "untrained": embed_style_set(untrained, style_set)}
    embeddings.update(feature_baselines(style_set.features.numpy(), style_set.feature_names, style_set.mfcc,
                                        style_set.descriptor))
    return {name: style_retrieval_scores(e, song_ids, style_ids) for name, e in embeddings.items()}


def evaluation_styles(kind: str, checkpoint: dict) -> StyleSpace:
    """``mix_style`` (default ranges, the same for every checkpoint) or ``chains`` (the checkpoint's)."""
    if kind not in STYLE_SPACES:
        raise ValueError(f"unknown style space {kind!r}; choose one of {', '.join(STYLE_SPACES)}")
    augment = AugmentConfig.from_dict(_data_hparams(checkpoint).get("augment") or {})
    return make_style_space(kind, augment=augment)


def evaluate_checkpoint(path: str | Path, *, domains: list[str] | None = None, num_songs: int = 16,
                        num_styles: int = 8, styles: str = "mix_style", seed: int = 1234, device: str | None = None,
                        split: str | None = None, corpus_dir: str | Path = "outputs/corpora") -> list[DomainScores]:
    """Score the checkpoint and the baselines on every domain (default :func:`default_domains`).

    Args:
        domains: domain specs (see the module docstring).
        num_songs, num_styles: the size of each domain's set (songs x styles items).
        styles: ``mix_style`` or ``chains`` (see :func:`evaluation_styles`).
        seed: seed of the clip offsets and styles (the same items for every checkpoint).
        split: the split of dataset domains (default every song; ``train`` always uses ``val``).
    """
    checkpoint = load_checkpoint(path)  # read once: it also holds the optimizer state
    encoder = StyleEncoder.from_loaded(checkpoint, path, device=device)
    style_space = evaluation_styles(styles, checkpoint)
    results = []
    for spec in domains or default_domains(checkpoint):
        source, description, domain_split = open_domain(spec, checkpoint, encoder.sample_rate, songs=num_songs,
                                                        split=split, min_seconds=encoder.clip_seconds,
                                                        corpus_dir=corpus_dir)
        style_set = build_style_set(source, encoder.frontend, split=domain_split, num_songs=num_songs,
                                    num_styles=num_styles, styles=style_space, seed=seed)
        results.append(DomainScores(spec, description, style_set.num_songs, style_set.num_styles,
                                    score_encoders(encoder, style_set)))
    return results


def format_domain_scores(results: list[DomainScores]) -> str:
    """One plain-text table: a block of rows per domain, the best baseline named under each."""
    width = max([36, *(len(r.description) for r in results)])
    header = f"{'domain':{width}s} {'songs x styles':>14s}  {'model':15s} {'mAP':>6s} {'R@1':>6s} {'style>song':>10s}"
    lines = [header, "-" * len(header)]
    for result in results:
        size = f"{result.songs} x {result.styles}"
        for i, (name, s) in enumerate(result.scores.items()):
            first = i == 0
            lines.append(f"{(result.description if first else ''):{width}s} {(size if first else ''):>14s}  "
                         f"{name:15s} {s.map:6.3f} {s.recall_at_1:6.3f} {s.style_over_song:10.3f}")
        best = result.best_baseline
        margin = result.scores["trained"].map - result.scores[best].map
        lines.append(f"{'':{width}s} {'':>14s}  trained - best baseline ({best}): {margin:+.3f} mAP")
    return "\n".join(lines)


def domain_table_dict(results: list[DomainScores]) -> list[dict]:
    """JSON-ready form of :func:`evaluate_checkpoint`'s results."""
    return [r.as_dict() for r in results]


__all__ = ["BASELINES", "EVAL_SEED", "DomainScores", "default_domains", "evaluate_checkpoint", "format_domain_scores",
           "held_out_soundfont", "open_domain", "score_encoders", "trained_soundfonts", "training_source"]
