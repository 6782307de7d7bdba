"""Sources (synthetic corpus, FMA, audio folders, stem folders), triplets and the DataModule."""
