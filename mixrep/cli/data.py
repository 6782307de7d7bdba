"""``mixrep corpus synth``, ``mixrep corpus soundfont``, ``mixrep corpus soundfonts`` and ``mixrep data preview``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser("corpus", help="build corpora: the synthetic one, or a soundfont-rendered one")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    synth = corpus_sub.add_parser("synth", help="write the synthetic corpus as stem folders + metadata.json")
    synth.add_argument("--out", type=Path, required=True, help="output folder")
    synth.add_argument("--songs", type=int, default=64, help="number of songs (default 64)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--song-seconds", type=float, default=16.0, help="length of each song in seconds")
    synth.add_argument("--sample-rate", type=int, default=44_100)
    synth.set_defaults(func=run_corpus_synth)

    sf = corpus_sub.add_parser(
        "soundfont", help="render songs track by track with a General-MIDI soundfont (FluidSynth); resumable",
        description="Render the generator's songs (and any MIDI files) to dry per-instrument tracks with a GM "
                    "soundfont: <out>/<song>/<track>.flac + song.json. Cached: a second run renders only what is "
                    "missing, a killed run keeps every finished song.")
    sf.add_argument("--out", type=Path, required=True, help="corpus folder")
    sf.add_argument("--soundfont", type=Path, default=None,
                    help="an .sf2/.sf3 file (default: the first installed, see `mixrep corpus soundfonts`)")
    sf.add_argument("--songs", type=int, default=64, help="generated songs (default 64; 0 = MIDI files only)")
    sf.add_argument("--seed", type=int, default=0, help="song i plays the notes of synthetic song i of this seed")
    sf.add_argument("--song-seconds", type=float, default=16.0, help="length of each generated song in seconds")
    sf.add_argument("--sample-rate", type=int, default=44_100)
    sf.add_argument("--midi", type=Path, default=None, help="a MIDI file or a folder of them (e.g. Lakh MIDI), "
                    "one track per channel and program")
    sf.add_argument("--midi-max-seconds", type=float, default=60.0, help="MIDI files are rendered up to this length")
    sf.add_argument("--vocal-lead-probability", type=float, default=0.5,
                    help="share of generated songs whose lead is a voice program (stem vocals)")
    sf.add_argument("--no-progress", action="store_true", help="no progress bar")
    sf.set_defaults(func=run_corpus_soundfont)

    listing = corpus_sub.add_parser("soundfonts", help="list the General-MIDI soundfonts installed here")
    listing.set_defaults(func=run_corpus_soundfonts)

    data = subparsers.add_parser("data", help="inspect the triplet pipeline")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    preview = data_sub.add_parser("preview", help="print a few triplets and plot their mel spectrograms")
    preview.add_argument("--source", choices=("synth", "stems", "fma", "folder"), default="synth")
    preview.add_argument("--root", type=Path, default=None, help="dataset root (file sources)")
    preview.add_argument("--strategy", default="same_song", choices=("same_song", "same_chain", "mixed"))
    preview.add_argument("--count", type=int, default=3, help="triplets to show")
    preview.add_argument("--clip-seconds", type=float, default=4.0)
    preview.add_argument("--n-mels", type=int, default=128, help="mel bands of the front end shown")
    preview.add_argument("--seed", type=int, default=0)
    preview.add_argument("--weights", default=None, help="local Demucs weights (fma/folder sources)")
    preview.add_argument("--cache", type=Path, default=None, help="stem cache folder (fma/folder sources)")
    preview.add_argument("--out", type=Path, default=Path("outputs/preview"), help="folder for the PNGs")
    preview.set_defaults(func=run_data_preview)


def run_corpus_synth(args: argparse.Namespace) -> int:
    from mixrep.corpora.synthetic import SynthConfig, write_corpus

    config = SynthConfig(num_songs=args.songs, seed=args.seed, song_seconds=args.song_seconds,
                         sample_rate=args.sample_rate)
    out = write_corpus(args.out, config)
    print(f"wrote {args.songs} songs of {args.song_seconds:g} s to {out} (stems/<song>/<stem>.flac, metadata.json)")
    return 0


def run_corpus_soundfont(args: argparse.Namespace) -> int:
    from mixrep.corpora.soundfont import SoundfontCorpusConfig, render_corpus

    config = SoundfontCorpusConfig(num_songs=args.songs, seed=args.seed, song_seconds=args.song_seconds,
                                   sample_rate=args.sample_rate, midi_max_seconds=args.midi_max_seconds,
                                   vocal_lead_probability=args.vocal_lead_probability)
    report = render_corpus(args.out, config, args.soundfont, args.midi, progress=not args.no_progress)
    disk_mb = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 1e6
    print(f"{report.summary()}; soundfont {report.soundfont}; {disk_mb:.1f} MB on disk")
    for where, kind, reason in report.skipped.entries[:10]:
        print(f"  skipped {where} ({kind}): {reason}")
    if len(report.skipped) > 10:
        print(f"  ... and {len(report.skipped) - 10} more")
    return 0


def run_corpus_soundfonts(args: argparse.Namespace) -> int:
    from mixrep.audio.fluidsynth import SYSTEM_PACKAGES, default_soundfont, installed_soundfonts

    installed = installed_soundfonts()
    if not installed:
        print(f"no General-MIDI soundfont installed; as root: apt-get install {' '.join(SYSTEM_PACKAGES)}")
        return 1
    default = default_soundfont()
    for path in installed:
        mark = " (default)" if default is not None and path == default.resolve() else ""
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB{mark}")
    return 0


def run_data_preview(args: argparse.Namespace) -> int:
    import torch

    from mixrep.frontend import FrontEnd, FrontEndConfig
    from mixrep.plots.triplets import plot_triplet
    from mixrep.training.datamodule import TripletDataModule
    from mixrep.training.triplets import SIDES

    dm = TripletDataModule(source=args.source, root=str(args.root) if args.root else None, strategy=args.strategy,
                           clip_seconds=args.clip_seconds, seed=args.seed, num_workers=0,
                           weights_path=args.weights, cache_dir=str(args.cache) if args.cache else None)
    dm.setup("fit")
    dataset = dm.train_set
    source = dm.source
    frontend = FrontEnd(FrontEndConfig(sample_rate=source.sample_rate, n_mels=args.n_mels,
                                       clip_seconds=args.clip_seconds))
    print(f"source {source.name}: {len(source.tracks())} tracks "
          f"({len(source.tracks('train'))} train, {len(source.tracks('val'))} val); {source.skipped.summary()}")
    names = frontend.feature_names
    shown = [i for i, n in enumerate(names) if n.startswith("mix.")][:6]
    for key in range(min(args.count, len(dataset))):
        triplet = dataset.draw(key)
        with torch.no_grad():
            mels, features = frontend(torch.from_numpy(np.stack([getattr(triplet, side) for side in SIDES])))
        info = triplet.info
        print(f"\ntriplet {key}: track {info['track']} ({info['strategy']})")
        for side, mel, vector in zip(SIDES, mels, features):
            values = ", ".join(f"{names[i]}={vector[i]:.2f}" for i in shown)
            print(f"  {side:9s} mel {tuple(mel.shape)} features {tuple(vector.shape)}: {values}")
        gap = float(np.abs(triplet.negative - triplet.anchor).max())
        print(f"  max |negative - anchor| = {gap:.3f}")
        path = plot_triplet(dict(zip(SIDES, mels)), args.out / f"triplet_{key}.png",
                            title=f"{info['track']} ({info['strategy']})")
        print(f"  wrote {path}")
    return 0
