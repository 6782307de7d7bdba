"""Style retrieval: a FAISS index of a track library plus its SQLite metadata store, and the
style-retrieval metrics and style sets that score an encoder.

    >>> from mixrep.retrieval import StyleIndex, build_library_index, LibraryIndex

The index's names load on first use, so ``mixrep.retrieval.metrics`` (used while training) does
not load FAISS.
"""

import importlib

_NAMES = {
    "BuildReport": "builder", "add_files": "builder", "build_library_index": "builder", "merge_indexes": "builder",
    "Embedder": "embedder", "StemsEmbedder": "embedder", "aggregate_clips": "embedder",
    "IndexConfig": "faiss_index", "SearchResult": "faiss_index", "StyleIndex": "faiss_index",
    "Hit": "library_index", "LibraryIndex": "library_index", "QueryResult": "library_index",
    "StoreError": "store",
}


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"mixrep.retrieval.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'mixrep.retrieval' has no attribute {name!r}")


__all__ = sorted(_NAMES)
