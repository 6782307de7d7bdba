"""The listening pages' content: one player per audio (decoding to what was summed), escaped names,
settings tables with units, the figure as written, and errors before any work with nothing written."""

from __future__ import annotations

import base64
import html
import json
import re

import numpy as np
import pytest

from mixrep.audio.io import read_audio
from mixrep.cli import main
from mixrep.errors import AudioReadError, MixrepError, OutputError
from mixrep.pages import describe_page, mix_page, player_spec, search_page, tracks_spec
from mixrep.pages.html import format_number, nested_table, split_unit
from tests.pages.conftest import HOSTILE, RATE, embedded_audio, mix_style_settings


def mix_specs(run, render: bool = True):
    specs = [player_spec("reference", run.reference_stems, "--reference-stems"),
             tracks_spec("raw sum", sorted(run.tracks.iterdir()), run.tracks), player_spec("result", run.out, "--out")]
    return specs + ([player_spec("pedalboard render", run.render, "--render")] if render else [])


def test_split_unit_reads_units_from_names():
    assert split_unit("gain_db") == ("gain", "dB")
    assert split_unit("attack_ms") == ("attack", "ms")
    assert split_unit("decay_seconds") == ("decay", "s")
    assert split_unit("loudness_lufs") == ("loudness", "LUFS")
    assert split_unit("true_peak_dbtp") == ("true peak", "dBTP")
    assert split_unit("60_hz") == ("60 Hz", "")  # a point: the value keeps the table's unit
    assert split_unit("ratio") == ("ratio", "")
    assert format_number(-3.25) == "-3.25" and format_number(12000.4) == "12000" and format_number(4) == "4"


def test_nested_table_of_a_mix_style_shows_every_value_with_its_unit():
    table = nested_table(mix_style_settings())
    for text in ("-3.25 dB", "80 Hz", "-18 dB", "10 ms", "120 ms", "-14 LUFS", "frequency (Hz)", "2500",
                 "-0.4", "<th>ratio</th><td class=\"number\">4</td>"):
        assert text in table, text
    assert "<th>60 Hz</th>" in nested_table({"curve_db": {"60_hz": 1.5}})
    assert "1.5 dB" in nested_table({"curve_db": {"60_hz": 1.5}})  # the point inherits the curve's unit
    assert HOSTILE not in table and html.escape(HOSTILE) in table


def test_mix_page_has_one_player_per_audio_decoding_to_what_it_sums(tmp_path, mix_run):
    page = mix_page(tmp_path / "page.html", mix_specs(mix_run), mix_run.settings, mix_run.figure, "mix",
                    seconds=1.0, audio_format="flac")
    text = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert text == page.html
    players = embedded_audio(text)
    assert [p[0] for p in players] == ["reference", "raw sum", "result", "pedalboard render"]
    assert text.count("<audio ") == 4 and {p[1] for p in players} == {"audio/flac"}
    assert all(rate == RATE for *_, rate in players)
    assert [a.shape[-1] for _, _, a, _ in players] == [RATE] * 4  # the first 1 s of each
    tracks_sum = sum(read_audio(f, RATE)[:, :RATE] for f in sorted(mix_run.tracks.iterdir()))
    peak = np.abs(tracks_sum).max()
    assert peak > 1.0  # so the raw sum is lowered to a peak of 1, and the page says by how much
    np.testing.assert_allclose(players[1][2], tracks_sum / peak, atol=2e-4)
    assert f"lowered {20 * np.log10(peak):.1f} dB so that it does not clip" in text
    reference_sum = sum(read_audio(f, RATE)[:, :RATE] for f in sorted(mix_run.reference_stems.iterdir()))
    np.testing.assert_allclose(players[0][2], reference_sum, atol=2e-4)
    np.testing.assert_allclose(players[2][2], read_audio(mix_run.out, RATE)[:, :RATE], atol=2e-4)
    assert [p.size_bytes for p in page.players] == [len(base64.b64decode(d)) for *_, d in
                                                    re.findall(r'src="data:(audio/flac);base64,([^"]+)"', text)]


def test_mix_page_embeds_the_figure_and_the_settings_and_escapes_names(tmp_path, mix_run):
    page = mix_page(tmp_path / "page.html", mix_specs(mix_run, render=False), mix_run.settings, mix_run.figure,
                    f"mix of {HOSTILE}", seconds=0.5)
    figure = re.search(r'<img class="figure"[^>]*src="data:image/png;base64,([^"]+)"', page.html)
    assert figure and base64.b64decode(figure.group(1)) == mix_run.figure.read_bytes()
    assert "<h2>Settings</h2>" in page.html and "-3.25 dB" in page.html
    assert HOSTILE not in page.html and "<img src=x" not in page.html
    assert page.html.count(html.escape(HOSTILE)) >= 3  # title, settings track list, strip name
    assert page.html.count("<script>") == 1  # only the page's own
    assert "Content-Security-Policy" in page.html and "script-src 'sha256-" in page.html
    assert "<audio " in page.html and page.html.count("<audio ") == 3


def test_mix_page_refuses_bad_inputs_before_work_and_keeps_the_old_page(tmp_path, mix_run):
    old = tmp_path / "page.html"
    old.write_text("old page")
    with pytest.raises(AudioReadError, match="track .*gone.wav does not exist"):
        tracks_spec("raw sum", [mix_run.tracks / "gone.wav"], mix_run.tracks)
    with pytest.raises(AudioReadError, match="--render .*nothing.wav does not exist"):
        player_spec("pedalboard render", tmp_path / "nothing.wav", "--render")
    specs = mix_specs(mix_run, render=False)
    with pytest.raises(OutputError, match=r"\.html"):
        mix_page(tmp_path / "page.txt", specs, None, None, "x")
    (tmp_path / "folder.html").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        mix_page(tmp_path / "folder.html", specs, None, None, "x")
    pdf = mix_run.figure.with_suffix(".pdf")
    pdf.write_bytes(b"%PDF")
    with pytest.raises(OutputError, match="pdf.*png"):
        mix_page(old, specs, None, pdf, "x")
    mix_run.settings.write_text("{not json")
    with pytest.raises(MixrepError, match="mix.json is not a readable JSON"):
        mix_page(old, specs, mix_run.settings, None, "x")
    with pytest.raises(ValueError, match="excerpt"):
        mix_page(old, specs, None, None, "x", seconds=0.0)
    assert old.read_text() == "old page"


def test_search_page_shows_queries_hits_scores_and_failures(tmp_path, search_results, mix_run):
    page = search_page(tmp_path / "search.html", search_results, "search", seconds=0.5)
    labels = [p[0] for p in embedded_audio(page.html)]
    assert labels == ["query", "hit 1", "hit 2", "hit 2"]  # a query by id has no player of its own
    assert "0.912" in page.html and "0:02.0" in page.html
    assert "the query is silent" in page.html
    assert f"not embedded: {html.escape(f'cannot open {HOSTILE}')}" in page.html and HOSTILE not in page.html
    results = json.loads(search_results.read_text())
    results[0]["results"][0]["path"] = str(tmp_path / "deleted.wav")
    search_results.write_text(json.dumps(results))
    with pytest.raises(AudioReadError, match="hit 1 of .*deleted.wav does not exist"):
        search_page(tmp_path / "other.html", search_results, "search")
    search_results.write_text(json.dumps({"query": "x"}))
    with pytest.raises(MixrepError, match="not the output of `mixrep search --json`"):
        search_page(tmp_path / "other.html", search_results, "search")
    assert not (tmp_path / "other.html").exists()


def test_describe_page_tables_the_readings_with_spread_and_unit(tmp_path, describe_result, mix_run):
    page = describe_page(tmp_path / "describe.html", describe_result, "describe", seconds=0.5)
    assert [p[0] for p in embedded_audio(page.html)] == ["input"]
    assert "<td>drums</td><td>fader</td><td class=\"number\">-2.5 \u00b1 0.75</td><td>dB</td>" in page.html
    assert "<td>drums</td><td>compressor</td><td class=\"number\">0.83</td><td></td>" in page.html
    quiet = describe_page(tmp_path / "quiet.html", describe_result, "describe", audio=False)
    assert "<audio" not in quiet.html
    data = json.loads(describe_result.read_text())
    data["input"] = str(tmp_path / "moved")
    describe_result.write_text(json.dumps(data))
    with pytest.raises(MixrepError, match="moved that .* names does not exist.*--no-audio"):
        describe_page(tmp_path / "x.html", describe_result, "describe")


def test_report_mix_command_writes_the_page_and_prints_player_sizes(tmp_path, mix_run, capsys):
    page = tmp_path / "report.html"
    code = main(["report", "mix", "--out", str(mix_run.out), "--tracks", str(mix_run.tracks), "--reference",
                 str(mix_run.reference), "--render", str(mix_run.render), "--html", str(page),
                 "--excerpt-seconds", "1"])
    printed = capsys.readouterr().out
    assert code == 0 and page.is_file()
    assert re.search(r"players: reference 1\.0 s \d+ KB, raw sum 1\.0 s \d+ KB, result 1\.0 s \d+ KB, "
                     r"pedalboard render 1\.0 s \d+ KB", printed), printed
    text = page.read_text(encoding="utf-8")
    assert "<h2>Settings</h2>" in text and "data:image/png;base64," in text  # OUT.json and OUT.png by default
    code = main(["report", "mix", "--out", str(mix_run.out), "--tracks", str(tmp_path / "no-tracks"),
                 "--html", str(tmp_path / "never.html")])
    assert code == 2 and "no-tracks does not exist" in capsys.readouterr().err
    mix_run.settings.unlink()
    code = main(["report", "mix", "--out", str(mix_run.out), "--html", str(tmp_path / "never.html")])
    assert code == 2 and "mix.json does not exist" in capsys.readouterr().err
    assert main(["report", "mix", "--out", str(mix_run.out), "--no-settings", "--no-figure", "--excerpt-seconds", "1",
                 "--html", str(tmp_path / "bare.html")]) == 0
    bare = (tmp_path / "bare.html").read_text()
    # the result and, found beside it (OUT.pedalboard.wav, where `mixrep mix --export pedalboard` writes), the render
    assert "<h2>Settings</h2>" not in bare and "<img" not in bare and bare.count("<audio ") == 2
    assert "pedalboard render" in bare
    assert not (tmp_path / "never.html").exists()
