"""Dataset readers: song folders (``song_folder``, the one reader of a folder of tracks), FMA, audio and
stem folders (``sources``), multitrack datasets (``multitrack_sources``: Slakh2100, MedleyDB, MoisesDB)."""
