"""Style retrieval: a FAISS index of a track library plus its SQLite metadata store.

    >>> from mixrep.retrieval import StyleIndex, build_library_index, LibraryIndex
"""

from mixrep.retrieval.builder import BuildReport, add_files, build_library_index, merge_indexes
from mixrep.retrieval.embedder import Embedder, StemsEmbedder, aggregate_clips
from mixrep.retrieval.faiss_index import IndexConfig, SearchResult, StyleIndex
from mixrep.retrieval.library_index import Hit, LibraryIndex, QueryResult
from mixrep.retrieval.store import StoreError

__all__ = [
    "BuildReport", "Embedder", "Hit", "IndexConfig", "LibraryIndex", "QueryResult", "SearchResult",
    "StemsEmbedder", "StoreError", "StyleIndex", "add_files", "aggregate_clips", "build_library_index", "merge_indexes",
]
