"""What ``mixrep mix`` writes: checked before any work, written all or none.

:func:`plan_outputs` decides every output path (the mix, its settings JSON, the comparison figure,
with ``--sparse`` the graph drawing) and checks each before a model is loaded: a known format, a
writable location (:func:`~mixrep.files.check_output_file`), no two outputs on one path, no output
on an input file, and none inside the tracks or reference folder (the next run would read it as a
track or stem) unless ``force``. :func:`write_mix_outputs` writes them through
:class:`~mixrep.files.StagedFiles`: all are published together at the end, or none is.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mixrep.audio.io import check_audio_extension, write_audio
from mixrep.errors import OutputError
from mixrep.files import StagedFiles, check_output_file
from mixrep.inference.mix_exports import EXPORT_SUFFIXES, MixExport
from mixrep.plots.console import draw_graph
from mixrep.plots.transfer import plot_transfer
from mixrep.styles.style_file import check_style, style_to_json

FIGURE_FORMATS: tuple[str, ...] = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
"""Extensions the comparison figure may have."""


@dataclass(frozen=True)
class MixOutputs:
    """Where ``mixrep mix`` writes.

    Attributes:
        audio: the mix; settings: the settings JSON; figure: the comparison figure;
        graph: the predicted graph's drawing (``--sparse`` only); style: the settings file in the
        one settings format (:mod:`mixrep.styles.style_file`); exports: ``{target: file}`` of
        ``--export`` (:data:`~mixrep.inference.mix_exports.EXPORT_SUFFIXES`).
    """

    audio: Path
    settings: Path
    figure: Path
    graph: Path | None = None
    style: Path | None = None
    exports: dict[str, Path] = field(default_factory=dict)

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.audio, self.settings, self.figure, self.graph, self.style, *self.exports.values())
                if p is not None]


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def plan_outputs(out: Path, settings: Path | None = None, figure: Path | None = None, graph: bool = False,
                 input_files: list[Path] | tuple[Path, ...] = (), input_folders: dict[str, Path] | None = None,
                 force: bool = False, style: Path | None = None, exports: Sequence[str] = ()) -> MixOutputs:
    """Every output path of ``mixrep mix``, checked (see the module docstring).

    Args:
        out: the mix; settings / figure: default ``out`` with ``.json`` / ``.png``; graph: also the
            graph drawing (``out`` with ``.graph.png``); style: the settings file, default ``out``
            with ``.style.json``; exports: ``--export`` targets, each ``out`` with its
            :data:`~mixrep.inference.mix_exports.EXPORT_SUFFIXES` suffix.
        input_files: files read (tracks, reference, groups, checkpoints): never overwritten.
        input_folders: ``{"tracks folder": path, ...}``: no output inside them unless ``force``.

    Raises:
        OutputError: naming the output, what is wrong, and what to do.
    """
    check_output_file(out, "--out")
    try:
        check_audio_extension(out, "--out")
    except ValueError as e:
        raise OutputError(str(e)) from None
    outputs = MixOutputs(out, settings or out.with_suffix(".json"), figure or out.with_suffix(".png"),
                         out.with_suffix(".graph.png") if graph else None, style or out.with_suffix(".style.json"),
                         {target: out.with_suffix(EXPORT_SUFFIXES[target]) for target in exports})
    if outputs.style.suffix.lower() != ".json":
        raise OutputError(f"--style-out {outputs.style}: a settings file is JSON; give it a .json name")
    if outputs.figure.suffix.lower() not in FIGURE_FORMATS:
        raise OutputError(f"--figure {outputs.figure}: use one of {', '.join(FIGURE_FORMATS)}")
    names = {"--out": outputs.audio, "--params-out": outputs.settings, "--figure": outputs.figure,
             "the graph drawing": outputs.graph, "--style-out": outputs.style,
             **{f"the {target} export": path for target, path in outputs.exports.items()}}
    seen: dict[Path, str] = {}
    for what, path in names.items():
        if path is None:
            continue
        resolved = path.resolve()
        if resolved in seen:
            raise OutputError(f"{what} and {seen[resolved]} are both {path}; give each output its own name")
        seen[resolved] = what
        check_output_file(path, what, inputs=input_files)
        for folder_name, folder in (input_folders or {}).items():
            if not force and _inside(path, folder):
                raise OutputError(f"{what} {path} lies inside the {folder_name} {folder}: a later run would read it "
                                  f"as an input; write elsewhere (or pass --force)")
    return outputs


def mix_settings(result, head: Path, names: list[str], stems: list[str], refine_steps: int, sparse: bool,
                 keep_probability: dict[str, float]) -> dict:
    """The settings JSON of ``mixrep mix``: inputs, balance moves, the graph's probabilities, the
    output's rate and levels (``"output"``), every strip's and bus's settings in physical units, and
    what the guard decided (``"guard"``)."""
    balance = result.balance
    return {
        "head": str(head), "tracks": names, "stems": stems, "refine_steps": refine_steps,
        "refine_losses": [round(x, 5) for x in result.refine_losses], "sparse": sparse,
        "balance": {"level_db": {c: round(v, 2) for c, v in (balance.level_db if balance else {}).items()},
                    "stereo_db": {c: round(v, 2) for c, v in (balance.stereo_db if balance else {}).items()}},
        "output": result.levels.to_dict(), "keep_probability": keep_probability, **result.report,
        "guard": result.guard.as_dict() if result.guard is not None else None,
    }


def write_mix_outputs(outputs: MixOutputs, result, settings: dict, profiles: dict, title: str,
                      export: MixExport | None = None) -> list[Path]:
    """Write the mix, the settings, the figure (the graph, the settings file and the exports): all of
    them, or none.

    Raises:
        OutputError: a write or a rename failed (nothing was published, old files are kept).
        StyleFileError: the converted settings are outside what the settings file takes (nothing written).

    Args:
        result: the :class:`~mixrep.inference.style_transfer.TransferResult`.
        settings: the settings JSON's content; profiles, title: the figure's
            (:func:`~mixrep.plots.transfer.plot_transfer`).
        export: the settings file's and the exports' content (required when ``outputs`` has them).
    """
    if (outputs.style is not None or outputs.exports) and export is None:
        raise ValueError("the settings file and the exports need the mix's export content")
    try:
        with StagedFiles() as staged:
            with staged.file(outputs.audio) as tmp:
                write_audio(tmp, result.mix, result.sample_rate)
            staged.write_text(outputs.settings, json.dumps(settings, indent=1))
            with staged.file(outputs.figure) as tmp:
                plot_transfer(profiles, tmp, title)
            if outputs.graph is not None:
                with staged.file(outputs.graph) as tmp:
                    draw_graph(result.console.graph, tmp, title="predicted graph")
            if outputs.style is not None:
                checked = check_style(export.style, export.names, export.stems, export.sample_rate,
                                      where="the mix's settings", labels=False)
                staged.write_text(outputs.style, style_to_json(
                    dataclasses.replace(checked, source="mixrep mix", conversion=export.conversion)))
            for target, path in outputs.exports.items():
                with staged.file(path) as tmp:
                    if target == "pedalboard":
                        write_audio(tmp, export.pedalboard, export.sample_rate)
                    else:
                        export.write_project(target, tmp)
            return staged.commit()
    except OSError as e:
        raise OutputError(f"writing the outputs failed ({e}); none of {', '.join(map(str, outputs.paths))} was "
                          f"written or changed") from e
