"""``mixrep index build|add|remove|info|merge`` and ``mixrep search``: a thin layer over
:mod:`mixrep.retrieval.builder` and :class:`mixrep.retrieval.library_index.LibraryIndex`."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from mixrep.constants import SILENCE_RMS_DB
from mixrep.errors import MixrepError
from mixrep.retrieval.builder import add_files, build_library_index, merge_indexes
from mixrep.retrieval.faiss_index import CLIP_REDUCTIONS, INDEX_TYPES, MODES, IndexConfig
from mixrep.retrieval.library import parse_shard
from mixrep.retrieval.library_index import LibraryIndex, QueryResult
from mixrep.retrieval.store import STORE_NAME, MetadataStore


def load_embedder(checkpoint: str | None):
    """The trained encoder of ``checkpoint``, or the shipped one when ``None`` (imported lazily: torch
    loads only when needed)."""
    from mixrep.inference.pretrained import checkpoint_or_shipped
    from mixrep.inference.style_encoder import StyleEncoder

    return StyleEncoder.from_checkpoint(checkpoint_or_shipped(checkpoint))


def embedder_factory(checkpoint: str | None):
    """A picklable no-argument callable that loads the encoder (for Ray actors: resolved to an absolute path,
    which must exist on every node)."""
    return functools.partial(load_embedder, str(Path(checkpoint).resolve()) if checkpoint else None)


def register(subparsers) -> None:
    index = subparsers.add_parser("index", help="build and manage a style index of a track library")
    sub = index.add_subparsers(dest="index_command", required=True, metavar="ACTION")

    build = sub.add_parser("build", help="embed a library into an index (resumes an interrupted build)")
    build.add_argument("--checkpoint", default=None,
                       help="encoder checkpoint (default: the one shipped with mixrep, docs/pretrained.md)")
    build.add_argument("--library", required=True, nargs="+", help="folders/files, or the root for --source")
    build.add_argument("--source", choices=("fma", "stems", "folder"), default=None,
                       help="read the library through a mixrep data source instead of walking folders")
    build.add_argument("--index", required=True, help="index folder")
    build.add_argument("--shard", default="0/1", help="I/N: embed only shard I of N (merge with `index merge`)")
    _add_config_args(build)
    build.add_argument("--batch-tracks", type=int, default=16, help="tracks per SQLite commit")
    build.add_argument("--save-every", type=float, default=60.0, help="seconds between index saves")
    build.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="'local': this process; 'ray': a Ray Data pipeline on a Ray cluster (extra mixrep[ray]; "
                            "docs/retrieval.md#building-on-a-ray-cluster)")
    build.add_argument("--address", default=None,
                       help="--engine ray: the cluster (HOST:6379, ray://HOST:10001 or auto; default: a local cluster)")
    build.add_argument("--actors", type=int, default=None,
                       help="--engine ray: embedding actors (default: one per GPU, else the cluster's CPUs - 1)")
    build.add_argument("--gpus-per-actor", type=float, default=None,
                       help="--engine ray: GPUs per embedding actor (default 1 where the cluster has GPUs, else 0)")
    _add_skip_args(build)
    build.set_defaults(func=_cmd_build)

    add = sub.add_parser("add", help="add files or folders to an index")
    add.add_argument("--checkpoint", default=None,
                     help="the encoder that built the index (default: the shipped one)")
    add.add_argument("--index", required=True)
    add.add_argument("paths", nargs="+")
    _add_skip_args(add)
    add.set_defaults(func=_cmd_add)

    remove = sub.add_parser("remove", help="remove tracks by id or path")
    remove.add_argument("--index", required=True)
    remove.add_argument("tracks", nargs="+", help="track ids or file paths")
    remove.set_defaults(func=_cmd_remove)

    info = sub.add_parser("info", help="counts, encoder hash, index type, size on disk")
    info.add_argument("--index", required=True)
    info.add_argument("--check-recall", action="store_true", help="measure recall@10 against exact search")
    info.add_argument("--sample", type=int, default=500, help="queries for --check-recall")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_cmd_info)

    merge = sub.add_parser("merge", help="combine shard indexes into one")
    merge.add_argument("--index", required=True, help="target index folder")
    merge.add_argument("partials", nargs="+", help="shard index folders")
    _add_config_args(merge)
    merge.set_defaults(func=_cmd_merge)

    search = subparsers.add_parser("search", help="find library tracks mixed in the style of a query")
    search.add_argument("--index", required=True)
    group = search.add_mutually_exclusive_group(required=True)
    group.add_argument("--query", nargs="+", help="audio file(s), or stems folder(s) with --stems")
    group.add_argument("--query-id", type=int, nargs="+", help="id(s) of tracks in the index")
    group.add_argument("--query-list", help="text file with one query path per line")
    search.add_argument("--checkpoint", default=None,
                        help="encoder checkpoint for file queries (default: the shipped one); it must be the "
                             "encoder that built the index")
    search.add_argument("--stems", action="store_true", help="queries are folders of pre-separated stems")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--nprobe", type=int, default=None, help="IVF lists to visit (recall vs speed)")
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=_cmd_search)


def _add_skip_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--include-silent", action="store_true",
                        help=f"index silent tracks too (at or below {SILENCE_RMS_DB:g} dBFS RMS; skipped by default, "
                             "their embeddings match unrelated tracks)")
    parser.add_argument("--retry-skipped", action="store_true",
                        help="try every file recorded as skipped again, even unchanged ones (skips whose reason was "
                             "not the file, e.g. a separator failure, are always retried)")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index-type", choices=INDEX_TYPES, default=None,
                        help="exact 'flat', approximate 'ivf'/'hnsw', or 'auto' (ivf above --exact-threshold)")
    parser.add_argument("--mode", choices=MODES, default=None, help="'track': one mean vector; 'clip': every clip")
    parser.add_argument("--clip-reduce", choices=CLIP_REDUCTIONS, default=None, help="clip mode track score")
    parser.add_argument("--exact-threshold", type=int, default=None, help="vectors from which auto uses ivf")
    parser.add_argument("--nlist", type=int, default=None)
    parser.add_argument("--nprobe", type=int, default=None)


def _config(args, index_dir: Path) -> IndexConfig | None:
    """Flags given on the command line applied over the index's stored config; None if no flag."""
    names = ("index_type", "mode", "clip_reduce", "exact_threshold", "nlist", "nprobe")
    given = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if not given:
        return None
    base = IndexConfig()
    if (index_dir / STORE_NAME).exists():
        with MetadataStore(index_dir / STORE_NAME, readonly=True) as store:
            text = store.get_meta("index_config")
            base = IndexConfig(**json.loads(text)) if text else base
    return replace(base, **given)


def _library(args):
    if args.source is None:
        return args.library
    if len(args.library) != 1:
        raise MixrepError(f"--source {args.source} takes one --library root, got {len(args.library)}")
    from mixrep.datasets.registry import open_source

    # The build itself skips (and records) tracks too short to embed; the source's default minimum
    # is the training one.
    return open_source(args.source, args.library[0], min_seconds=0.0)


def _print_build(report, unit: str = "files") -> None:
    dropped = f" ({len(report.dropped)} more dropped while listing)" if report.dropped else ""
    retried = f", {report.retried} skipped before and retried" if report.retried else ""
    print(f"shard {report.shard[0]}/{report.shard[1]}: {report.library_items} library {unit}{dropped}, "
          f"{report.already_indexed} already indexed{retried}, {report.embedded} embedded "
          f"({report.tracks_per_second:.2f} tracks/s), {len(report.skipped) + len(report.dropped)} skipped; "
          f"{report.tracks_in_index} tracks in the index")
    if report.skipped or report.dropped:
        print(f"skipped {unit}:")
        for s in sorted(report.skipped + report.dropped, key=lambda s: s.path):
            print(f"  {s.path}  [{s.kind}{', while listing' if s.stage == 'listing' else ''}] {s.reason}")


def _skip_options(args) -> dict:
    return {"include_silent": args.include_silent, "retry_skipped": args.retry_skipped}


def _cmd_build(args) -> int:
    index_dir = Path(args.index)
    if args.engine == "ray":
        return _cmd_build_ray(args, index_dir)
    report = build_library_index(load_embedder(args.checkpoint), _library(args), index_dir,
                                 shard=parse_shard(args.shard), config=_config(args, index_dir),
                                 batch_tracks=args.batch_tracks, save_every_seconds=args.save_every,
                                 **_skip_options(args))
    _print_build(report, "songs" if args.source == "stems" else "files")
    return 0


def _cmd_build_ray(args, index_dir: Path) -> int:
    from mixrep.retrieval.ray_build import build_library_index_ray

    if args.shard != "0/1":
        raise MixrepError(f"--shard {args.shard} is for --engine local; --engine ray spreads one build over the "
                          f"cluster by itself")
    report = build_library_index_ray(embedder_factory(args.checkpoint), _library(args), index_dir,
                                     address=args.address, actors=args.actors,
                                     num_gpus_per_actor=args.gpus_per_actor, config=_config(args, index_dir),
                                     block_tracks=args.batch_tracks, **_skip_options(args))
    _print_build(report, "songs" if args.source == "stems" else "files")
    return 0


def _cmd_add(args) -> int:
    _print_build(add_files(load_embedder(args.checkpoint), args.paths, args.index, **_skip_options(args)))
    return 0


def _cmd_remove(args) -> int:
    from mixrep.retrieval.library_index import write_lock

    index_dir = Path(args.index)
    with write_lock(index_dir), LibraryIndex.open(index_dir, readonly=False) as index:
        ids, unknown = [], []
        paths = [t for t in args.tracks if not t.isdigit()]
        by_path = index.store.ids_for_paths(str(Path(p).resolve()) for p in paths)
        for t in args.tracks:
            tid = int(t) if t.isdigit() else by_path.get(str(Path(t).resolve()))
            (ids if tid is not None else unknown).append(tid if tid is not None else t)
        removed = index.remove(ids)
        unknown += [i for i in ids if i not in removed]
    print(f"removed {len(removed)} tracks; {len(index.style_index)} left")
    if unknown:
        print(f"not in the index: {', '.join(map(str, unknown))}", file=sys.stderr)
        return 1
    return 0


def _cmd_info(args) -> int:
    with LibraryIndex.open(args.index) as index:
        info = index.info(recall_sample=args.sample if args.check_recall else None)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    skipped = info.pop("skipped_files")
    for key, value in info.items():
        print(f"{key:>22}: {value}")
    for s in skipped:
        print(f"{'skipped':>22}: {s['path']} [{s['kind']}{', while listing' if s['stage'] == 'listing' else ''}]")
    return 0


def _cmd_merge(args) -> int:
    result = merge_indexes(args.partials, args.index, _config(args, Path(args.index)))
    print(f"merged {len(args.partials)} indexes: {result['copied']} tracks copied, "
          f"{result['duplicates']} duplicates dropped, {result['tracks']} tracks in {args.index}")
    return 0


def _cmd_search(args) -> int:
    with LibraryIndex.open(args.index) as index:
        if args.nprobe:
            index.style_index.set_search_params(nprobe=args.nprobe)
        if args.query_id:
            results = index.search_ids(args.query_id, args.k)
        else:
            queries = args.query or [line.strip() for line in Path(args.query_list).read_text().splitlines()
                                     if line.strip() and not line.startswith("#")]
            results = index.search_files(load_embedder(args.checkpoint), queries, args.k, stems=args.stems)
    failed = [r for r in results if r.error]
    if args.json:
        print(json.dumps([{"query": r.query, "results": [asdict(h) for h in r.hits], "error": r.error,
                           "silent": r.silent} for r in results], indent=2))
    else:
        for r in results:
            if not r.error:
                print(_table(r))
    for r in failed:
        print(f"skipped query {r.query}: {r.error}", file=sys.stderr)
    if failed and len(failed) == len(results):
        raise MixrepError(f"none of the {len(results)} queries could be embedded (see above)")
    return 1 if failed else 0


def _table(result: QueryResult) -> str:
    lines = [f"query: {result.query}"]
    if result.silent:
        lines.append("  warning: the query is silent; these matches are meaningless")
    lines.append(f"{'rank':>4}  {'score':>6}  {'duration':>8}  path")
    for h in result.hits:
        minutes, seconds = divmod(h.duration_seconds, 60)
        lines.append(f"{h.rank:>4}  {h.score:6.3f}  {int(minutes):>5d}:{seconds:04.1f}  {h.path}")
    if not result.hits:
        lines.append("  (no other tracks in the index)")
    return "\n".join(lines)
