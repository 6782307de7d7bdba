"""Memory-mapped IVF lists (issue 31 item 2): a search reads the lists from the vectors file, gets the
in-RAM answers, and a truncated, corrupt or redirecting vectors file is refused with a clear error."""

import os

import faiss
import numpy as np
import pytest

from mixrep.errors import CheckpointError
from mixrep.retrieval.builder import build_library_index
from mixrep.retrieval.faiss_index import IndexConfig, StyleIndex
from mixrep.retrieval.library_index import LibraryIndex
from mixrep.retrieval.store import STORE_NAME, MetadataStore
from mixrep.retrieval.synthetic import clustered_unit_vectors

DIM = 32
TRACKS = 3000


@pytest.fixture(scope="module")
def vectors():
    """3000 library vectors (100 clusters) and 100 held-out queries, 32-d."""
    lib = next(clustered_unit_vectors(TRACKS, DIM, 100, seed=1, chunk=TRACKS))
    queries = next(clustered_unit_vectors(100, DIM, 100, seed=2, chunk=100))
    return lib, queries


@pytest.fixture
def saved_ivf(tmp_path, vectors):
    lib, _ = vectors
    index = StyleIndex.build(np.arange(TRACKS) * 3, lib, DIM, "h", IndexConfig(index_type="ivf", nprobe=8))
    index.save(tmp_path)
    return tmp_path


def vectors_file(folder):
    return next(folder.glob("vectors-*.faiss"))


def test_a_memory_mapped_search_returns_the_true_neighbour_and_equals_the_in_ram_search(saved_ivf, vectors):
    lib, queries = vectors
    mapped, in_ram = StyleIndex.load(saved_ivf, mmap=True), StyleIndex.load(saved_ivf)
    assert mapped.memory_mapped and not in_ram.memory_mapped
    assert faiss.downcast_InvertedLists(mapped._index.invlists).prefetch_nthread == 0  # no threads per query
    assert mapped.describe()["lists"] == "memory-mapped" and in_ram.describe()["lists"] == "in memory"
    noisy = lib[:50] + 0.01 * np.random.default_rng(0).standard_normal((50, DIM)).astype(np.float32)
    assert (mapped.search(noisy, 1).track_ids[:, 0] == np.arange(50) * 3).all()
    got, want = mapped.search(queries, 10), in_ram.search(queries, 10)
    np.testing.assert_array_equal(got.track_ids, want.track_ids)
    np.testing.assert_array_equal(got.scores, want.scores)
    assert len(mapped) == TRACKS and mapped.num_vectors == TRACKS


def test_clip_mode_rescoring_reads_clips_through_the_memory_map(tmp_path, vectors):
    lib, queries = vectors
    clips = [lib[i:i + 3] for i in range(0, 1500, 3)]
    config = IndexConfig(index_type="ivf", mode="clip", nlist=10, nprobe=10)
    StyleIndex.build(range(len(clips)), clips, DIM, "h", config).save(tmp_path)
    query_sets = [queries[i:i + 2] for i in range(0, 20, 2)]
    got = StyleIndex.load(tmp_path, mmap=True).search(query_sets, 5)
    want = StyleIndex.load(tmp_path).search(query_sets, 5)
    np.testing.assert_array_equal(got.track_ids, want.track_ids)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)


def test_a_memory_mapped_index_can_still_be_changed_and_saved_self_contained(saved_ivf, vectors):
    lib, queries = vectors
    mapped, in_ram = StyleIndex.load(saved_ivf, mmap=True), StyleIndex.load(saved_ivf)
    for index in (mapped, in_ram):
        assert index.remove([0, 3, 6]) == 3
        index.add([10_000], lib[:1])
    assert not mapped.memory_mapped  # copied into RAM by the first change
    mapped.save(saved_ivf)  # replaces (deletes) the file it was mapped from
    reloaded = StyleIndex.load(saved_ivf, mmap=True)
    assert reloaded.memory_mapped and len(reloaded) == TRACKS - 2
    np.testing.assert_array_equal(reloaded.search(queries, 10).track_ids, in_ram.search(queries, 10).track_ids)
    assert reloaded.search(lib[:1], 1).track_ids[0, 0] == 10_000


def test_saved_files_leave_out_the_direct_map_and_older_files_that_carry_one_still_load(saved_ivf, vectors):
    lib, queries = vectors
    path = vectors_file(saved_ivf)
    assert faiss.read_index(str(path)).direct_map.type == faiss.DirectMap.NoMap
    before = StyleIndex.load(saved_ivf).search(queries, 10)
    old = faiss.read_index(str(path))  # as mixrep saved it before: with the id hash table
    old.set_direct_map_type(faiss.DirectMap.Hashtable)
    faiss.write_index(old, str(path))
    for mmap in (True, False):
        index = StyleIndex.load(saved_ivf, mmap=mmap)
        assert index._index.direct_map.type == faiss.DirectMap.NoMap  # not kept in RAM
        np.testing.assert_array_equal(index.search(queries, 10).track_ids, before.track_ids)
        assert index.remove([3]) == 1  # rebuilt when needed


@pytest.mark.parametrize("damage", ["truncated_lists", "truncated_header", "garbage"])
@pytest.mark.parametrize("mmap", [True, False])
def test_a_truncated_or_corrupt_vectors_file_is_a_clear_error(saved_ivf, damage, mmap):
    path = vectors_file(saved_ivf)
    size = path.stat().st_size
    if damage == "truncated_lists":  # the lists are the file's tail: a map would reach past its end
        os.truncate(path, size - 1000)
    elif damage == "truncated_header":
        os.truncate(path, 200)
    else:
        path.write_bytes(os.urandom(size))
    with pytest.raises(CheckpointError) as error:
        StyleIndex.load(saved_ivf, mmap=mmap)
    message = str(error.value)
    assert f"the FAISS index {path} of the index folder {saved_ivf} is missing, truncated or corrupt" in message
    assert "`mixrep index build` (or `mixrep index merge`)" in message


def test_a_vectors_file_whose_lists_live_in_another_file_is_refused(tmp_path, vectors):
    lib, _ = vectors
    reference = StyleIndex.build(np.arange(TRACKS), lib, DIM, "h", IndexConfig(index_type="ivf", nlist=10))
    reference.save(tmp_path)
    ivf = faiss.read_index(str(vectors_file(tmp_path)))
    elsewhere = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(tmp_path / "elsewhere.ivfdata"))
    ivf.replace_invlists(elsewhere, True)
    elsewhere.this.disown()
    ivf.add_with_ids(lib[:10], np.arange(10))
    faiss.write_index(ivf, str(vectors_file(tmp_path)))
    for mmap in (True, False):
        with pytest.raises(CheckpointError, match="keeps its lists in another file .*elsewhere.ivfdata"):
            StyleIndex.load(tmp_path, mmap=mmap)


def test_a_search_opens_the_library_index_memory_mapped_and_a_writer_in_ram(tmp_path, library, embedder):
    root, _ = library
    build_library_index(embedder, root, tmp_path / "idx", config=IndexConfig(index_type="ivf", nlist=2),
                        progress=False)
    with LibraryIndex.open(tmp_path / "idx", readonly=False) as writer:
        assert not writer.style_index.memory_mapped
        want = [[h.path for h in r.hits] for r in writer.search_ids([1, 2, 3], k=5)]
    with LibraryIndex.open(tmp_path / "idx") as reader:
        assert reader.style_index.memory_mapped
        assert [[h.path for h in r.hits] for r in reader.search_ids([1, 2, 3], k=5)] == want
        assert reader.info()["lists"] == "memory-mapped"


def test_a_search_reconciles_memory_mapped_lists_with_a_store_changed_since_the_save(tmp_path, library, embedder):
    """A removal committed to the store but not yet saved to FAISS (a killed `index remove`): the
    reader's mapped lists are copied into RAM and the removed track is left out."""
    root, _ = library
    build_library_index(embedder, root, tmp_path / "idx", config=IndexConfig(index_type="ivf", nlist=2),
                        progress=False)
    with MetadataStore(tmp_path / "idx" / STORE_NAME) as store:
        assert store.remove([2]) == [2]
    with LibraryIndex.open(tmp_path / "idx") as reader:
        assert 2 not in reader.style_index and len(reader.style_index) == reader.store.counts()["tracks"]
        hits = [h.track_id for r in reader.search_ids([1, 3], k=40) for h in r.hits]
        assert hits and 2 not in hits
