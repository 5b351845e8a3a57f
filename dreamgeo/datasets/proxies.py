r"""Robustness proxies: datasets of other shapes and feature quality than the
development set ``scientific``, each written as an MMRec folder
``root/NAME/{NAME.inter, <modality>_feat.npy, proxy.json}`` so that
``dreamgeo train --dataset NAME --data-root ROOT`` trains on it (GitHub issue 34).

Every proxy is deterministic given its seed: the same seed writes byte-identical files.
Each one has its own random stream per step (``SeedSequence(seed, spawn_key=(k,))``).

**From scientific** (:func:`write_derived`; the source is any MMRec folder, by default
``../shared/data/scientific``: its ``NAME.inter`` is copied unchanged, only feature
files change):

* ``scientific_weak_text`` (``scientific_weak_image``): the modality replaced by a weak
  one, :func:`weak_features`: a random Gaussian projection to 128 dimensions,
  :math:`\mathbf{S} = \mathbf{X}\mathbf{P}`, :math:`P_{jk} \sim \mathcal{N}(0, 1/d)`,
  plus i.i.d. Gaussian noise :math:`\mathcal{N}(0, \sigma^2)` with
  :math:`\sigma^2 = \overline{\mathrm{Var}}(\mathbf{S}) / \mathrm{SNR}`, where
  :math:`\overline{\mathrm{Var}}(\mathbf{S})` is the mean over the 128 columns of the
  column variance over items. So the **signal-to-noise ratio** is the ratio of signal
  variance to noise variance after the projection, summed over the columns
  (:math:`\sum_k \mathrm{Var}(S_{:k}) / \sum_k \mathrm{Var}(N_{:k})`); SNR = 0.5 here
  (the noise carries twice the variance of the signal).
* ``scientific_noise_image``: the image features replaced by i.i.d. Gaussian noise of
  the same shape (512-d) and the original's mean column standard deviation, so the
  image k-NN graph is a random graph and image similarities carry no information.
* ``scientific_weak_both``: image and text both weak (128-d, SNR 0.5 each): two weak
  128-d modalities, the shape of features of issue 34's dataset on scientific's
  interactions.
* ``scientific_noise_both``: image and text both noise: the S3 target carries no signal.
* ``scientific_text_only`` and ``scientific_image_only``: one feature file only.

**Planted** (:func:`write_planted_proxy`, built with
:func:`~dreamgeo.datasets.generate_planted`, see :mod:`dreamgeo.datasets.planted`):

* ``planted_9k``: the shape of the dataset of issue 34: about 9.3k users x 6.7k items,
  about 6.4 training interactions per user, two 128-d modalities named ``visual``
  (the generator's image-like view: ReLU, nuisance "style" clusters, noise 3.0) and
  ``acoustic`` (its text-like view, L2-normalised, with noise 3.0 instead of 1.5, so
  neither modality is as informative as planted text), and about 463 cold items: that
  many items, drawn uniformly among those with a valid or test interaction, lose their
  training interactions (users left without a training interaction are dropped).
* ``planted_three``: three modalities, ``image`` (256-d) and ``text`` (128-d) as the
  generator writes them and ``audio`` (64-d): :math:`\mathbf{z}_i \mathbf{W}_a +
  2\,\varepsilon_i` with :math:`\mathbf{W}_a` Gaussian (a third, noisier view of the
  topics); 4,000 users x 2,500 items, 40,000 interactions.
* ``planted_ml100k``: dense, MovieLens-100k-like: 943 users x 1,682 items, about 100k
  interactions (6 % density, about 106 per user), image and text 128-d.

Planted proxies take a ``scale`` (users, items and interactions multiplied by it) for
fast tests; the named proxies are ``scale=1``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dreamgeo.datasets.mmrec import FEATURE_SUFFIX, find_modalities
from dreamgeo.datasets.planted import INTER_COLUMNS, PlantedConfig, generate_planted

__all__ = [
    "PROXIES",
    "DerivedProxy",
    "PlantedProxy",
    "weak_features",
    "noise_features",
    "write_derived",
    "write_planted_proxy",
    "write_proxy",
    "cold_items",
    "scaled_config",
]

SIDECAR_NAME = "proxy.json"
PROXY_VERSION = 1
# one random stream per step of a proxy
_STREAMS = ("projection", "noise", "cold", "extra")


def _rng(seed: int, stream: str, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(_STREAMS.index(stream), salt))
    )


def weak_features(
    x: np.ndarray, snr: float = 0.5, dim: int = 128, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    r"""A weak view of features ``x``: :math:`\mathbf{S} + \mathbf{N}` with
    :math:`\mathbf{S} = \mathbf{X}\mathbf{P}`, :math:`P_{jk} \sim \mathcal{N}(0, 1/d)`
    (``[d, dim]``), and :math:`N_{ik} \sim \mathcal{N}(0, \sigma^2)` i.i.d., with
    :math:`\sigma^2 = \frac{1}{\mathrm{dim}}\sum_k \mathrm{Var}_i(S_{ik}) / \mathrm{SNR}`.
    The signal-to-noise ratio is thus the ratio of signal variance to noise variance
    after the projection (per column on average, equivalently summed over columns); the
    realized ratio of a draw differs from :obj:`snr` by sampling error only
    (:math:`O(1/\sqrt{N \cdot \mathrm{dim}})`).

    Args:
        x (np.ndarray): Item features ``[N, d]``.
        snr (float, optional): Signal variance over noise variance. (default: :obj:`0.5`)
        dim (int, optional): Output size. (default: :obj:`128`)
        seed (int, optional): Seed of the projection and the noise. (default: :obj:`0`)

    Returns:
        ``(weak, signal)``: the float32 weak features ``[N, dim]`` and the projected
        signal :math:`\mathbf{S}` (float64) they were made from.
    """
    if snr <= 0 or dim < 1:
        raise ValueError(f"weak_features: snr must be > 0 and dim >= 1, got {snr}, {dim}")
    x = np.asarray(x, dtype=np.float64)
    projection = _rng(seed, "projection").standard_normal((x.shape[1], dim)) / np.sqrt(x.shape[1])
    signal = x @ projection
    sigma = np.sqrt(signal.var(axis=0).mean() / snr)
    noise = sigma * _rng(seed, "noise").standard_normal(signal.shape)
    return (signal + noise).astype(np.float32), signal


def noise_features(x: np.ndarray, seed: int = 0) -> np.ndarray:
    r"""Pure noise in the shape of ``x``: i.i.d. :math:`\mathcal{N}(0, s^2)`, float32,
    with :math:`s` the mean column standard deviation of ``x`` (same scale, no
    information)."""
    x = np.asarray(x, dtype=np.float64)
    scale = float(x.std(axis=0).mean())
    return (scale * _rng(seed, "noise").standard_normal(x.shape)).astype(np.float32)


@dataclass(frozen=True)
class DerivedProxy:
    r"""A proxy derived from a source MMRec folder (scientific): the same interactions,
    modalities replaced or dropped.

    Args:
        keep (tuple[str, ...]): Modalities copied unchanged.
        weak (Mapping[str, float], optional): Modality to the SNR of its weak
            replacement (:func:`weak_features`, 128-d). (default: none)
        noise (tuple[str, ...], optional): Modalities replaced by
            :func:`noise_features`. (default: none)
        weak_dim (int, optional): Size of the weak modalities. (default: :obj:`128`)
        description (str, optional): One line for the sidecar and the docs.
    """

    keep: tuple[str, ...]
    weak: Mapping[str, float] = field(default_factory=dict)
    noise: tuple[str, ...] = ()
    weak_dim: int = 128
    description: str = ""


@dataclass(frozen=True)
class PlantedProxy:
    r"""A proxy made with the planted generator.

    Args:
        config (PlantedConfig): The generator's configuration at ``scale=1``.
        rename (Mapping[str, str], optional): Generator modality (``image``,
            ``text``) to the name written. (default: unchanged)
        extra (Mapping[str, tuple[int, float]], optional): Additional modalities,
            name to ``(dim, noise)``: :math:`\mathbf{z}_i\mathbf{W} + \mathrm{noise}
            \cdot \varepsilon_i`, :math:`\mathbf{W}` standard Gaussian ``[K, dim]``.
            (default: none)
        num_cold_items (int, optional): Items (at ``scale=1``) made cold: drawn among
            the items with a valid or test interaction, their training interactions
            removed. (default: :obj:`0`)
        description (str, optional): One line for the sidecar and the docs.
    """

    config: PlantedConfig
    rename: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    num_cold_items: int = 0
    description: str = ""


#: The named proxies (``benchmarks/make_proxies.py`` writes them all).
PROXIES: dict[str, DerivedProxy | PlantedProxy] = {
    "scientific_weak_text": DerivedProxy(
        keep=("image",),
        weak={"text": 0.5},
        description="scientific, text replaced by a 128-d random projection plus noise, SNR 0.5",
    ),
    "scientific_weak_image": DerivedProxy(
        keep=("text",),
        weak={"image": 0.5},
        description="scientific, image replaced by a 128-d random projection plus noise, SNR 0.5",
    ),
    "scientific_noise_image": DerivedProxy(
        keep=("text",),
        noise=("image",),
        description="scientific, image replaced by i.i.d. Gaussian noise (512-d)",
    ),
    "scientific_weak_both": DerivedProxy(
        keep=(),
        weak={"image": 0.5, "text": 0.5},
        description="scientific, image and text each replaced by a 128-d random projection "
        "plus noise, SNR 0.5 (two weak 128-d modalities, as in issue 34)",
    ),
    "scientific_noise_both": DerivedProxy(
        keep=(),
        noise=("image", "text"),
        description="scientific, image and text both i.i.d. Gaussian noise: no feature signal",
    ),
    "scientific_text_only": DerivedProxy(keep=("text",), description="scientific, text only"),
    "scientific_image_only": DerivedProxy(keep=("image",), description="scientific, image only"),
    "planted_9k": PlantedProxy(
        PlantedConfig(
            9_300,
            6_700,
            84_000,
            num_topics=64,
            image_dim=128,
            text_dim=128,
            text_noise=3.0,
        ),
        rename={"image": "visual", "text": "acoustic"},
        num_cold_items=463,
        description="9.3k users x 6.7k items, 6.4 train per user, visual + acoustic 128-d, "
        "463 cold items",
    ),
    "planted_three": PlantedProxy(
        PlantedConfig(4_000, 2_500, 40_000, num_topics=32, image_dim=256, text_dim=128),
        extra={"audio": (64, 2.0)},
        description="4k users x 2.5k items, image 256-d, text 128-d, audio 64-d",
    ),
    "planted_ml100k": PlantedProxy(
        PlantedConfig(943, 1_682, 120_000, num_topics=20, image_dim=128, text_dim=128),
        description="943 users x 1682 items, ~100k interactions (ML-100k density)",
    ),
}


def _sidecar(name: str, spec: DerivedProxy | PlantedProxy, seed: int, **extra) -> dict:
    spec_dict = dataclasses.asdict(spec)
    return {
        "proxy_version": PROXY_VERSION,
        "proxy": name,
        "kind": type(spec).__name__,
        "seed": seed,
        "spec": json.loads(json.dumps(spec_dict)),
        **extra,
    }


def _prepare_folder(directory: Path, sidecar: dict, overwrite: bool) -> bool:
    r"""True when ``directory`` must be (re)written: it is absent, or holds another
    proxy (or the same one with :obj:`overwrite`). A folder without a proxy sidecar is
    not touched: :class:`FileExistsError`."""
    path = directory / SIDECAR_NAME
    if directory.exists() and any(directory.iterdir()):
        try:
            existing = json.loads(path.read_text())
        except (OSError, ValueError):
            raise FileExistsError(
                f"{directory} exists and holds no {SIDECAR_NAME}: not a proxy folder, "
                "not overwriting it"
            ) from None
        if not overwrite and {k: existing.get(k) for k in sidecar} == sidecar:
            return False
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return True


def _save_npy(path: Path, x: np.ndarray) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        np.save(handle, np.ascontiguousarray(x, dtype=np.float32))
    os.replace(partial, path)


def _finish(directory: Path, sidecar: dict) -> Path:
    partial = directory / f"{SIDECAR_NAME}.{os.getpid()}.partial"
    partial.write_text(json.dumps(sidecar, indent=2) + "\n")
    os.replace(partial, directory / SIDECAR_NAME)
    return directory


def write_derived(
    root: str | os.PathLike,
    name: str,
    spec: DerivedProxy,
    source: str | os.PathLike,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    r"""Writes ``root/name`` from the MMRec folder ``source`` (e.g.
    ``../shared/data/scientific``): its interactions copied as ``name.inter``, the
    modalities of :obj:`spec` kept, weakened or replaced by noise. Nothing is written
    when the folder already holds this proxy (same spec, seed and source).

    Returns:
        The dataset folder.
    """
    source = Path(source)
    source_inter = source / f"{source.name}.inter"
    found = find_modalities(source)
    wanted = [*spec.keep, *spec.weak, *spec.noise]
    absent = [m for m in wanted if m not in found]
    if not source_inter.is_file() or absent:
        raise FileNotFoundError(
            f"proxy {name}: {source} needs {source_inter.name} and the modalities "
            f"{wanted} (found {sorted(found)})"
        )
    directory = Path(root).expanduser() / name
    sidecar = _sidecar(name, spec, seed, source=str(source.resolve()))
    if not _prepare_folder(directory, sidecar, overwrite):
        return directory
    shutil.copyfile(source_inter, directory / f"{name}.inter")
    realized: dict[str, float] = {}
    for index, m in enumerate(wanted):
        x = np.load(source / found[m])
        if m in spec.weak:
            x, signal = weak_features(x, spec.weak[m], spec.weak_dim, seed + 1000 * index)
            realized[m] = float(signal.var(axis=0).sum() / (x - signal).var(axis=0).sum())
        elif m in spec.noise:
            x = noise_features(x, seed + 1000 * index)
        _save_npy(directory / f"{m}{FEATURE_SUFFIX}", x)
    sidecar["realized_snr"] = realized
    return _finish(directory, sidecar)


def scaled_config(config: PlantedConfig, scale: float) -> PlantedConfig:
    r"""``config`` with users, items and interactions multiplied by ``scale``."""
    if scale == 1.0:
        return config
    num_users = max(20, round(config.num_users * scale))
    num_items = max(2 * config.min_degree + 10, round(config.num_items * scale))
    floor = config.min_degree * max(num_users, num_items) + 1
    return dataclasses.replace(
        config,
        num_users=num_users,
        num_items=num_items,
        num_interactions=max(floor, round(config.num_interactions * scale)),
        num_topics=max(4, min(config.num_topics, num_items // 20)),
    )


def cold_items(interactions: np.ndarray, num_items: int) -> np.ndarray:
    r"""The items of a ``[E, 5]`` MMRec table (columns :data:`INTER_COLUMNS`) that occur
    in valid or test rows but in no training row, ascending."""
    train = np.bincount(interactions[interactions[:, 4] == 0, 1], minlength=num_items) > 0
    held_out = np.bincount(interactions[interactions[:, 4] > 0, 1], minlength=num_items) > 0
    return np.flatnonzero(held_out & ~train)


def _make_cold(
    interactions: np.ndarray, num_items: int, count: int, seed: int
) -> tuple[np.ndarray, int]:
    r"""Removes the training rows of ``count`` items drawn among those with a held-out
    row, then the rows of users left without training rows (users renumbered); returns
    the table and the number of users dropped."""
    held_out = np.flatnonzero(
        np.bincount(interactions[interactions[:, 4] > 0, 1], minlength=num_items) > 0
    )
    chosen = _rng(seed, "cold").choice(held_out, size=min(count, len(held_out)), replace=False)
    is_cold = np.zeros(num_items, dtype=bool)
    is_cold[chosen] = True
    table = interactions[~(is_cold[interactions[:, 1]] & (interactions[:, 4] == 0))]
    num_users = int(interactions[:, 0].max()) + 1
    has_train = np.bincount(table[table[:, 4] == 0, 0], minlength=num_users) > 0
    table = table[has_train[table[:, 0]]].copy()
    table[:, 0] = (np.cumsum(has_train) - 1)[table[:, 0]]
    return table, int((~has_train).sum())


def _write_inter(table: np.ndarray, path: Path) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(partial, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\t".join(INTER_COLUMNS) + "\n")
        np.savetxt(handle, table, fmt="%d", delimiter="\t")
    os.replace(partial, path)


def write_planted_proxy(
    root: str | os.PathLike,
    name: str,
    spec: PlantedProxy,
    seed: int = 0,
    scale: float = 1.0,
    overwrite: bool = False,
) -> Path:
    r"""Generates a planted proxy (:class:`PlantedProxy`) and writes ``root/name``.
    Nothing is written when the folder already holds this proxy (same spec, seed and
    scale).

    Args:
        root (str or Path): The data root.
        name (str): The dataset (folder) name.
        spec (PlantedProxy): What to generate.
        seed (int, optional): The seed of the generator and of every step after it.
            (default: :obj:`0`)
        scale (float, optional): Multiplies users, items, interactions and the cold
            items (fast tests). (default: :obj:`1.0`)
        overwrite (bool, optional): Regenerate even if up to date. (default: :obj:`False`)

    Returns:
        The dataset folder.
    """
    directory = Path(root).expanduser() / name
    sidecar = _sidecar(name, spec, seed, scale=scale)
    if not _prepare_folder(directory, sidecar, overwrite):
        return directory
    config = scaled_config(spec.config, scale)
    data = generate_planted(config, seed)
    table = data.interactions
    dropped = 0
    if spec.num_cold_items:
        count = max(1, round(spec.num_cold_items * scale))
        table, dropped = _make_cold(table, data.num_items, count, seed)
    features = {spec.rename.get(m, m): x for m, x in data.features.items()}
    for salt, (m, (dim, noise)) in enumerate(spec.extra.items()):
        rng = _rng(seed, "extra", salt)
        weight = rng.standard_normal((data.item_topics.shape[1], dim))
        x = data.item_topics.astype(np.float64) @ weight
        features[m] = x + noise * rng.standard_normal(x.shape)
    _write_inter(table, directory / f"{name}.inter")
    for m, x in features.items():
        _save_npy(directory / f"{m}{FEATURE_SUFFIX}", x)
    split = np.bincount(table[:, 4], minlength=3)
    num_users = int(table[:, 0].max()) + 1
    sidecar["statistics"] = {
        "num_users": num_users,
        "num_items": data.num_items,
        "num_interactions": len(table),
        "num_per_split": split.tolist(),
        "train_per_user": float(split[0] / num_users),
        "num_cold_items": len(cold_items(table, data.num_items)),
        "users_dropped": dropped,
        "modalities": {m: int(x.shape[1]) for m, x in features.items()},
    }
    return _finish(directory, sidecar)


def write_proxy(
    root: str | os.PathLike,
    name: str,
    seed: int = 0,
    source: str | os.PathLike | None = None,
    scale: float = 1.0,
    overwrite: bool = False,
) -> Path:
    r"""Writes the named proxy of :data:`PROXIES` to ``root/name``.

    Args:
        root (str or Path): The data root.
        name (str): A key of :data:`PROXIES`.
        seed (int, optional): The seed. (default: :obj:`0`)
        source (str or Path, optional): The source MMRec folder of the proxies derived
            from scientific (required for them). (default: :obj:`None`)
        scale (float, optional): Size factor of planted proxies (ignored by derived
            ones). (default: :obj:`1.0`)
        overwrite (bool, optional): Rewrite even if up to date. (default: :obj:`False`)
    """
    if name not in PROXIES:
        raise ValueError(f"unknown proxy {name!r}; choose one of {sorted(PROXIES)}")
    spec = PROXIES[name]
    if isinstance(spec, DerivedProxy):
        if source is None:
            raise ValueError(f"proxy {name}: give source=, the scientific MMRec folder")
        return write_derived(root, name, spec, source, seed, overwrite)
    return write_planted_proxy(root, name, spec, seed, scale, overwrite)
