"""Evaluation protocols: the style encoder (``mixrep evaluate``) and Stage 2 style transfer."""
