"""Differentiable mixing console: processors, graphs, batched rendering, audio loss, fitting.

Axis vocabulary: audio through processors is ``(nodes, channels=2, samples)``; stems are
``(tracks, 2, samples)``; a mix is ``(2, samples)``. Parameters are
``{type: {name: (nodes_of_type, *size)}}`` in node order.
"""

from mixrep.console.console import MixingConsole, ParameterLayout
from mixrep.console.fit import FitConfig, FitResult, fit
from mixrep.console.graph import MixingGraph, build_console
from mixrep.console.loss import MixLoss
from mixrep.console.processors import PROCESSOR_CLASSES, Processor, make_processors
from mixrep.console.render import BatchedRenderer, RenderResult, render_one_by_one, schedule

__all__ = [
    "BatchedRenderer", "FitConfig", "FitResult", "MixLoss", "MixingConsole", "MixingGraph",
    "PROCESSOR_CLASSES", "ParameterLayout", "Processor", "RenderResult", "build_console", "fit",
    "make_processors", "render_one_by_one", "schedule",
]
