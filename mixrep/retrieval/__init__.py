"""Style retrieval: a FAISS index of a track library plus its SQLite metadata store.

    >>> from mixrep.index import StyleIndex, build_library_index, LibraryIndex
"""

from mixrep.index.builder import BuildReport, add_files, build_library_index, merge_indexes
from mixrep.index.embedder import Embedder, StemsEmbedder, aggregate_clips
from mixrep.index.faiss_index import IndexConfig, SearchResult, StyleIndex
from mixrep.index.library_index import Hit, LibraryIndex, QueryResult
from mixrep.index.store import StoreError

__all__ = [
    "BuildReport", "Embedder", "Hit", "IndexConfig", "LibraryIndex", "QueryResult", "SearchResult",
    "StemsEmbedder", "StoreError", "StyleIndex", "add_files", "aggregate_clips", "build_library_index", "merge_indexes",
]
