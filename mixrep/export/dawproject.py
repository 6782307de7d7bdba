"""A mix style as a DAWproject file (the open exchange format: XML in a zip), and a reader back.

DAWproject (Bitwig and PreSonus, ``github.com/bitwig/dawproject``, schema ``Project.xsd``) names
its mixer devices instead of storing a plug-in's private state: an ``Equalizer`` holds bands with
type, frequency (Hz), gain (dB) and Q; a ``Compressor`` threshold (dB), ratio, attack and release
(s) and output gain; a ``Limiter`` input gain, threshold and release. The importing DAW maps them
onto its own EQ and dynamics, so Q and every value travel as numbers, not through a plug-in's
undocumented chunk. The layout mirrors :mod:`mixrep.export.reaper`:

- a master channel (EQ, compressor, limiter; the loudness gain as its volume);
- one folder track per stem class (a submix channel), the song's tracks inside it, each an audio
  clip of its file (embedded in the zip under ``audio/``, or referenced where it lies with
  ``embed_audio=False``), its volume, pan, EQ (high-pass and low-pass bands of order 2, shelves,
  bells) and compressor (threshold made absolute from the track's measured level);
- "Delay" and "Reverb" effect channels receiving post-fader sends. DAWproject has no delay or reverb
  device type: each bus holds a ``BuiltinDevice`` named ``Delay`` / ``Reverb`` whose parameters
  carry the settings (seconds, linear feedback; room size, damping, width), for a person or an
  importer that reads them; saturation and width are not DAWproject devices either and are named
  in the project's comment.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from mixrep.audio.primitives import db_to_gain
from mixrep.audio.stems import stem_index
from mixrep.constants import STEMS
from mixrep.errors import MixrepError
from mixrep.export.reaper import checked_project_song, unset_settings
from mixrep.files import atomic_write, check_output_file
from mixrep.styles.mix_style import ChannelStrip, CompressorSettings, EqBand, MixLevels, MixStyle, mix_levels

DAWPROJECT_VERSION = "1.0"

_BAND_TYPES = {"low_shelf": "lowShelf", "high_shelf": "highShelf", "peak": "bell"}
_BUTTERWORTH_Q = 1.0 / math.sqrt(2.0)


class DawProjectError(MixrepError):
    """A DAWproject file that cannot be read as one."""


class _Ids:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"id{self.count}"


def _real(parent: ET.Element, tag: str, value: float, unit: str, ids: _Ids, **limits: float) -> ET.Element:
    attrs = {"id": ids(), "unit": unit, "value": repr(float(value))}
    attrs.update({k: repr(float(v)) for k, v in limits.items()})
    return ET.SubElement(parent, tag, attrs)


def _equalizer(parent: ET.Element, bands: Sequence[EqBand], ids: _Ids, highpass_hz: float | None = None,
               lowpass_hz: float | None = None) -> None:
    rows = []
    if highpass_hz is not None:
        rows.append(("highPass", highpass_hz, None, _BUTTERWORTH_Q))
    if lowpass_hz is not None:
        rows.append(("lowPass", lowpass_hz, None, _BUTTERWORTH_Q))
    rows += [(_BAND_TYPES[b.kind], b.frequency_hz, b.gain_db, b.q) for b in bands]
    if not rows:
        return
    eq = ET.SubElement(parent, "Equalizer", {"id": ids(), "deviceName": "EQ", "deviceRole": "audioFX"})
    for kind, frequency, gain, q in rows:
        band = ET.SubElement(eq, "Band", {"type": kind, **({"order": "2"} if gain is None else {})})
        _real(band, "Freq", frequency, "hertz", ids)
        if gain is not None:
            _real(band, "Gain", gain, "decibel", ids)
        _real(band, "Q", q, "linear", ids)


def _compressor(parent: ET.Element, c: CompressorSettings, input_db: float, ids: _Ids) -> None:
    if not math.isfinite(input_db):
        return  # a silent input: the renderer bypasses the compressor
    comp = ET.SubElement(parent, "Compressor", {"id": ids(), "deviceName": "Compressor", "deviceRole": "audioFX"})
    _real(comp, "Attack", c.attack_ms / 1000.0, "seconds", ids)
    ET.SubElement(comp, "AutoMakeup", {"id": ids(), "value": "false"})
    _real(comp, "OutputGain", c.makeup_db, "decibel", ids)
    _real(comp, "Ratio", c.ratio, "linear", ids)
    _real(comp, "Release", c.release_ms / 1000.0, "seconds", ids)
    _real(comp, "Threshold", input_db + c.threshold_db, "decibel", ids)


def _channel(track: ET.Element, role: str, pan: float, destination: str | None, ids: _Ids
             ) -> tuple[ET.Element, ET.Element]:
    attrs = {"id": ids(), "role": role, "audioChannels": "2"}
    if destination is not None:
        attrs["destination"] = destination
    channel = ET.SubElement(track, "Channel", attrs)
    devices = ET.SubElement(channel, "Devices")
    # pan: DAWproject's normalised 0 (left) .. 1 (right), 0.5 centre
    _real(channel, "Pan", (pan + 1.0) / 2.0, "normalized", ids, min=0.0, max=1.0)
    return channel, devices


def _volume(channel: ET.Element, volume_db: float, ids: _Ids) -> None:
    _real(channel, "Volume", db_to_gain(volume_db), "linear", ids, min=0.0, max=2.0)


def _unset(names: Sequence[str], strips: Sequence[ChannelStrip]) -> str:
    return "mixrep export; not set as devices: " + ("; ".join(unset_settings(names, strips)) or "none")


def project_xml(style: MixStyle, names: Sequence[str], stems: Sequence[str], media: Sequence[str],
                sample_rate: int, seconds: float, levels: MixLevels, external: bool) -> bytes:
    """``project.xml`` of :func:`write_dawproject` (levels already measured)."""
    ids = _Ids()
    strips = [style.strip_for(n, s) for n, s in zip(names, stems)]
    project = ET.Element("Project", {"version": DAWPROJECT_VERSION})
    ET.SubElement(project, "Application", {"name": "mixrep", "version": "1"})
    structure = ET.SubElement(project, "Structure")

    master_track = ET.SubElement(structure, "Track", {"id": ids(), "name": "Master", "contentType": "audio",
                                                      "loaded": "true", "comment": _unset(names, strips)})
    master, devices = _channel(master_track, "master", 0.0, None, ids)
    _equalizer(devices, style.master.eq, ids)
    if style.master.compressor is not None and levels.master_input_db is not None:
        _compressor(devices, style.master.compressor, levels.master_input_db, ids)
    peak = levels.limiter_input_peak_db
    if style.master.limiter is not None and peak is not None and math.isfinite(peak):
        lim = style.master.limiter
        limiter = ET.SubElement(devices, "Limiter", {"id": ids(), "deviceName": "Limiter", "deviceRole": "audioFX"})
        _real(limiter, "InputGain", lim.ceiling_db + lim.drive_db - peak, "decibel", ids)
        _real(limiter, "Release", lim.release_ms / 1000.0, "seconds", ids)
        _real(limiter, "Threshold", lim.ceiling_db, "decibel", ids)
    _volume(master, levels.loudness_gain_db, ids)
    master_id = master.get("id")

    buses: dict[str, str] = {}
    for bus, settings in (("Delay", style.delay), ("Reverb", style.reverb)):
        if settings is None:
            continue
        track = ET.SubElement(structure, "Track", {"id": ids(), "name": bus, "contentType": "audio", "loaded": "true"})
        channel, devices = _channel(track, "effect", 0.0, master_id, ids)
        device = ET.SubElement(devices, "BuiltinDevice", {"id": ids(), "deviceName": bus, "deviceRole": "audioFX"})
        parameters = ET.SubElement(device, "Parameters")
        if bus == "Delay":
            _real(parameters, "RealParameter", settings.delay_seconds, "seconds", ids).set("name", "Time")
            _real(parameters, "RealParameter", settings.feedback, "linear", ids).set("name", "Feedback")
        else:
            for key in ("room_size", "damping", "width"):
                _real(parameters, "RealParameter", getattr(settings, key), "normalized", ids).set("name", key)
        _real(parameters, "RealParameter", 1.0, "linear", ids).set("name", "Wet")
        _real(parameters, "RealParameter", 0.0, "linear", ids).set("name", "Dry")
        _volume(channel, 0.0, ids)
        buses[bus] = channel.get("id")

    arrangement = ET.SubElement(project, "Arrangement", {"id": ids()})
    lanes = ET.SubElement(arrangement, "Lanes", {"id": ids(), "timeUnit": "seconds"})
    for stem in STEMS:
        members = [i for i, s in enumerate(stems) if stem_index(s) == stem_index(stem)]
        if not members:
            continue
        folder = ET.SubElement(structure, "Track", {"id": ids(), "name": f"{stem} bus", "contentType": "audio tracks",
                                                    "loaded": "true"})
        submix, _ = _channel(folder, "submix", 0.0, master_id, ids)
        _volume(submix, 0.0, ids)
        for i in members:
            strip = strips[i]
            track = ET.SubElement(folder, "Track", {"id": ids(), "name": names[i], "contentType": "audio",
                                                    "loaded": "true"})
            channel, devices = _channel(track, "regular", strip.pan, submix.get("id"), ids)
            _equalizer(devices, strip.eq, ids, strip.highpass_hz, strip.lowpass_hz)
            if strip.compressor is not None:
                _compressor(devices, strip.compressor, levels.strip_input_db[i], ids)
            sends = [(bus, getattr(strip, f"{bus.lower()}_send_db")) for bus in buses]
            sends = [(bus, db) for bus, db in sends if db is not None]
            if sends:
                element = ET.SubElement(channel, "Sends")
                for bus, send_db in sends:
                    send = ET.SubElement(element, "Send", {"id": ids(), "destination": buses[bus], "type": "post"})
                    _real(send, "Volume", db_to_gain(send_db), "linear", ids, min=0.0, max=2.0)
            _volume(channel, strip.fader_db, ids)
            lane = ET.SubElement(lanes, "Lanes", {"id": ids(), "track": track.get("id")})
            clips = ET.SubElement(lane, "Clips", {"id": ids()})
            clip = ET.SubElement(clips, "Clip", {"time": "0.0", "duration": repr(seconds), "contentTimeUnit": "seconds",
                                                 "playStart": "0.0", "name": names[i]})
            audio = ET.SubElement(clip, "Audio", {"id": ids(), "duration": repr(seconds), "channels": "2",
                                                  "sampleRate": str(int(sample_rate)), "timeUnit": "seconds"})
            ET.SubElement(audio, "File", {"path": media[i], **({"external": "true"} if external else {})})
    ET.indent(project)
    return ET.tostring(project, encoding="utf-8", xml_declaration=True)


def write_dawproject(path: str | os.PathLike, style: MixStyle, track_files: Sequence[str | os.PathLike],
                     names: Sequence[str], stems: Sequence[str | int], sample_rate: int, tracks: np.ndarray,
                     *, embed_audio: bool = True, levels: MixLevels | None = None) -> Path:
    """Write a ``.dawproject`` of a song's raw tracks mixed in ``style`` (see the module docstring).

    Args:
        path: the ``.dawproject`` file to write (atomically).
        style, track_files, names, stems, sample_rate, tracks: as :func:`~mixrep.export.reaper.write_reaper_project`.
        embed_audio: copy the track files into the zip (``audio/<n>_<file name>``, the file moves
            whole); ``False`` references them by absolute path.
        levels: as :func:`~mixrep.export.reaper.write_reaper_project`.

    Raises:
        StyleFileError: a setting outside the renderer's ranges, a track without a strip.
        OutputError: ``path`` cannot be written (checked before the levels are measured).

    Shape:
        tracks ``(tracks, channels=2, samples)``.
    """
    path = check_output_file(path, "DAWproject file")
    checked, files = checked_project_song(style, track_files, names, stems, sample_rate, tracks)
    media = ([f"audio/{i}_{f.name}" for i, f in enumerate(files)] if embed_audio
             else [str(f.resolve()) for f in files])
    if levels is None:
        levels = mix_levels(tracks, checked.style, sample_rate, checked.names, checked.stems)
    xml = project_xml(checked.style, checked.names, checked.stems, media, sample_rate,
                      tracks.shape[-1] / sample_rate, levels, external=not embed_audio)
    metadata = ET.tostring(ET.Element("MetaData"), encoding="utf-8", xml_declaration=True)
    with atomic_write(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.xml", xml)
        archive.writestr("metadata.xml", metadata)
        if embed_audio:
            for file, name in zip(files, media):
                archive.write(file, name, compress_type=zipfile.ZIP_STORED)
    return path


# ----------------------------------------------------------------------------- read


@dataclass
class DawDevice:
    kind: str                       # Equalizer, Compressor, Limiter, BuiltinDevice
    name: str
    values: dict[str, float] = field(default_factory=dict)     # Compressor / Limiter / BuiltinDevice parameters
    bands: list[tuple[str, float, float | None, float | None]] = field(default_factory=list)  # type, Hz, dB, Q


@dataclass
class DawTrack:
    name: str
    role: str
    volume_db: float
    pan: float                      # -1 .. 1
    parent: str | None
    devices: list[DawDevice]
    sends: list[tuple[str, float]]  # (destination track name, dB)
    files: list[str]
    comment: str = ""


def _value(element: ET.Element | None) -> float | None:
    return None if element is None else float(element.get("value"))


def read_dawproject(path: str | os.PathLike) -> list[DawTrack]:
    """The tracks of a ``.dawproject`` (this writer's), with devices, sends and clip files.

    Raises:
        DawProjectError: not a zip holding a readable ``project.xml``.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            root = ET.fromstring(archive.read("project.xml"))
    except (OSError, KeyError, zipfile.BadZipFile, ET.ParseError) as e:
        raise DawProjectError(f"cannot read the DAWproject {path}: {e}") from e
    try:
        return _tracks(root)
    except (TypeError, ValueError) as e:
        raise DawProjectError(f"{path}: a malformed value in project.xml ({e})") from e


def _tracks(root: ET.Element) -> list[DawTrack]:
    channel_track: dict[str, str] = {}
    for track in root.iter("Track"):
        channel = track.find("Channel")
        if channel is not None:
            channel_track[channel.get("id")] = track.get("name", "")
    files: dict[str, list[str]] = {}
    for lane in root.iter("Lanes"):
        if lane.get("track"):
            files[lane.get("track")] = [f.get("path") for f in lane.iter("File")]
    out = []
    for track in root.iter("Track"):
        channel = track.find("Channel")
        if channel is None:
            continue
        devices = []
        chain = channel.find("Devices")
        for device in [] if chain is None else list(chain):
            item = DawDevice(device.tag, device.get("deviceName", ""))
            for band in device.findall("Band"):
                item.bands.append((band.get("type"), _value(band.find("Freq")), _value(band.find("Gain")),
                                   _value(band.find("Q"))))
            for child in device:
                if child.get("unit") is not None:
                    item.values[child.tag] = float(child.get("value"))
            for parameter in device.iter("RealParameter"):
                item.values[parameter.get("name")] = float(parameter.get("value"))
            devices.append(item)
        volume = _value(channel.find("Volume")) or 0.0
        sends = [(channel_track.get(s.get("destination"), ""), 20 * math.log10(_value(s.find("Volume"))))
                 for s in channel.iter("Send")]
        out.append(DawTrack(track.get("name", ""), channel.get("role", ""),
                            20 * math.log10(volume) if volume > 0 else -math.inf,
                            2.0 * (_value(channel.find("Pan")) or 0.5) - 1.0,
                            channel_track.get(channel.get("destination")), devices, sends,
                            files.get(track.get("id"), []), track.get("comment", "")))
    return out
