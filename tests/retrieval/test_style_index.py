"""StyleIndex: exactness, exclusion, removal, recall of the approximate types, atomic saves."""

import numpy as np
import pytest

import faiss
from mixrep.errors import CheckpointError
from mixrep.retrieval.faiss_index import IndexConfig, StyleIndex
from mixrep.retrieval.synthetic import clustered_unit_vectors

DIM = 32


def unit(rng, n, dim=DIM):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def clustered():
    """8000 library vectors and 200 held-out queries from 200 clusters in 32 dimensions."""
    lib = next(clustered_unit_vectors(8000, DIM, 200, seed=1, chunk=8000))
    queries = next(clustered_unit_vectors(200, DIM, 200, seed=2, chunk=200))
    return lib, queries


@pytest.mark.parametrize("index_type", ["ivf", "hnsw"])
def test_approximate_recall_at_10_on_clustered_data(clustered, index_type):
    lib, queries = clustered
    config = IndexConfig(index_type=index_type)
    index = StyleIndex.build(range(len(lib)), [v[None] for v in lib], DIM, "h", config)
    assert index.index_type == index_type
    exact = faiss.IndexFlatIP(DIM)
    exact.add(lib)
    _, truth = exact.search(queries, 10)
    found = index.search(queries, 10).track_ids
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert recall >= 0.95, f"{index_type} recall@10 {recall:.3f} on held-out queries"
    assert index.check_recall(sample_size=200) >= 0.95


def test_auto_switches_from_exact_to_ivf_at_threshold(clustered):
    lib, _ = clustered
    index = StyleIndex(DIM, "h", IndexConfig(exact_threshold=5000))
    index.add(range(4999), [v[None] for v in lib[:4999]])
    assert index.index_type == "flat"
    index.add([4999], [lib[4999][None]])
    assert index.index_type == "ivf" and len(index) == 5000 and index.num_vectors == 5000
    assert index.check_recall(100) >= 0.95


@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("mode", ["track", "clip"])
def test_remove_and_exclusion_for_every_type(clustered, index_type, mode):
    lib, _ = clustered
    tracks = [lib[i:i + 4] for i in range(0, 4000, 4)]  # 1000 tracks of 4 clips
    index = StyleIndex.build(range(1000), tracks, DIM, "h", IndexConfig(index_type=index_type, mode=mode))
    assert index.search([tracks[7]], 1).track_ids[0, 0] == 7
    excluded = index.search([tracks[7]], 5, exclude_track_ids=[7]).track_ids[0]
    assert 7 not in excluded and (excluded >= 0).all()
    assert index.remove([7, 8, 123456]) == 2
    assert len(index) == 998 and index.num_vectors == 998 * (4 if mode == "clip" else 1)
    assert 7 not in index.search([tracks[7]], 20).track_ids[0]
    index.add([7], [tracks[7]])  # the id can be used again
    assert index.search([tracks[7]], 1).track_ids[0, 0] == 7
    with pytest.raises(ValueError, match="already in the index"):
        index.add([7], [tracks[7]])


def test_scores_are_cosines_and_clip_reductions_match_hand_computation():
    rng = np.random.default_rng(0)
    tracks = [unit(rng, 3) for _ in range(20)]
    query = unit(rng, 2)
    for reduce, fn in (("max", np.max), ("mean", np.mean)):
        index = StyleIndex.build(range(20), tracks, DIM, "h", IndexConfig(index_type="flat", mode="clip",
                                                                          clip_reduce=reduce))
        result = index.search([query], 20)
        expected = np.array([fn(query @ t.T) for t in tracks])
        np.testing.assert_array_equal(result.track_ids[0], np.argsort(-expected, kind="stable"))
        np.testing.assert_allclose(result.scores[0], np.sort(expected)[::-1], atol=1e-5)
    index = StyleIndex.build(range(20), tracks, DIM, "h", IndexConfig(mode="track"))
    agg = lambda x: x.mean(0) / np.linalg.norm(x.mean(0))  # noqa: E731
    expected = np.array([agg(query) @ agg(t) for t in tracks])
    np.testing.assert_allclose(index.search([query], 20).scores[0], np.sort(expected)[::-1], atol=1e-5)


def test_fewer_tracks_than_k_pads_with_minus_one():
    rng = np.random.default_rng(1)
    index = StyleIndex.build([3, 9], [unit(rng, 2), unit(rng, 2)], DIM, "h")
    result = index.search(unit(rng, 1), 5, exclude_track_ids=[9])
    assert result.track_ids[0].tolist() == [3, -1, -1, -1, -1]
    assert np.isnan(result.scores[0, 1:]).all()


def test_embedder_mismatch_refused_naming_both():
    index = StyleIndex(DIM, "abc123")

    class Other:
        embedding_dim, model_hash = 768, "def456"

    with pytest.raises(CheckpointError, match=r"abc123 \(embedding size 32\).*def456 \(embedding size 768\)"):
        index.check_embedder(Other())


@pytest.mark.parametrize("index_type", ["flat", "ivf"])
def test_crash_during_save_keeps_previous_index_loadable(tmp_path, monkeypatch, clustered, index_type):
    lib, _ = clustered
    index = StyleIndex.build(range(3000), [v[None] for v in lib[:3000]], DIM, "h", IndexConfig(index_type=index_type))
    index.save(tmp_path)
    index.remove(range(1000))

    def crash(idx, path):
        with open(path, "wb") as f:
            f.write(b"half a faiss file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(faiss, "write_index", crash)
    with pytest.raises(OSError, match="simulated"):
        index.save(tmp_path)
    monkeypatch.undo()
    loaded = StyleIndex.load(tmp_path)
    assert len(loaded) == 3000 and loaded.index_type == index_type
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "vectors-000001.faiss"]
    index.save(tmp_path)
    assert len(StyleIndex.load(tmp_path)) == 2000
