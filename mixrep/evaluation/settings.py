"""Settings recovery: how much of a mix's settings an encoder's decoder, and probes, read back.

Items are built like those of the style-retrieval evaluation (:func:`~mixrep.retrieval.style_set.build_style_set`
in the ``mix_style`` space): every item is one song's clip mixed in one drawn style, so its true
settings vector is known (:func:`~mixrep.styles.settings_vector.settings_vector`). Four readers are
scored on the same held-out items, per settings group
(:data:`~mixrep.styles.settings_vector.GROUPS`):

- ``decoder``: the checkpoint's settings decoder (encoders trained with ``settings_weight > 0``; a
  checkpoint without one is scored by the other readers only);
- ``embedding probe``: ridge regression per value entry and logistic regression per presence entry on
  the encoder's embedding, fitted on items of the checkpoint's *training* songs (other styles);
- ``feature probe``: the same probes on the 116 handcrafted mix features of the four stems and the mix;
- ``descriptor probe``: the same probes on the per-stem descriptor (:mod:`mixrep.retrieval.descriptor`);
- ``mean``: every value predicted as its mean over the probes' training items (R^2 <= 0 by design,
  presence AUROC 0.5): the floor.

Scores: R^2 per value entry over the items where it is defined, averaged over a group's entries;
AUROC per presence entry (true presence = at least half the stem's tracks use the processor),
averaged over a group's entries that have both classes. The relative decoder is scored on pairs of
items, two styles of the same song and two styles of two songs: R^2 of the predicted difference
against the true one, per group, next to the difference of two absolute decodings and to ridge probes
on each input's pair ``[x_b - x_a, x_a]`` (fitted on pairs of the probes' items).

Shape:
    embeddings ``(items, dim)``, features ``(items, num_features)``, targets and masks
    ``(items, NUM_SETTINGS)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mixrep.evaluation.encoder import default_domains, open_domain, training_source
from mixrep.inference.style_encoder import StyleEncoder, load_checkpoint
from mixrep.models.decoder import SettingsDecoder
from mixrep.retrieval.style_set import StyleSet, build_style_set, embed_style_set
from mixrep.styles.mix_style import MixStyle
from mixrep.styles.settings_vector import GROUPS, NUM_SETTINGS, PRESENT, SETTINGS, relative_mask, settings_vector
from mixrep.styles.spaces import make_style_space

log = logging.getLogger(__name__)

READERS = ("decoder", "embedding probe", "feature probe", "descriptor probe", "mean")
PROBE_INPUTS = {"embedding probe": "embeddings", "feature probe": "features", "descriptor probe": "descriptor"}
"""Each probe reader and the :class:`SettingsItems` field it reads."""


@dataclass
class SettingsItems:
    """Encoded items with their true settings (see the module docstring for shapes)."""

    embeddings: np.ndarray
    decoder_inputs: np.ndarray
    features: np.ndarray
    descriptor: np.ndarray
    targets: np.ndarray
    masks: np.ndarray
    song_ids: np.ndarray
    style_ids: np.ndarray


def settings_items(encoder: StyleEncoder, style_set: StyleSet) -> SettingsItems:
    """Embed a ``mix_style`` style set and attach every item's true settings vector.

    Raises:
        ValueError: the set was not drawn from the ``mix_style`` space (no settings vectors).
    """
    if not style_set.styles or style_set.clips is None or any(s is None or "strips" not in s for s in style_set.styles):
        raise ValueError("settings recovery needs a style set drawn from the mix_style space")
    styles = [MixStyle.from_dict(s) for s in style_set.styles]
    vectors = [settings_vector(styles[style], *style_set.clips[song])
               for song, style in zip(style_set.song_ids, style_set.style_ids)]
    return SettingsItems(embed_style_set(encoder.model, style_set), _decoder_inputs(encoder, style_set),
                         style_set.features.numpy().astype(np.float64), np.asarray(style_set.descriptor, np.float64),
                         np.stack([v for v, _ in vectors]), np.stack([m for _, m in vectors]),
                         style_set.song_ids, style_set.style_ids)


@torch.no_grad()
def _decoder_inputs(encoder: StyleEncoder, style_set: StyleSet, batch_size: int = 32) -> np.ndarray:
    """What the decoders read of every item ``(items, size)`` (empty columns without decoders)."""
    if not encoder.decodes_settings:
        return np.zeros((len(style_set), 0), dtype=np.float32)
    model = encoder.model.eval()
    return torch.cat([model.decoder_input(style_set.mels[i:i + batch_size].to(encoder.device),
                                          style_set.features[i:i + batch_size].to(encoder.device)).float().cpu()
                      for i in range(0, len(style_set), batch_size)]).numpy()


@torch.no_grad()
def decoded(encoder: StyleEncoder, decoder_inputs: np.ndarray) -> np.ndarray:
    """The decoder's normalised values and presence probabilities ``(items, NUM_SETTINGS)``."""
    outputs = encoder.model.decode_settings(torch.as_tensor(decoder_inputs, device=encoder.device))
    return SettingsDecoder.presence_probabilities(outputs).cpu().numpy()


@dataclass
class Probes:
    """Linear probes per settings entry, fitted on one kind of input (see :func:`fit_probes`)."""

    models: dict[int, object] = field(default_factory=dict)
    means: np.ndarray = field(default_factory=lambda: np.zeros(NUM_SETTINGS))

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """``(items, dim)`` -> ``(items, NUM_SETTINGS)``: values, and presence probabilities."""
        out = np.tile(self.means, (len(inputs), 1))
        for column, model in self.models.items():
            if SETTINGS[column].kind == "presence":
                out[:, column] = model.predict_proba(inputs)[:, 1]
            else:
                out[:, column] = model.predict(inputs)
        return out


def fit_probes(inputs: np.ndarray, targets: np.ndarray, masks: np.ndarray) -> Probes:
    """Ridge (value entries; alpha by leave-one-out over a log grid) and logistic regression (presence
    entries, binarised at :data:`PRESENT`; C by 3-fold cross-validated AUROC) per entry, on z-scored ``inputs``
    (clipped to +-5),
    each on the items where its target is defined. An entry with one class only (or under 10 items)
    keeps its mean."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    def scaled(model):
        # z-scores clipped to +-5: a feature far outside its training range (another domain's floor
        # levels) must not throw a linear probe's prediction off by orders of magnitude
        return make_pipeline(StandardScaler(), FunctionTransformer(np.clip, kw_args={"a_min": -5.0, "a_max": 5.0}),
                             model)

    probes = Probes(means=_masked_means(targets, masks))
    for column, setting in enumerate(SETTINGS):
        rows = masks[:, column] > 0
        if rows.sum() < 10:
            continue
        y = targets[rows, column]
        if setting.kind == "presence":
            labels = (y >= PRESENT).astype(int)
            if labels.min() == labels.max() or min(labels.sum(), len(labels) - labels.sum()) < 5:
                continue
            search = GridSearchCV(LogisticRegression(max_iter=2000), {"C": np.logspace(-2, 1, 4)}, cv=3,
                                  scoring="roc_auc")
            model = scaled(search)
            probes.models[column] = model.fit(inputs[rows], labels)
        else:
            model = scaled(RidgeCV(alphas=np.logspace(-2, 4, 13)))
            probes.models[column] = model.fit(inputs[rows], y)
    return probes


def _masked_means(targets: np.ndarray, masks: np.ndarray) -> np.ndarray:
    return (targets * masks).sum(axis=0) / np.maximum(masks.sum(axis=0), 1.0)


MIN_ITEMS = 16
"""An entry is scored on at least this many items where it is defined (else left out)."""
MIN_SPREAD = 0.1
"""A value entry whose targets spread less than this (std, normalised units) is left out: its R^2
would measure noise around a near-constant."""


def entry_scores(predictions: np.ndarray, targets: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """R^2 (value entries) or AUROC (presence entries) per entry name, over the items where each is
    defined; entries with too few items (:data:`MIN_ITEMS`), too little spread (:data:`MIN_SPREAD`) or
    one class only are left out."""
    from sklearn.metrics import roc_auc_score

    scores = {}
    for column, setting in enumerate(SETTINGS):
        rows = masks[:, column] > 0
        if rows.sum() < MIN_ITEMS:
            continue
        y, p = targets[rows, column], predictions[rows, column]
        if setting.kind == "presence":
            labels = y >= PRESENT
            if labels.all() or not labels.any():
                continue
            scores[setting.name] = float(roc_auc_score(labels, p))
        else:
            total = float(np.square(y - y.mean()).sum())
            if total < MIN_SPREAD ** 2 * len(y):
                continue
            scores[setting.name] = 1.0 - float(np.square(y - p).sum()) / total
    return scores


def group_scores(scores: dict[str, float]) -> dict[str, dict[str, float]]:
    """``{group: {"r2": mean R^2 of its value entries, "auroc": mean AUROC of its presence entries}}``
    (a key is missing when the group has no scored entry of that kind)."""
    kinds = {s.name: (s.group, "r2" if s.kind == "value" else "auroc") for s in SETTINGS}
    collected: dict[str, dict[str, list[float]]] = {}
    for name, value in scores.items():
        group, kind = kinds[name]
        collected.setdefault(group, {}).setdefault(kind, []).append(value)
    return {g: {k: float(np.mean(v)) for k, v in collected[g].items()} for g in GROUPS if g in collected}


def relative_pairs(items: SettingsItems, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs ``(a, b)`` of items in different styles: ``same`` marks two styles of one song, else
    two songs. Every item is paired once with a same-song partner and once with another song's item
    (random, seeded). Returns ``(a, b, same)`` each ``(pairs,)``."""
    rng = np.random.default_rng(seed)
    a, b, same = [], [], []
    for i in range(len(items.song_ids)):
        for same_song in (True, False):
            candidates = np.flatnonzero((items.style_ids != items.style_ids[i])
                                        & ((items.song_ids == items.song_ids[i]) == same_song))
            if len(candidates):
                a.append(i)
                b.append(int(rng.choice(candidates)))
                same.append(same_song)
    return np.asarray(a), np.asarray(b), np.asarray(same)


def pair_data(items: SettingsItems, inputs: str, pairs: tuple[np.ndarray, np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A probe's view of pairs ``(a, b)``: inputs ``[x_b - x_a, x_a]``, the true differences and where
    they are defined (value entries defined in both)."""
    a, b = pairs
    x = getattr(items, inputs)
    masks = np.stack([relative_mask(items.masks[i], items.masks[j]) for i, j in zip(a, b)])
    return np.concatenate([x[b] - x[a], x[a]], axis=1), items.targets[b] - items.targets[a], masks


def fit_pair_probes(items: SettingsItems) -> dict[str, Probes]:
    """Ridge probes of settings differences per input (:data:`PROBE_INPUTS`), on :func:`relative_pairs`
    of ``items``."""
    a, b, _ = relative_pairs(items)
    return {reader: fit_probes(*pair_data(items, inputs, (a, b))) for reader, inputs in PROBE_INPUTS.items()}


@torch.no_grad()
def relative_scores(encoder: StyleEncoder, items: SettingsItems, pair_probes: dict[str, Probes]
                    ) -> dict[str, dict[str, dict[str, float]]]:
    """R^2 per group of the relative decoder, of the difference of two absolute decodings (encoders
    with decoders) and of the pair probes, on same-song and two-song pairs:
    ``{"same song" | "two songs": {reader: {group: r2}}}``."""
    a, b, same = relative_pairs(items)
    predictions = {}
    if encoder.decodes_settings:
        e = torch.as_tensor(items.decoder_inputs, device=encoder.device)
        predictions["relative decoder"] = encoder.model.decode_relative(e[a], e[b]).cpu().numpy()
        absolute = decoded(encoder, items.decoder_inputs)
        predictions["absolute difference"] = absolute[b] - absolute[a]
    for reader, probe in pair_probes.items():
        predictions[reader] = probe.predict(pair_data(items, PROBE_INPUTS[reader], (a, b))[0])
    _, truth, masks = pair_data(items, "features", (a, b))
    out = {}
    for label, rows in (("same song", same), ("two songs", ~same)):
        out[label] = {reader: {g: s["r2"] for g, s in group_scores(entry_scores(p[rows], truth[rows], masks[rows])).items()
                               if "r2" in s}
                      for reader, p in predictions.items()}
    return out


@dataclass
class SettingsRecovery:
    """One domain's settings-recovery scores: ``{reader: {group: {"r2", "auroc"}}}`` and the relative decoding."""

    domain: str
    description: str
    items: int
    groups: dict[str, dict[str, dict[str, float]]]
    relative: dict[str, dict[str, dict[str, float]]]

    def as_dict(self) -> dict:
        return {"domain": self.domain, "description": self.description, "items": self.items, "groups": self.groups,
                "relative": self.relative}


def evaluate_settings(path: str | Path, *, domains: list[str] | None = None, num_songs: int = 16, num_styles: int = 24,
                      probe_songs: int = 12, probe_styles: int = 32, seed: int = 1234, device: str | None = None,
                      corpus_dir: str | Path = "outputs/corpora") -> list[SettingsRecovery]:
    """Score the readers of the module docstring on every domain (default: those of ``mixrep evaluate``).

    The probes are fitted once, on ``probe_songs x probe_styles`` items of the checkpoint's training
    songs (``train`` split, styles drawn with ``seed + 1``); each domain's items are the retrieval
    evaluation's songs under ``num_styles`` styles (``seed``; more styles than retrieval uses, so that
    every setting takes many values; the probes' items have many styles too, so that a probe learns
    settings, not the identities of a few styles).

    A checkpoint without a settings decoder (trained for retrieval only) gets the probes and the mean
    only: what its embedding carries.
    """
    checkpoint = load_checkpoint(path)
    encoder = StyleEncoder.from_loaded(checkpoint, path, device=device)
    styles = make_style_space("mix_style")
    train_set = build_style_set(training_source(checkpoint, encoder.sample_rate), encoder.frontend, split="train",
                                num_songs=probe_songs, num_styles=probe_styles, styles=styles, seed=seed + 1)
    train = settings_items(encoder, train_set)
    probes = {reader: fit_probes(getattr(train, inputs), train.targets, train.masks)
              for reader, inputs in PROBE_INPUTS.items()}
    pair_probes = fit_pair_probes(train)
    mean = _masked_means(train.targets, train.masks)
    results = []
    for spec in domains or default_domains(checkpoint):
        source, description, split = open_domain(spec, checkpoint, encoder.sample_rate, songs=num_songs,
                                                  min_seconds=encoder.clip_seconds, corpus_dir=corpus_dir)
        items = settings_items(encoder, build_style_set(source, encoder.frontend, split=split, num_songs=num_songs,
                                                        num_styles=num_styles, styles=styles, seed=seed))
        predictions = {"mean": np.tile(mean, (len(items.targets), 1))}
        if encoder.decodes_settings:
            predictions["decoder"] = decoded(encoder, items.decoder_inputs)
        for reader, probe in probes.items():
            predictions[reader] = probe.predict(getattr(items, PROBE_INPUTS[reader]))
        groups = {reader: group_scores(entry_scores(predictions[reader], items.targets, items.masks))
                  for reader in READERS if reader in predictions}
        relative = relative_scores(encoder, items, pair_probes)
        results.append(SettingsRecovery(spec, description, len(items.targets), groups, relative))
    return results


def format_settings_recovery(results: list[SettingsRecovery]) -> str:
    """Per domain: a row per reader, R^2 per group (and the mean over groups), then the presence AUROC
    averaged over groups; then the relative decoding's R^2 averaged over groups."""
    lines = []
    for result in results:
        header = f"{'reader':18s} " + " ".join(f"{g[:9]:>9s}" for g in GROUPS) + f" {'mean R2':>8s} {'AUROC':>6s}"
        lines += [f"{result.description}: {result.items} items, R^2 per settings group", header, "-" * len(header)]
        for reader, groups in result.groups.items():
            r2 = [groups.get(g, {}).get("r2") for g in GROUPS]
            auroc = [s["auroc"] for s in groups.values() if "auroc" in s]
            cells = " ".join(f"{v:9.2f}" if v is not None else f"{'-':>9s}" for v in r2)
            lines.append(f"{reader:18s} {cells} {np.mean([v for v in r2 if v is not None]):8.2f} "
                         f"{np.mean(auroc) if auroc else float('nan'):6.2f}")
        for label, readers in result.relative.items():
            lines.append("relative, " + label + ": " + ", ".join(
                f"{reader} R^2 {np.mean(list(groups.values())):.2f}" for reader, groups in readers.items()))
        lines.append("")
    return "\n".join(lines)


__all__ = ["READERS", "SettingsItems", "SettingsRecovery", "entry_scores", "evaluate_settings", "fit_probes",
           "format_settings_recovery", "group_scores", "relative_pairs", "relative_scores", "settings_items"]
