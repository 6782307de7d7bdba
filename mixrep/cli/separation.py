"""``mixrep separate``: separate a whole dataset into the stem cache ahead of training.

The run is resumable: tracks already in the cache are skipped, so a killed run continues where it
stopped (an entry is either complete or absent, see :mod:`mixrep.separation.cache`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mixrep.constants import SAMPLE_RATE
from mixrep.errors import AudioReadError, SeparationError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "separate", help="pre-separate a dataset of mixtures into the stem cache (resumable)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--source", choices=("fma", "folder"), required=True, help="kind of dataset")
    parser.add_argument("--root", type=Path, required=True, help="dataset root folder")
    parser.add_argument("--cache", type=Path, default=None,
                        help="stem cache folder (default <root>/.mixrep_stems, as the data module uses)")
    parser.add_argument("--subset", default="small", help="FMA subset: small, medium, large, full (fma only)")
    parser.add_argument("--model", default="htdemucs", help="pretrained Demucs name (default htdemucs)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="local Demucs weights: .th/.safetensors file or a folder of demucs models. A .th "
                             "package is a pickle, which can run code when loaded: use only files from trusted "
                             "sources. The checksum in a <signature>-<sha256 prefix>.th name is verified before "
                             "anything is unpickled, and the file is read with weights_only; a package that needs "
                             "a full unpickle is refused unless its name carries a checksum that matched")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1...")
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE, help="rate of the cached stems in Hz")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="separate only the first this-many seconds of each track")
    parser.add_argument("--limit", type=int, default=None, help="only the first N tracks (for a trial run)")
    parser.set_defaults(func=run_separate)


def run_separate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mixrep.datasets.registry import open_source
    from mixrep.separation.cache import StemCache
    from mixrep.separation.cached import CachedSeparation
    from mixrep.separation.demucs import DemucsSeparator
    from mixrep.tracks import SkipLog

    options = {"subset": args.subset} if args.source == "fma" else {}
    source = open_source(args.source, args.root, sample_rate=args.sample_rate, **options)
    tracks = source.tracks()
    if args.limit is not None:
        tracks = tracks[: args.limit]
    cache = StemCache(args.cache if args.cache is not None else args.root / ".mixrep_stems")
    separator = DemucsSeparator(args.model, weights_path=args.weights, device=args.device)
    stems = CachedSeparation(separator, cache, sample_rate=args.sample_rate, max_separate_seconds=args.max_seconds)
    failed = SkipLog()
    separated = cached = 0
    separated_seconds = 0.0
    started = time.perf_counter()
    bar = tqdm(tracks, unit="track", desc=f"separating with {separator.name}", dynamic_ncols=True)
    for track in bar:
        try:
            if stems.ensure(track):
                separated += 1
                separated_seconds += track.duration_seconds
            else:
                cached += 1
        except AudioReadError as e:
            failed.skip(track.audio_path or track.track_id, "corrupt", str(e))
        except SeparationError as e:
            if separator._model is None:  # the model itself could not be loaded: stop here
                raise
            failed.skip(track.audio_path or track.track_id, "separation", str(e))
        bar.set_postfix(new=separated, cached=cached, skipped=len(failed), refresh=False)
    bar.close()
    elapsed = time.perf_counter() - started
    skipped = len(source.skipped) + len(failed)
    print(f"{separated} tracks separated ({separated_seconds / 60:.1f} min of audio in {elapsed:.1f} s), "
          f"{cached} already cached, {skipped} skipped")
    if len(source.skipped):
        print(f"  while listing: {source.skipped.summary()}")
    if len(failed):
        print(f"  while separating: {failed.summary()}")
    print(f"cache: {cache.root} ({len(cache)} entries, {cache.size_bytes() / 1e9:.2f} GB)")
    if tracks and separated + cached == 0:
        raise SeparationError(f"none of the {len(tracks)} tracks of {args.root} could be separated")
    return 0
