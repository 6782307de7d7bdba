"""Stage 2 regression head: raw tracks + a reference's style embedding -> console parameters.

The structure of the Differentiable Mixing Console (Steinmetz et al., ICASSP 2021): a weight-shared
track encoder turns each raw track into an embedding; the context is the masked mean of the
track embeddings; a weight-shared post-processor maps ``[track embedding, context, reference]``
to that track's channel-strip parameters; a master head maps ``[group context, context,
reference]`` to each subgroup bus's parameters. Every output is squashed into its raw parameter's
safe range (``low + (high - low) * sigmoid``), so predictions can never leave the ranges the
console declares. The head is permutation-equivariant over tracks: nothing depends on their order.

The head knows the console only as plain data (the strip entries of
:class:`mixrep.console.strips.StripLayout`, stored in :class:`HeadConfig`), so a checkpoint
describes itself and this module does not import the console.

Shape:
    tracks ``(batch, tracks, 2, samples)``, ``track_mask`` / ``track_groups`` ``(batch, tracks)``,
    reference ``(batch, reference_dim)`` -> track rows ``(batch, tracks, track_size)`` and group
    rows ``(batch, groups, group_size)``.

References:
    Christian J. Steinmetz, Jordi Pons, Santiago Pascual, Joan Serrà, "Automatic multitrack mixing with
    a differentiable mixing console of neural audio effects", ICASSP 2021.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
import torchaudio
from torch import Tensor, nn

from mixrep.constants import STEMS
from mixrep.frontend.features import compute_mix_features

INTRINSIC = ("rms_db", "crest_db", "lufs", "band0_db", "band1_db", "band2_db", "band3_db", "band4_db", "band5_db",
             "band6_db", "band7_db", "tilt_db_per_octave", "flatness_db", "ild_db", "lr_correlation", "mid_side_db")
"""The front end's per-signal mix features (level, spectrum, stereo) that a track and a stem share."""
FEATURE_SCALE = 0.1
"""Scale of the relational inputs (mostly dB) before the MLPs."""

LOG_FLOOR = 1e-8
REFERENCE_Z_LIMIT = 8.0
"""Standardised reference inputs are clamped to +-this many training standard deviations: a
reference unlike every training reference cannot drive the MLP far outside the range it was trained
on. Training-split references lie within it (docs/transfer.md)."""
DEGENERATE_SCALE = 0.01
"""A reference input whose training spread is at most this (e.g. the mix's loudness, -14 LUFS in
every training reference: spread 0.003 LU, floored at 1e-3) carried no information in training; it
enters the head at its training mean (z = 0) instead of as a z-score in the hundreds."""


@dataclass(frozen=True)
class HeadConfig:
    """Everything needed to rebuild a head (stored in its checkpoint).

    Attributes:
        track_entries, group_entries: the strip layouts (``StripLayout.describe()``): one dict per
            raw parameter with ``node_type``, ``name``, ``shape``, ``offset``, ``low``, ``high``,
            ``init``.
        reference_dim: size of the reference vector: the style embedding, followed by the
            reference's front-end mix features when ``reference_features`` is set.
        reference_features: number of mix features appended to the embedding (0: none); they are
            standardised with the stored ``reference_mean`` / ``reference_scale`` buffers.
        sample_rate: rate of the tracks in Hz.
        n_fft, hop_length, n_mels: the track encoder's mel spectrogram (mid and side).
        channels: conv channels of the track encoder (each block halves the mel axis).
        track_dim: per-track embedding size; hidden: MLP width.
        basis_size: entries whose last axis is longer than twice this are predicted as that many
            coefficients of a smooth cosine basis along the axis (EQ curves, reverb spectra).
        groups: number of subgroup buses (the stem classes).
        feature_names: names of the mix features appended to the reference embedding (the front
            end's ``feature_names``), when ``reference_features`` > 0. Each strip then also sees
            its stem's features in the reference, the same features of its own raw track, and
            their difference (what level, EQ and stereo changes the reference implies).
    """

    track_entries: tuple[dict, ...]
    group_entries: tuple[dict, ...]
    reference_dim: int
    sample_rate: int
    reference_features: int = 0
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    channels: tuple[int, ...] = (16, 32, 64)
    track_dim: int = 128
    hidden: int = 256
    basis_size: int = 12
    groups: int = len(STEMS)
    feature_names: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channels"] = list(self.channels)
        data["feature_names"] = list(self.feature_names)
        data["track_entries"] = [dict(e) for e in self.track_entries]
        data["group_entries"] = [dict(e) for e in self.group_entries]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> HeadConfig:
        data = dict(data)
        data["channels"] = tuple(data.get("channels", cls.channels))
        data["feature_names"] = tuple(data.get("feature_names", ()))
        data["track_entries"] = tuple(dict(e) for e in data["track_entries"])
        data["group_entries"] = tuple(dict(e) for e in data["group_entries"])
        return cls(**data)

    @staticmethod
    def row_size(entries: tuple[dict, ...]) -> int:
        return sum(math.prod(e["shape"]) for e in entries)

    @staticmethod
    def types(entries: tuple[dict, ...]) -> list[str]:
        """Processor types of a strip, in chain order."""
        return list(dict.fromkeys(e["node_type"] for e in entries))


class HeadOutput(NamedTuple):
    """What :class:`RegressionHead` returns.

    Attributes:
        track_rows: ``(batch, tracks, track_size)`` raw strip parameters (padded rows hold the
            initial values).
        group_rows: ``(batch, groups, group_size)`` raw bus parameters.
        group_mask: ``(batch, groups)`` True where the song has a track of that group.
        track_keep, group_keep: ``(batch, tracks, types)`` / ``(batch, groups, types)`` logits of
            the probability that each processor of a strip is in the graph (types in chain order).
    """

    track_rows: Tensor
    group_rows: Tensor
    group_mask: Tensor
    track_keep: Tensor
    group_keep: Tensor


class RangeDecoder(nn.Module):
    """Hidden features -> raw parameter rows inside each entry's safe range.

    Starts at the entries' initial values (zero-initialised last layer), i.e. a near-transparent
    console. Long axes are decoded through a fixed smooth cosine basis.
    """

    def __init__(self, entries: tuple[dict, ...], hidden: int, basis_size: int) -> None:
        super().__init__()
        self.entries = entries
        self.size = HeadConfig.row_size(entries)
        plan, outputs = [], 0
        bases = []
        for e in entries:
            shape = tuple(e["shape"])
            last = shape[-1] if shape else 1
            smooth = bool(shape) and last > 2 * basis_size
            coeffs = math.prod(shape[:-1]) * basis_size if smooth else max(1, math.prod(shape))
            plan.append((outputs, coeffs, smooth, shape))
            outputs += coeffs
            if smooth:
                n = torch.arange(last, dtype=torch.float64)
                k = torch.arange(basis_size, dtype=torch.float64)[:, None]
                bases.append(torch.cos(math.pi * k * (n + 0.5) / last).float())  # DCT-II rows
        self.plan = plan
        self.linear = nn.Linear(hidden, outputs)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        for i, b in enumerate(bases):
            self.register_buffer(f"basis{i}", b, persistent=False)
        low, high, centre = [], [], []
        for e in entries:
            n = max(1, math.prod(e["shape"]))
            fraction = min(max((e["init"] - e["low"]) / (e["high"] - e["low"]), 0.02), 0.98)
            low.append(torch.full((n,), e["low"]))
            high.append(torch.full((n,), e["high"]))
            centre.append(torch.full((n,), math.log(fraction / (1.0 - fraction))))
        self.register_buffer("low", torch.cat(low), persistent=False)
        self.register_buffer("high", torch.cat(high), persistent=False)
        # the logits' starting point (persistent: a trained head may start from the training mean)
        self.register_buffer("centre", torch.cat(centre))

    @torch.no_grad()
    def start_at(self, rows: Tensor) -> None:
        """Make ``rows`` ``(size,)`` (raw values, e.g. the mean training parameters) the output
        of the untrained decoder (whose last layer is zero)."""
        fraction = ((rows.to(self.low) - self.low) / (self.high - self.low)).clamp(0.02, 0.98)
        self.centre.copy_(torch.log(fraction / (1.0 - fraction)))

    def forward(self, h: Tensor) -> Tensor:
        """``(..., hidden)`` -> ``(..., size)`` raw values, each in ``[low, high]``."""
        z = self.linear(h)
        parts, basis = [], 0
        for start, coeffs, smooth, shape in self.plan:
            chunk = z[..., start: start + coeffs]
            if smooth:
                b = getattr(self, f"basis{basis}")
                basis += 1
                chunk = (chunk.reshape(*z.shape[:-1], -1, b.shape[0]) @ b).reshape(*z.shape[:-1], -1)
            parts.append(chunk)
        logits = torch.cat(parts, -1) + self.centre
        return self.low + (self.high - self.low) * torch.sigmoid(logits)


def _mlp(inputs: int, hidden: int, layers: int = 2) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(inputs if i == 0 else hidden, hidden), nn.GELU()]
    return nn.Sequential(*blocks)


class TrackEncoder(nn.Module):
    """A raw track -> an embedding: mid/side log-mel, strided convs over frequency, mean and
    standard deviation over time.

    Shape:
        ``(n, 2, samples)`` -> ``(n, track_dim)``.
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels,
            f_min=20.0, power=2.0)
        blocks, c_in = [], 2
        for c in config.channels:
            blocks += [nn.Conv2d(c_in, c, 3, stride=(2, 1), padding=1), nn.GELU()]
            c_in = c
        self.convs = nn.Sequential(*blocks)
        bands = config.n_mels
        for _ in config.channels:
            bands = (bands + 1) // 2
        self.project = nn.Sequential(nn.Linear(2 * c_in * bands, config.track_dim), nn.GELU())

    def forward(self, tracks: Tensor) -> Tensor:
        mid = (tracks[:, 0] + tracks[:, 1]) / 2
        side = (tracks[:, 0] - tracks[:, 1]) / 2
        spec = self.mel(torch.stack([mid, side], 1).float())  # (n, 2, mels, frames)
        x = torch.log10(spec + LOG_FLOOR) / 4.0 + 1.0
        x = self.convs(x)  # (n, c, bands, frames)
        x = x.flatten(1, 2)
        pooled = torch.cat([x.mean(-1), x.std(-1, unbiased=False)], -1)
        return self.project(pooled)


def _intrinsic(signals: Tensor, sample_rate: int) -> Tensor:
    """The :data:`INTRINSIC` features of signals ``(n, 2, samples)`` -> ``(n, 16)`` (each as a mix)."""
    stems = torch.zeros(signals.shape[0], len(STEMS), *signals.shape[1:], dtype=signals.dtype, device=signals.device)
    stems[:, 0] = signals
    features = compute_mix_features(stems.float(), sample_rate)
    return features[:, -len(INTRINSIC):]  # the "mix" block comes last, in INTRINSIC order


def masked_mean(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Mean of ``x`` over ``dim`` where ``mask`` (broadcast to ``x`` without its last axis) is
    True; zeros where nothing is valid."""
    weight = mask.to(x.dtype).unsqueeze(-1)
    return (x * weight).sum(dim) / weight.sum(dim).clamp(min=1.0)


class RegressionHead(nn.Module):
    """Tracks + reference embedding -> strip and bus parameters (see the module docstring)."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        d, h = config.track_dim, config.hidden
        self.track_encoder = TrackEncoder(config)
        self.group_embedding = nn.Embedding(config.groups, 16)
        self.reference = nn.Sequential(nn.Linear(config.reference_dim, d), nn.GELU())
        # standardisation of the reference vector (identity until set from training data)
        self.register_buffer("reference_mean", torch.zeros(config.reference_dim))
        self.register_buffer("reference_scale", torch.ones(config.reference_dim))
        relational = 0
        if config.reference_features:
            names = list(config.feature_names)
            if len(names) != config.reference_features:
                raise ValueError(f"{config.reference_features} reference features but {len(names)} feature names")
            offset = config.reference_dim - config.reference_features
            stem_index = [[offset + names.index(f"{stem}.{n}") for n in (*INTRINSIC, "rel_loudness_lu")] for stem in STEMS]
            mix_index = [offset + names.index(f"mix.{n}") for n in INTRINSIC]
            self.register_buffer("stem_index", torch.tensor(stem_index), persistent=False)  # (4, 17)
            self.register_buffer("mix_index", torch.tensor(mix_index), persistent=False)  # (16,)
            relational = 2 * len(INTRINSIC) + 1 + len(INTRINSIC)
        self.relational = relational
        self.post_processor = _mlp(3 * d + 16 + relational, h)
        self.master = _mlp(3 * d + 16 + relational, h)
        self.track_decoder = RangeDecoder(config.track_entries, h, config.basis_size)
        self.group_decoder = RangeDecoder(config.group_entries, h, config.basis_size)
        # graph prediction: is each processor of the strip in the graph?
        self.track_keep = nn.Linear(h, len(HeadConfig.types(config.track_entries)))
        self.group_keep = nn.Linear(h, len(HeadConfig.types(config.group_entries)))

    def _track_relations(self, flat: Tensor, reference: Tensor, groups: Tensor, b: int, k: int) -> Tensor:
        """Per track: its stem's reference features, their difference to the raw track's, the
        reference mix's features: ``(b, k, relational)``."""
        raw = _intrinsic(flat, self.config.sample_rate).reshape(b, k, -1)
        stem = reference.float()[:, self.stem_index]  # (b, 4, 17)
        own = torch.gather(stem, 1, groups[..., None].expand(b, k, stem.shape[-1]))  # (b, k, 17)
        mix = reference.float()[:, self.mix_index][:, None].expand(b, k, -1)
        n = len(INTRINSIC)
        return FEATURE_SCALE * torch.cat([own, own[..., :n] - raw, mix], -1)

    def _group_relations(self, tracks: Tensor, member: Tensor, reference: Tensor, b: int) -> Tensor:
        """Per bus: its stem's reference features, their difference to the raw bus sum's, the mix's."""
        sums = torch.einsum("bgk,bkcs->bgcs", member.to(tracks.dtype), tracks)  # (b, G, 2, samples)
        raw = _intrinsic(sums.reshape(-1, *sums.shape[2:]), self.config.sample_rate).reshape(b, self.config.groups, -1)
        stem = reference.float()[:, self.stem_index]
        mix = reference.float()[:, self.mix_index][:, None].expand(b, self.config.groups, -1)
        n = len(INTRINSIC)
        return FEATURE_SCALE * torch.cat([stem, stem[..., :n] - raw, mix], -1)

    @torch.no_grad()
    def start_keep_at(self, track_frequency: Tensor, group_frequency: Tensor) -> None:
        """Start the graph-prediction logits at per-type keep frequencies ``(types,)``."""
        for layer, p in ((self.track_keep, track_frequency), (self.group_keep, group_frequency)):
            p = p.to(layer.bias).clamp(0.02, 0.98)
            layer.weight.zero_()
            layer.bias.copy_(torch.log(p / (1.0 - p)))

    @torch.no_grad()
    def set_reference_statistics(self, references: Tensor) -> None:
        """Standardise reference vectors with the mean and spread of ``references`` ``(n, reference_dim)``."""
        self.reference_mean.copy_(references.mean(0))
        self.reference_scale.copy_(references.std(0).clamp(min=1e-3))

    def standardise_reference(self, reference: Tensor, clamp: bool = True) -> Tensor:
        """Reference vectors ``(batch, reference_dim)`` as z-scores against the training references:
        0 for inputs without training spread (:data:`DEGENERATE_SCALE`), the others within
        +-:data:`REFERENCE_Z_LIMIT` unless ``clamp`` is False."""
        z = (reference.float() - self.reference_mean) / self.reference_scale
        z = torch.where(self.reference_scale > DEGENERATE_SCALE, z, torch.zeros_like(z))
        return z.clamp(-REFERENCE_Z_LIMIT, REFERENCE_Z_LIMIT) if clamp else z

    def forward(self, tracks: Tensor, track_mask: Tensor, track_groups: Tensor, reference: Tensor) -> HeadOutput:
        if tracks.ndim != 4 or tracks.shape[2] != 2:
            raise ValueError(f"tracks must be (batch, tracks, 2, samples), got {tuple(tracks.shape)}")
        b, k = tracks.shape[:2]
        if track_mask.shape != (b, k) or track_groups.shape != (b, k):
            raise ValueError(f"track_mask and track_groups must be ({b}, {k}), got {tuple(track_mask.shape)} "
                             f"and {tuple(track_groups.shape)}")
        if reference.shape != (b, self.config.reference_dim):
            raise ValueError(f"reference must be ({b}, {self.config.reference_dim}), got {tuple(reference.shape)}")
        mask = track_mask.bool()
        flat = tracks.reshape(b * k, *tracks.shape[2:])
        embedded = self.track_encoder(flat).reshape(b, k, -1)
        embedded = embedded * mask.unsqueeze(-1)
        context = masked_mean(embedded, mask, 1)  # (b, d)
        ref = self.reference(self.standardise_reference(reference))  # (b, d)
        groups = track_groups.clamp(0, self.config.groups - 1)
        track_parts = [embedded, context[:, None].expand(b, k, -1), ref[:, None].expand(b, k, -1),
                       self.group_embedding(groups)]
        if self.relational:
            track_parts.append(self._track_relations(flat, reference, groups, b, k))
        track_hidden = self.post_processor(torch.cat(track_parts, -1))
        track_rows = self.track_decoder(track_hidden)
        # the bus of group g sees the mean of its tracks
        member = (groups[:, None, :] == torch.arange(self.config.groups, device=groups.device)[None, :, None])
        member = member & mask[:, None, :]  # (b, G, k)
        group_mask = member.any(-1)
        weight = member.to(embedded.dtype)
        group_context = (weight @ embedded) / weight.sum(-1, keepdim=True).clamp(min=1.0)  # (b, G, d)
        g = self.config.groups
        ids = torch.arange(g, device=groups.device).expand(b, g)
        group_parts = [group_context, context[:, None].expand(b, g, -1), ref[:, None].expand(b, g, -1),
                       self.group_embedding(ids)]
        if self.relational:
            group_parts.append(self._group_relations(tracks, member, reference, b))
        group_hidden = self.master(torch.cat(group_parts, -1))
        group_rows = self.group_decoder(group_hidden)
        return HeadOutput(track_rows, group_rows, group_mask, self.track_keep(track_hidden), self.group_keep(group_hidden))
