"""Graph-prediction cases: labels are the graph that rendered the buses, and cases are reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixrep.console.spec import ConsoleSpec
from mixrep.corpora.synthetic import SynthConfig, SyntheticSource
from mixrep.errors import DatasetError
from mixrep.graphs.case_set import GraphCaseSet, case_groups, evidence_table


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(SynthConfig(num_songs=12, sample_rate=8000, song_seconds=4.0), cache_songs=12)


def test_case_groups():
    names, stems = ["kick", "bass", "keys", "vox"], ["drums", "bass", "other", "vocals"]
    assert case_groups(names, stems, "stems") == {"drums": ["kick"], "bass": ["bass"], "other": ["keys"],
                                                  "vocals": ["vox"]}
    assert case_groups(names, stems, "rhythm-music") == {"rhythm": ["kick", "bass"], "music": ["keys", "vox"]}
    assert case_groups(["kick"], ["drums"], "rhythm-music") == {"rhythm": ["kick"]}
    with pytest.raises(ValueError, match="grouping must be one of"):
        case_groups(names, stems, "by-colour")


def test_labels_are_the_graph_that_rendered_the_buses(source):
    cases = GraphCaseSet(source, "train", ConsoleSpec(chain="ecg", group_chain="ecg"), clip_seconds=2.0,
                         prior={"active_probability": {"eq": 0.5, "compressor": 0.5}}, audible_db=0.0, seed=3)
    case = cases[5]
    assert case.tracks.shape[0] == len(case.names) == len(case.groups) == case.track_labels.shape[0]
    assert case.buses.shape == (len(case.group_names), 2, 16000) == (case.bus_labels.shape[0], 2, 16000)
    assert cases.types == ("eq", "compressor", "gain_pan")
    assert torch.equal(cases[5].buses, case.buses)  # a case is fixed by (seed, index)
    assert case.track_labels[:, 2].all() and case.bus_labels[:, 2].all()  # gain/pan: always there
    labels = torch.cat([case.track_labels, case.bus_labels])
    assert 0 < labels[:, :2].sum() < labels[:, :2].numel()  # some eqs and compressors drawn, some not
    # the unlabelled processors are gone from the graph: removing them renders the same buses
    graph = case.console.graph
    unlabelled = [v for v, t in enumerate(graph.node_types) if t in cases.types and graph.mask[v] == 0]
    assert len(unlabelled) == labels.numel() - labels.sum()
    sparse = case.console.pruned(unlabelled)
    torch.testing.assert_close(sparse.render_buses_long(case.tracks), case.buses, atol=1e-5, rtol=1e-4)
    assert [graph.node_names[v] for v in graph.nodes_of_type("mix")] == case.group_names


def test_audible_labels_hold_only_what_changes_the_signal(source):
    prior = {"active_probability": {"eq": 1.0, "noisegate": 0.99}, "gate_threshold_db": (-90.0, -89.0)}
    cases = GraphCaseSet(source, "train", ConsoleSpec(chain="eng", group_chain="eng"), clip_seconds=2.0,
                         prior=prior, audible_db=1.0)
    case = cases[0]
    # a gate at -90 dBFS never acts on these tracks: never audible, never a label
    assert not case.track_labels[:, 1].any() and not case.bus_labels[:, 1].any()
    assert case.track_labels[:, 0].all()  # eq has probability 1: not optional, always labelled


def test_evidence_table_rows_and_labels(source):
    cases = GraphCaseSet(source, "val", clip_seconds=2.0, seed=1)
    rows, labels = evidence_table(cases, 3)
    assert rows.shape[0] == labels.shape[0] and labels.shape[1] == len(cases.types) == 7
    assert np.isfinite(rows).all()
    strips = sum(len(cases[i].names) + len(cases[i].group_names) for i in range(3))
    assert len(rows) == strips


def test_bad_settings(source):
    with pytest.raises(ValueError, match="one chain"):
        GraphCaseSet(source, "train", ConsoleSpec(chain="ecg", group_chain="g"))
    with pytest.raises(ValueError, match="audible_db"):
        GraphCaseSet(source, "train", audible_db=-1.0)
    with pytest.raises(ValueError, match="grouping"):
        GraphCaseSet(source, "train", groupings=("by-colour",))


class Damaged:
    """A source whose songs in ``bad`` cannot be read (as a corrupt file of a large dataset)."""

    def __init__(self, source, bad: set[str]) -> None:
        self.source, self.bad = source, bad
        self.name, self.sample_rate = "damaged", source.sample_rate

    def tracks(self, split=None):
        return self.source.tracks(split)

    def multitrack(self, track):
        return self.source.multitrack(track)

    def read_tracks(self, track, start_seconds, duration_seconds):
        if track.track_id in self.bad:
            raise OSError(f"{track.track_id}/kick.flac: not a FLAC file")
        return self.source.read_tracks(track, start_seconds, duration_seconds)


def test_an_unreadable_song_is_skipped_and_logged(source, caplog):
    intact = GraphCaseSet(source, "train", clip_seconds=2.0, seed=1)
    bad = intact[0].song
    cases = GraphCaseSet(Damaged(source, {bad}), "train", clip_seconds=2.0, seed=1)
    with caplog.at_level("WARNING"):
        rows, labels = evidence_table(cases, 4)
    assert f"{bad}/kick.flac: not a FLAC file" in caplog.text and "skipped" in caplog.text
    readable = [intact[i] for i in range(4) if intact[i].song != bad]
    assert len(rows) == len(labels) == sum(len(c.names) + len(c.group_names) for c in readable) > 0
    everything = Damaged(source, {t.track_id for t in source.tracks()})
    with pytest.raises(DatasetError, match="none of the 2 graph cases"):
        evidence_table(GraphCaseSet(everything, "train", clip_seconds=2.0), 2)
