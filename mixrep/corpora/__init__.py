"""Corpora mixrep renders itself: the NumPy synthetic songs (``synthetic``, ``score``), the FluidSynth
soundfont corpus (``midi``, ``soundfont``), rendered corpora on disk (``rendered``) and timbre jitter."""
