"""Mixing styles: per-stem effect chains (``chains``), the per-track mixing-style space (``mix_style``) and the
style spaces that draw one style for a training pair or an evaluation set (``spaces``)."""
