"""Stage 2 style transfer: raw tracks + a reference -> console settings and a mix (``mixrep mix``).

:class:`StyleTransfer` loads a regression head's checkpoint (with the style encoder inside it),
predicts every channel strip's and bus's parameters, optionally refines them against the
reference's style embedding, renders the song and reports the settings in physical units.
"""

from mixrep.transfer.checkpoint import HeadCheckpoint, read_head
from mixrep.transfer.report import physical_report
from mixrep.transfer.style_transfer import Prediction, StyleTransfer, TransferResult, prepare_tracks

__all__ = ["HeadCheckpoint", "Prediction", "StyleTransfer", "TransferResult", "physical_report", "prepare_tracks", "read_head"]
