"""Audio I/O, levels and meters, stems, NumPy primitives, multitracks and FluidSynth rendering."""
