"""The batched torch front end: stems -> 8-channel log-mel + mix features, on any device.

>>> from mixrep.frontend import FrontEnd, FrontEndConfig
>>> frontend = FrontEnd(FrontEndConfig(sample_rate=44100, n_mels=128))
>>> mel, features = frontend(stems)   # (batch, 4, 2, samples) -> (batch, 8, 128, frames), (batch, 116)

Training (on the training device, in the LightningModule), validation, evaluation and
:class:`mixrep.inference.style_encoder.StyleEncoder` all call this one module; checkpoints store its
:class:`FrontEndConfig`.
"""

from mixrep.frontend.config import FEATURE_GROUPS, MIN_SECONDS, FrontEndConfig
from mixrep.frontend.features import feature_names, mix_features, num_features
from mixrep.frontend.module import FrontEnd, FrontEndOutput

__all__ = ["FEATURE_GROUPS", "MIN_SECONDS", "FrontEnd", "FrontEndConfig", "FrontEndOutput", "feature_names",
           "mix_features", "num_features"]
