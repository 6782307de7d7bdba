"""Differentiable mixing console: processors, graphs, batched rendering, audio loss, fitting, the
console spec a regression head drives (``spec``). The search over graphs (pruning, prediction,
cases with known graphs) is :mod:`mixrep.graphs`.

Axis vocabulary: audio through processors is ``(nodes, channels=2, samples)``; stems are
``(tracks, 2, samples)``; a mix is ``(2, samples)``; a batch of songs ``(B, 2, samples)``.
Parameters are ``{type: {name: (nodes_of_type, *size)}}`` in node order, with a
``dry_wet_logit`` ``(nodes_of_type,)`` per type; every raw value is clamped into the safe range
its processor's ``parameter_specs()`` declares.
"""

from mixrep.console.audio_features import AudioFeatureLoss, feature_errors
from mixrep.console.batch import ConsoleBatch, strip_of_nodes
from mixrep.console.console import MixingConsole, ParameterLayout
from mixrep.console.fit import FitConfig, FitResult, NonFiniteFitError, evaluate, fit
from mixrep.console.graph import (
    MixingGraph, build_console, merge_graphs, merge_params, remove_processors,
)
from mixrep.console.loss import MixLoss, rms, rms_normalise
from mixrep.console.prior import MusicalPrior, sample_mask, sample_parameters
from mixrep.console.processors import (
    DRY_WET, PROCESSOR_CLASSES, ParamSpec, Processor, dry_wet_weight, make_processors,
)
from mixrep.console.render import BatchedRenderer, RenderResult, render_one_by_one, schedule

__all__ = [
    "AudioFeatureLoss", "BatchedRenderer", "ConsoleBatch", "DRY_WET", "FitConfig", "FitResult", "MixLoss",
    "MixingConsole", "MixingGraph", "MusicalPrior", "NonFiniteFitError", "PROCESSOR_CLASSES", "ParamSpec",
    "ParameterLayout", "Processor", "RenderResult", "build_console", "dry_wet_weight", "evaluate", "feature_errors",
    "fit", "make_processors", "merge_graphs", "merge_params", "remove_processors", "render_one_by_one", "rms",
    "rms_normalise", "sample_mask", "sample_parameters", "schedule", "strip_of_nodes",
]
