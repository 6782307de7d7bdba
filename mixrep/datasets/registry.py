"""Every dataset reader and corpus by name: :func:`open_source` (any :class:`~mixrep.tracks.Source`)
and :func:`open_multitrack_source` (the multitrack ones).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mixrep.constants import SAMPLE_RATE
from mixrep.corpora.soundfont import SoundfontCorpusConfig, SoundfontSource, open_soundfont_corpus
from mixrep.corpora.synthetic import SynthConfig, SyntheticSource
from mixrep.datasets.multitrack_sources import MedleyDBSource, MoisesDBSource, SlakhSource
from mixrep.datasets.song_folder import TrackFolderSource
from mixrep.datasets.sources import AudioFolderSource, FMASource, StemsFolderSource
from mixrep.errors import DatasetError
from mixrep.separation.base import TrackStems
from mixrep.tracks import Source

SOURCE_KINDS: tuple[str, ...] = ("synth", "fma", "folder", "stems", "slakh", "medleydb", "moisesdb", "tracks", "soundfont")


def open_source(
    kind: str,
    root: str | Path | None = None,
    *,
    sample_rate: int = SAMPLE_RATE,
    stems: TrackStems | None = None,
    **options,
) -> Source:
    """Build a source by name.

    Args:
        kind: ``synth`` (the embedded corpus; ``options`` are :class:`~mixrep.corpora.synthetic.SynthConfig`
            fields plus ``val_fraction``/``test_fraction``/``cache_songs``), ``fma``, ``folder``,
            ``stems``, or a multitrack kind: ``slakh``, ``medleydb``, ``moisesdb``, ``tracks``,
            ``soundfont`` (see :func:`open_multitrack_source`).
        root: data folder (not used by ``synth``).
        sample_rate: rate in Hz of the stems the source returns.
        stems: stems reader for sources of mixtures (``fma``, ``folder``).
        **options: passed to the source's constructor.

    Raises:
        DatasetError: bad root or layout (see the source classes).
        ValueError: unknown kind or option.
    """
    if kind == "synth":
        if root is not None:
            raise DatasetError(
                f"the synth source is generated in memory and takes no root (got {root}); "
                "to read a corpus written with write_corpus use kind='stems'"
            )
        fields = {f for f in SynthConfig.__dataclass_fields__}
        config_options = {k: options.pop(k) for k in list(options) if k in fields}
        try:
            config = SynthConfig(sample_rate=sample_rate, **config_options)
        except ValueError as e:
            raise DatasetError(f"cannot build the synthetic corpus: {e}") from e
        return SyntheticSource(config, **options)
    if kind in ("fma", "folder"):
        cls = FMASource if kind == "fma" else AudioFolderSource
        return cls(root, stems=stems, sample_rate=sample_rate, **options)
    if kind == "stems":
        return StemsFolderSource(root, sample_rate=sample_rate, **options)
    if kind in SOURCE_KINDS:  # the multitrack layouts and the soundfont corpus
        return open_multitrack_source(kind, root, sample_rate=sample_rate, **options)
    raise ValueError(f"unknown source kind {kind!r}; use one of {SOURCE_KINDS}")


MULTITRACK_KINDS: tuple[str, ...] = ("slakh", "medleydb", "moisesdb", "tracks", "soundfont")
"""Source kinds of :func:`open_source` that are multitracks."""


def open_multitrack_source(kind: str, root: str | Path | None, sample_rate: int = SAMPLE_RATE, **options):
    """Build a multitrack source by kind (``open_source`` delegates here).

    ``soundfont``: an existing rendered corpus at ``root`` is opened as it is; given a
    ``soundfont=``, ``midi_dir=`` or :class:`~mixrep.corpora.soundfont.SoundfontCorpusConfig` fields (or
    no corpus at ``root`` yet), what is missing is rendered first, with the synthetic corpus as
    the fallback where no soundfont is available (see :func:`~mixrep.corpora.soundfont.open_soundfont_corpus`).
    """
    classes = {"slakh": SlakhSource, "medleydb": MedleyDBSource, "moisesdb": MoisesDBSource, "tracks": TrackFolderSource}
    if kind in classes:
        return classes[kind](root, sample_rate=sample_rate, **options)
    if kind != "soundfont":
        raise ValueError(f"unknown multitrack source kind {kind!r}; use one of {MULTITRACK_KINDS}")
    fields = {f.name for f in dataclasses.fields(SoundfontCorpusConfig)}
    config_options = {k: options.pop(k) for k in list(options) if k in fields}
    soundfont, midi_dir = options.pop("soundfont", None), options.pop("midi_dir", None)
    rendered = root is not None and any(Path(root).glob("*/song.json"))
    if rendered and not config_options and soundfont is None and midi_dir is None:
        return SoundfontSource(root, sample_rate=sample_rate, **options)
    try:
        config = SoundfontCorpusConfig(sample_rate=sample_rate, **config_options)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"cannot build the soundfont corpus: {e}") from e
    return open_soundfont_corpus(root, config, soundfont, midi_dir, sample_rate=sample_rate, **options)
