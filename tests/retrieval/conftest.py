import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from handcrafted import BandStereoEmbedder, make_library  # noqa: E402

LIBRARY_TRACKS = 30


@pytest.fixture(scope="session")
def library(tmp_path_factory) -> tuple[Path, list[Path]]:
    """30 one-second tracks in 5 styles (nested folders), 2 corrupt files and a text file."""
    root = tmp_path_factory.mktemp("library")
    return root, make_library(root, LIBRARY_TRACKS, corrupt=2)


@pytest.fixture(scope="session")
def embedder() -> BandStereoEmbedder:
    return BandStereoEmbedder()
