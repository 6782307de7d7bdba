"""Inference: a trained encoder's embeddings and Stage 2 style transfer, without Lightning or FAISS.

* :class:`StyleEncoder` (:mod:`mixrep.inference.style_encoder`): a style-encoder checkpoint ->
  embeddings of mixes (separated on the fly) or of stems.
* :class:`StyleTransfer` (:mod:`mixrep.inference.style_transfer`, ``mixrep mix``): raw tracks + a
  reference -> console settings and a mix. It loads a regression head's checkpoint (with the style
  encoder inside it), predicts every channel strip's and bus's parameters, matches the reference's
  balance, guards against settings worse than the plain sum, optionally refines them against the
  reference's style embedding, renders the song and reports the settings in physical units.

    >>> from mixrep.inference import StyleEncoder, StyleTransfer
"""

from mixrep.inference.report import physical_report
from mixrep.inference.style_encoder import StyleEncoder
from mixrep.inference.style_transfer import Prediction, StyleTransfer, TransferResult, prepare_tracks
from mixrep.models.checkpoint import HeadCheckpoint, read_head

__all__ = ["HeadCheckpoint", "Prediction", "StyleEncoder", "StyleTransfer", "TransferResult", "physical_report",
           "prepare_tracks", "read_head"]
