"""Source separation: the Separator protocol, Demucs, oracle stems and the on-disk stem cache."""
