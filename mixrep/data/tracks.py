"""The track contracts, as the data layer names them: defined in :mod:`mixrep.tracks`.

They live below the separation layer (which reads tracks too); this module keeps the
``mixrep.data.tracks`` import path working for data-layer code.
"""

from mixrep.tracks import SPLITS, SkipLog, Source, Track

__all__ = ["SPLITS", "SkipLog", "Source", "Track"]
