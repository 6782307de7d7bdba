"""``mixrep describe``: the settings a checkpoint's decoder reads from a mix, in engineer's units."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    describe = subparsers.add_parser(
        "describe", help="decode a mix's settings (per stem and master) with a trained encoder",
        description="Decode the settings of a mix: per stem the balance, pan, width, filters, EQ curve, compressor, "
                    "saturation and sends; for the master its EQ, bus compressor and limiter, and the FX buses. "
                    "Values are in dB, Hz, seconds and pan units; a processor is listed when its decoded presence "
                    "is at least 0.5 (p=...), and a value's spread over the clips follows it as +-. With --compare, "
                    "what to change to turn INPUT into the other mix.")
    describe.add_argument("input", type=Path, metavar="INPUT",
                          help="a stereo audio file (a mixture, separated with Demucs) or a folder of the four "
                               "stems (drums, bass, other, vocals; any audio extension)")
    describe.add_argument("--checkpoint", type=Path, default=None,
                          help="an encoder checkpoint with a settings decoder (default: the one shipped with mixrep)")
    describe.add_argument("--compare", type=Path, default=None, metavar="OTHER",
                          help="a second mix (file or stem folder): print what turns INPUT into OTHER")
    describe.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the result as JSON")
    describe.add_argument("--all", action="store_true", help="list every decoded entry, used or not")
    describe.add_argument("--max-clips", type=int, default=8, help="clips decoded and averaged per input")
    describe.add_argument("--device", default=None)
    describe.add_argument("--weights", type=Path, default=None,
                          help="local Demucs weights for mixtures (see `mixrep embed --help`)")
    describe.set_defaults(func=run_describe)


def run_describe(args: argparse.Namespace) -> int:
    from mixrep.files import atomic_write_text
    from mixrep.inference.describe import check_json_output
    from mixrep.inference.pretrained import checkpoint_or_shipped
    from mixrep.inference.style_encoder import StyleEncoder

    if args.json is not None:
        check_json_output(args.json, (args.input, args.compare, args.checkpoint))
    encoder = StyleEncoder.from_checkpoint(checkpoint_or_shipped(args.checkpoint), device=args.device,
                                           separator_weights=args.weights)
    if args.compare is not None:
        result = encoder.compare_paths(args.input, args.compare, max_clips=args.max_clips)
        print(f"to turn {args.input} into {args.compare}:")
    else:
        result = encoder.describe_path(args.input, max_clips=args.max_clips)
        print(f"{args.input} ({result.clips} clips):")
    print(result.to_text(every_entry=args.all))
    if args.json is not None:
        payload = {"input": str(args.input), "model_hash": encoder.model_hash, **(
            {"compare": str(args.compare), "changes": result.to_dict()} if args.compare is not None
            else result.to_dict())}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
