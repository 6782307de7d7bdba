"""Plain ``nn.Module``s: band-split encoder, FiLM, temporal pooling (no Lightning here).

Shape:
    Spectrograms are ``(batch, channels, mels, frames)`` with 8 channels (4 stems x stereo).
"""

from mixrep.models.bandsplit import BandLayout, SubBandCNN, split_bands
from mixrep.models.encoder import INPUT_CHANNELS, EncoderConfig, MixStyleEncoder, count_parameters
from mixrep.models.feature_branch import FeatureBranch
from mixrep.models.film import FiLMGenerator, FiLMParameters, film
from mixrep.models.pooling import AttentionPooling, MeanPooling, attention_pool

__all__ = [
    "INPUT_CHANNELS",
    "AttentionPooling",
    "BandLayout",
    "EncoderConfig",
    "FeatureBranch",
    "FiLMGenerator",
    "FiLMParameters",
    "MeanPooling",
    "MixStyleEncoder",
    "SubBandCNN",
    "attention_pool",
    "count_parameters",
    "film",
    "split_bands",
]
