r"""A seeded generator of *planted* multimodal recommendation datasets
(``DESIGN.md`` section 6), written to disk in the MMRec format so that
:class:`~dreamgeo.datasets.MMRecDataset` reads it like real data.

Generative model
----------------

With :math:`K` latent topics, :math:`M` users and :math:`N` items:

1. **Items.** Topic prevalence :math:`\pi \sim \mathrm{Dir}(5 \cdot \mathbf{1}_K)`,
   dominant topic :math:`c_i \sim \mathrm{Cat}(\pi)` and topic mixture

   .. math::
       z_i = \rho\, e_{c_i} + (1 - \rho)\, \eta_i, \qquad
       \eta_i \sim \mathrm{Dir}(0.1 \cdot \mathbf{1}_K),

   with purity :math:`\rho` (``item_purity``). Popularity is Zipf-like over a
   random ranking :math:`r_i` (a permutation of :math:`0..N-1`), independent of
   the topic: :math:`p_i = (r_i + 1)^{-s}` (``popularity_exponent``).
2. **Users.** Preference :math:`\theta_u \sim \mathrm{Dir}(\tfrac{A}{K} \mathbf{1}_K)`
   with small total mass :math:`A` (``user_concentration``), so each user
   likes a few topics
   (:math:`\mathbb{E}\sum_k \theta_{uk}^2 = (A/K + 1)/(A + 1)`), and a heavy-tailed target degree
   :math:`d_u = d_{\min} + \lfloor X_u \rfloor`,
   :math:`X_u \sim \mathrm{LogNormal}(\mu, \sigma^2)` with :math:`\mu` set so
   that :math:`\mathbb{E}[d_u] \approx |\mathcal{E}| / M`, capped at
   ``max_degree``.
3. **Interactions.** A user draw picks a topic :math:`k \sim \theta_u` (or,
   with probability :math:`\epsilon` = ``exploration``, no topic) and then an
   item by popularity within it:

   .. math::
       P(i \mid u) = (1 - \epsilon) \sum_k \theta_{uk}
           \frac{z_{ik}\, p_i}{\sum_j z_{jk}\, p_j}
           + \epsilon \frac{p_i}{\sum_j p_j}.

   So that every item, also in the long tail, is seen by users who actually
   like it, each item first draws :math:`d_{\min}` users by
   :math:`k \sim z_i`, :math:`P(u \mid k) \propto \theta_{uk}`. Users then
   draw items until they reach :math:`d_u` distinct ones (a few rounds of
   draws with duplicates removed), users and items below :math:`d_{\min}` are
   topped up, and an iterative :math:`d_{\min}`-core filter on users and
   items removes whatever is still short. Users and items are renumbered
   contiguously.
4. **Split.** Every interaction gets a uniform random timestamp; per user,
   sorted by time, the last :math:`n_{test} = \max(1, \mathrm{round}(0.1 n_u))`
   interactions are test, the :math:`n_{valid}` (same rule) before them valid
   and the rest (at least 3, since :math:`n_u \ge 5`) train.
5. **Features** are noisy views of :math:`z_i`, through fixed random Gaussian
   matrices :math:`W_m \in \mathbb{R}^{K \times d_m}` with
   :math:`\varepsilon_i \sim \mathcal{N}(0, I)`:

   .. math::
       x^{text}_i &= \frac{\beta\, o + z_i W_t + \sigma_t \varepsilon_i}
                         {\lVert \beta\, o + z_i W_t + \sigma_t \varepsilon_i
                         \rVert_2} \\
       x^{image}_i &= \mathrm{ReLU}\big(b + z_i W_v + \lambda\, e_{g_i} W_g
                      + \sigma_v \varepsilon_i\big)

   where :math:`o` is a shared offset (real sentence embeddings share a
   common direction), :math:`b` a fixed bias, and :math:`g_i` a random
   "photo style" cluster unrelated to preferences (weight :math:`\lambda`,
   ``image_nuisance``). Image features are non-negative, high-dimensional
   and of large norm; :math:`\sigma_v > \sigma_t` plus the nuisance make text
   the more informative modality, as in the paper.

Because preferences act on topics and topics are visible in the features,
items' features predict which users like them; this matters most for
long-tail items, whose few interactions leave collaborative filtering little
to learn from. For scale, simple reference recommenders on ``baby`` (seed 0)
reach test Recall@20 of 0.060 (popularity), 0.123 (item-kNN), 0.109 (text
profile only; image only 0.049) and 0.153 (item-kNN plus text); of the
held-out interactions with long-tail items (outside the top 20 % by degree),
the text profile ranks 11.0 % in its top 20, item-kNN 6.5 %.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PlantedConfig",
    "PlantedData",
    "PLANTED_PRESETS",
    "INTER_COLUMNS",
    "GENERATOR_VERSION",
    "generate_planted",
    "write_planted",
]

logger = logging.getLogger(__name__)

GENERATOR_VERSION: int = 1
INTER_COLUMNS: tuple[str, ...] = ("userID", "itemID", "rating", "timestamp", "x_label")
SIDECAR_NAME = "planted.json"
FEATURE_FILES: dict[str, str] = {"image": "image_feat.npy", "text": "text_feat.npy"}

# Fixed so that features are byte-identical however they are consumed.
_FEATURE_BLOCK_ROWS = 4096
# Elements per block when sampling from many categorical distributions at once.
_SAMPLING_BLOCK_ELEMENTS = 1 << 22
_WRITE_BLOCK_ROWS = 1 << 20
_USER_BLOCK_ROWS = 1 << 16
_FILL_ROUNDS = 3
_MAX_ROUNDS = 50
_TIME_START = 1_200_000_000  # 2008-01-10, Unix seconds
_TIME_SPAN = 200_000_000  # about 6 years

# Stages of the generator; each has its own random stream, so changing one
# stage never shifts the numbers of another.
_STAGES = ("items", "users", "item_side", "user_side", "time", "image", "text")


@dataclass(frozen=True)
class PlantedConfig:
    r"""The parameters of a planted dataset (see the module docstring for the
    generative model).

    Args:
        num_users (int): Users :math:`M` before the core filter.
        num_items (int): Items :math:`N` before the core filter.
        num_interactions (int): Target number of distinct interactions before
            the split; the result lands close to it.
        num_topics (int): Latent topics :math:`K`.
        image_dim (int): Image feature size; :obj:`0` writes no image modality.
        text_dim (int): Text feature size; :obj:`0` writes no text modality.
        user_concentration (float, optional): Total Dirichlet mass
            :math:`A` of user preferences, :math:`\alpha = A / K`; small values
            concentrate users on few topics. (default: :obj:`1.0`)
        item_purity (float, optional): Weight :math:`\rho` of an item's
            dominant topic. (default: :obj:`0.8`)
        popularity_exponent (float, optional): Zipf exponent :math:`s` of
            item popularity. (default: :obj:`0.7`)
        exploration (float, optional): Share :math:`\epsilon` of user draws
            made by popularity alone. (default: :obj:`0.1`)
        degree_sigma (float, optional): Log-normal :math:`\sigma` of the user
            degree tail. (default: :obj:`1.0`)
        max_degree (int, optional): Cap on a user's target degree (also
            capped at half the items). (default: :obj:`500`)
        min_degree (int, optional): :math:`d_{\min}`, the core of the
            filter. (default: :obj:`5`)
        text_noise (float, optional): :math:`\sigma_t`. (default: :obj:`1.5`)
        text_offset (float, optional): :math:`\beta`. (default: :obj:`0.5`)
        image_noise (float, optional): :math:`\sigma_v`. (default: :obj:`3.0`)
        image_nuisance (float, optional): :math:`\lambda`.
            (default: :obj:`1.5`)
        num_image_styles (int, optional): Number of nuisance style clusters.
            (default: :obj:`16`)
        valid_ratio (float, optional): Share of each user's interactions
            held out for validation. (default: :obj:`0.1`)
        test_ratio (float, optional): Share held out for test.
            (default: :obj:`0.1`)
    """

    num_users: int
    num_items: int
    num_interactions: int
    num_topics: int
    image_dim: int
    text_dim: int
    user_concentration: float = 1.0
    item_purity: float = 0.8
    popularity_exponent: float = 0.7
    exploration: float = 0.1
    degree_sigma: float = 1.0
    max_degree: int = 500
    min_degree: int = 5
    text_noise: float = 1.5
    text_offset: float = 0.5
    image_noise: float = 3.0
    image_nuisance: float = 1.5
    num_image_styles: int = 16
    valid_ratio: float = 0.1
    test_ratio: float = 0.1

    def __post_init__(self) -> None:
        if min(self.num_users, self.num_items, self.num_topics, self.min_degree) < 1:
            raise ValueError(f"{self}: sizes must be positive")
        if self.num_items < 2 * self.min_degree:
            raise ValueError(f"{self}: needs at least 2 * min_degree items")
        if self.num_interactions < self.min_degree * max(self.num_users, self.num_items):
            raise ValueError(
                f"{self}: num_interactions must be at least min_degree times the "
                f"larger of num_users and num_items"
            )
        if self.image_dim < 0 or self.text_dim < 0:
            raise ValueError(f"{self}: feature sizes must be >= 0")
        if not 0.0 <= self.exploration < 1.0 or not 0.0 < self.item_purity <= 1.0:
            raise ValueError(f"{self}: exploration in [0, 1), item_purity in (0, 1]")

    @property
    def modality_dims(self) -> dict[str, int]:
        r"""The written modalities and their sizes, e.g.
        ``{"image": 4096, "text": 384}``."""
        dims = {"image": self.image_dim, "text": self.text_dim}
        return {m: d for m, d in dims.items() if d > 0}


PLANTED_PRESETS: dict[str, PlantedConfig] = {
    # Unit tests: generated and loaded in a fraction of a second.
    "tiny": PlantedConfig(300, 200, 2_400, num_topics=8, image_dim=64, text_dim=32),
    "small": PlantedConfig(2_000, 1_000, 18_000, num_topics=20, image_dim=256, text_dim=64),
    # The size of Amazon Baby after 5-core filtering (paper, Table 1).
    "baby": PlantedConfig(19_445, 7_050, 160_792, num_topics=100, image_dim=4096, text_dim=384),
    # The size of Amazon Elec (MMRec), for scale benchmarks.
    "large": PlantedConfig(
        192_403, 63_001, 1_689_188, num_topics=256, image_dim=4096, text_dim=384
    ),
    # Scale curves only: text features alone keep it within a few GiB.
    "xlarge_text": PlantedConfig(
        1_000_000, 200_000, 10_000_000, num_topics=256, image_dim=0, text_dim=384
    ),
}


@dataclass
class PlantedData:
    r"""A generated dataset.

    Args:
        interactions (np.ndarray): int64 table ``[E, 5]`` with the columns
            :data:`INTER_COLUMNS` (``userID``, ``itemID``, ``rating``,
            ``timestamp``, ``x_label``), sorted by user, then time.
        features (dict[str, np.ndarray]): Modality name to float32
            ``[N, d_m]`` item features.
        item_topics (np.ndarray): The planted item topic mixtures :math:`z`,
            float32 ``[N, K]``.
        user_preferences (np.ndarray): The planted user preferences
            :math:`\theta`, float32 ``[M, K]``.
        item_popularity (np.ndarray): The planted popularity :math:`p_i` of the
            kept items, float64 ``[N]``.
        topic_mass (np.ndarray): :math:`S_k = \sum_j z_{jk} p_j` over every
            generated item (before the core filter), the normalizer of a topic's
            item draws, float64 ``[K]``.
        user_topic_mass (np.ndarray): :math:`\sum_v \theta_{vk}` over every
            generated user, the normalizer of the item-side user draws, float64
            ``[K]``.
        config (PlantedConfig): The configuration it was generated from.
        seed (int): The seed it was generated from.
    """

    interactions: np.ndarray
    features: dict[str, np.ndarray]
    item_topics: np.ndarray
    user_preferences: np.ndarray
    config: PlantedConfig
    seed: int
    item_popularity: np.ndarray
    topic_mass: np.ndarray
    user_topic_mass: np.ndarray

    @property
    def num_users(self) -> int:
        return self.user_preferences.shape[0]

    @property
    def num_items(self) -> int:
        return self.item_topics.shape[0]


@dataclass
class _Structure:
    interactions: np.ndarray  # [E, 5] int64
    item_topics: np.ndarray  # [N, K] float64
    user_preferences: np.ndarray  # [M, K] float64
    item_popularity: np.ndarray  # [N] float64, kept items
    topic_mass: np.ndarray  # [K] float64, all generated items
    user_topic_mass: np.ndarray  # [K] float64, all generated users


def _resolve(config: str | PlantedConfig) -> tuple[str, PlantedConfig]:
    if isinstance(config, PlantedConfig):
        return "custom", config
    if config not in PLANTED_PRESETS:
        raise ValueError(
            f"unknown planted preset {config!r}; choose one of "
            f"{sorted(PLANTED_PRESETS)} or pass a PlantedConfig"
        )
    return config, PLANTED_PRESETS[config]


def _rng(seed: int, stage: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STAGES.index(stage),)))


def generate_planted(config: str | PlantedConfig, seed: int = 0) -> PlantedData:
    r"""Generates a planted dataset in memory (see the module docstring).

    Args:
        config (str or PlantedConfig): A key of :data:`PLANTED_PRESETS`
            (``"tiny"``, ``"small"``, ``"baby"``, ``"large"``,
            ``"xlarge_text"``) or a :class:`PlantedConfig`.
        seed (int, optional): The random seed; the same seed gives identical
            arrays. (default: :obj:`0`)

    Shapes:
        - **output:** ``interactions`` :math:`[E, 5]`, ``features[m]``
          :math:`[N, d_m]`.
    """
    _, config = _resolve(config)
    structure = _generate_structure(config, seed)
    features = {}
    for modality, dim in config.modality_dims.items():
        x = np.empty((structure.item_topics.shape[0], dim), dtype=np.float32)
        for begin, block in _feature_blocks(structure.item_topics, config, modality, seed):
            x[begin : begin + len(block)] = block
        features[modality] = x
    return PlantedData(
        interactions=structure.interactions,
        features=features,
        item_topics=structure.item_topics.astype(np.float32),
        user_preferences=structure.user_preferences.astype(np.float32),
        config=config,
        seed=seed,
        item_popularity=structure.item_popularity,
        topic_mass=structure.topic_mass,
        user_topic_mass=structure.user_topic_mass,
    )


def _sample_rows(weights: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r"""Draws one category for every entry of ``rows`` from the categorical
    distribution ``weights[row]`` (non-negative, each row with positive sum).
    Vectorized over blocks of the distinct rows asked for: a block's rows
    become CDFs shifted by their position, so one :func:`np.searchsorted`
    serves the whole block."""
    num_categories = weights.shape[1]
    uniform = rng.random(len(rows))
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = sorted_rows[1:] != sorted_rows[:-1]
    distinct_rows = sorted_rows[first]
    position = np.cumsum(first) - 1  # of each sorted entry's row in distinct_rows
    block_rows = max(1, _SAMPLING_BLOCK_ELEMENTS // num_categories)
    bounds = np.searchsorted(position, np.arange(0, len(distinct_rows) + block_rows, block_rows))
    out = np.empty(len(rows), dtype=np.int64)
    for block, low in enumerate(range(0, len(distinct_rows), block_rows)):
        begin, end = bounds[block], bounds[block + 1]
        cdf = np.cumsum(weights[distinct_rows[low : low + block_rows]], axis=1, dtype=np.float64)
        cdf /= cdf[:, -1:]
        cdf += np.arange(cdf.shape[0])[:, None]
        local = position[begin:end] - low
        picks = order[begin:end]
        flat = np.searchsorted(cdf.ravel(), local + uniform[picks], side="right")
        out[picks] = np.minimum(flat - local * num_categories, num_categories - 1)
    return out


def _generate_structure(config: PlantedConfig, seed: int) -> _Structure:
    num_users, num_items, k = config.num_users, config.num_items, config.num_topics

    rng = _rng(seed, "items")
    prevalence = rng.dirichlet(np.full(k, 5.0))
    dominant = rng.choice(k, size=num_items, p=prevalence)
    item_topics = (1.0 - config.item_purity) * rng.dirichlet(np.full(k, 0.1), num_items)
    item_topics[np.arange(num_items), dominant] += config.item_purity
    popularity = (rng.permutation(num_items) + 1.0) ** -config.popularity_exponent

    rng = _rng(seed, "users")
    # float32 and in blocks: [M, K] float64 would dominate memory for 1M users.
    preferences = np.empty((num_users, k), dtype=np.float32)
    alpha = np.full(k, config.user_concentration / k)
    for begin in range(0, num_users, _USER_BLOCK_ROWS):
        block = preferences[begin : begin + _USER_BLOCK_ROWS]
        block[...] = rng.dirichlet(alpha, len(block))
    # Dirichlet draws with tiny alpha can underflow to an all-zero row.
    preferences[preferences.sum(axis=1) == 0, 0] = 1.0
    target_degree = _target_degrees(config, rng)

    # Row k < K: items by topic k and popularity; row K: popularity alone.
    item_table = np.vstack([item_topics.T * popularity, popularity])
    user_rng, item_rng = _rng(seed, "user_side"), _rng(seed, "item_side")

    def draw_for_users(users: np.ndarray) -> np.ndarray:
        topics = _sample_rows(preferences, users, user_rng)
        topics[user_rng.random(len(users)) < config.exploration] = k
        return users * num_items + _sample_rows(item_table, topics, user_rng)

    def draw_for_items(items: np.ndarray) -> np.ndarray:
        topics = _sample_rows(item_topics, items, item_rng)
        return _sample_rows(preferences.T, topics, item_rng) * num_items + items

    keys = _sorted_unique(draw_for_items(np.repeat(np.arange(num_items), config.min_degree)))
    for round_index in range(_MAX_ROUNDS):
        user_degree = np.bincount(keys // num_items, minlength=num_users)
        item_degree = np.bincount(keys % num_items, minlength=num_items)
        wanted = target_degree if round_index < _FILL_ROUNDS else config.min_degree
        user_short = np.clip(wanted - user_degree, 0, None)
        item_short = np.clip(config.min_degree - item_degree, 0, None)
        if round_index >= _FILL_ROUNDS and not user_short.any() and not item_short.any():
            break
        new_keys = [
            draw_for_users(np.repeat(np.arange(num_users), user_short)),
            draw_for_items(np.repeat(np.arange(num_items), item_short)),
        ]
        keys = _sorted_unique(np.concatenate([keys, *new_keys]))

    users, items = keys // num_items, keys % num_items
    keep = _core_filter(users, items, num_users, num_items, config.min_degree)
    users, items = users[keep], items[keep]
    kept_users, users = _compact(users, num_users)
    kept_items, items = _compact(items, num_items)
    if len(kept_users) < num_users or len(kept_items) < num_items:
        logger.info(
            "planted: the %d-core filter kept %d of %d users and %d of %d items",
            config.min_degree,
            len(kept_users),
            num_users,
            len(kept_items),
            num_items,
        )

    timestamps = _TIME_START + _rng(seed, "time").integers(0, _TIME_SPAN, len(users))
    order = np.lexsort((items, timestamps, users))
    users, items, timestamps = users[order], items[order], timestamps[order]
    labels = _temporal_split(users, len(kept_users), config)
    interactions = np.stack([users, items, np.ones_like(users), timestamps, labels], axis=1).astype(
        np.int64
    )
    return _Structure(
        interactions=interactions,
        item_topics=item_topics[kept_items],
        user_preferences=preferences[kept_users],
        item_popularity=popularity[kept_items],
        topic_mass=item_table[:k].sum(axis=1),
        user_topic_mass=preferences.sum(axis=0, dtype=np.float64),
    )


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    r"""The sorted distinct values (sort-based; faster here than
    :func:`np.unique`, which hashes)."""
    values = np.sort(values)
    distinct = np.ones(len(values), dtype=bool)
    distinct[1:] = values[1:] != values[:-1]
    return values[distinct]


def _compact(ids: np.ndarray, num_ids: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The ids in use (ascending) and ``ids`` renumbered to ``0..len - 1``."""
    used = np.bincount(ids, minlength=num_ids) > 0
    return np.flatnonzero(used), (np.cumsum(used) - 1)[ids]


def _target_degrees(config: PlantedConfig, rng: np.random.Generator) -> np.ndarray:
    r""":math:`d_u = d_{\min} + \lfloor X_u \rfloor`, :math:`X_u` log-normal
    with mean :math:`|\mathcal{E}|/M - d_{\min} + 1/2` (the floor loses about
    a half), capped at ``max_degree`` and half the catalogue."""
    excess = max(config.num_interactions / config.num_users - config.min_degree, 0.0)
    mu = np.log(excess + 0.5) - config.degree_sigma**2 / 2.0
    tail = np.floor(rng.lognormal(mu, config.degree_sigma, config.num_users))
    cap = max(config.min_degree, min(config.max_degree, config.num_items // 2))
    return np.minimum(config.min_degree + tail.astype(np.int64), cap)


def _core_filter(
    users: np.ndarray, items: np.ndarray, num_users: int, num_items: int, k: int
) -> np.ndarray:
    r"""The mask of interactions in the :math:`k`-core: repeatedly removes
    users and items with fewer than :math:`k` interactions."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        user_degree = np.bincount(users[keep], minlength=num_users)
        item_degree = np.bincount(items[keep], minlength=num_items)
        short = keep & ((user_degree[users] < k) | (item_degree[items] < k))
        if not short.any():
            return keep
        keep &= ~short


def _temporal_split(users: np.ndarray, num_users: int, config: PlantedConfig) -> np.ndarray:
    r"""x_label per interaction for rows sorted by (user, time): the last
    :math:`\max(1, \mathrm{round}(r\, n_u))` rows of a user are test, the ones
    before valid, the rest train."""
    counts = np.bincount(users, minlength=num_users)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(users)) - starts[users]
    n = counts[users]
    num_test = np.maximum(1, np.floor(config.test_ratio * n + 0.5)).astype(np.int64)
    num_valid = np.maximum(1, np.floor(config.valid_ratio * n + 0.5)).astype(np.int64)
    labels = np.zeros(len(users), dtype=np.int64)
    labels[rank >= n - num_test - num_valid] = 1
    labels[rank >= n - num_test] = 2
    return labels


def _feature_blocks(
    item_topics: np.ndarray, config: PlantedConfig, modality: str, seed: int
) -> Iterator[tuple[int, np.ndarray]]:
    r"""Yields ``(first_row, block)`` float32 feature blocks of
    :data:`_FEATURE_BLOCK_ROWS` items, so the largest presets never hold a
    full-size temporary."""
    rng = _rng(seed, modality)
    num_items, k = item_topics.shape
    dim = config.modality_dims[modality]
    projection = rng.standard_normal((k, dim), dtype=np.float32)
    if modality == "text":
        offset = config.text_offset * rng.standard_normal(dim)
    else:
        bias = 0.5 * rng.standard_normal(dim)
        style_projection = config.image_nuisance * rng.standard_normal(
            (config.num_image_styles, dim), dtype=np.float32
        )
        styles = rng.integers(0, config.num_image_styles, num_items)
    for begin in range(0, num_items, _FEATURE_BLOCK_ROWS):
        z = item_topics[begin : begin + _FEATURE_BLOCK_ROWS].astype(np.float32)
        noise = rng.standard_normal((len(z), dim), dtype=np.float32)
        if modality == "text":
            x = z @ projection + offset.astype(np.float32)
            x += config.text_noise * noise
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        else:
            x = z @ projection + bias.astype(np.float32)
            x += style_projection[styles[begin : begin + len(z)]]
            x += config.image_noise * noise
            np.maximum(x, 0.0, out=x)
        yield begin, x


def write_planted(
    root: str | os.PathLike,
    name: str,
    preset: str | PlantedConfig = "baby",
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    r"""Generates a planted dataset and writes it in the MMRec format:
    ``root/name/name.inter`` (header ``userID itemID rating timestamp
    x_label``), ``image_feat.npy`` and ``text_feat.npy`` (float32, for the
    modalities the preset has) and a ``planted.json`` sidecar. Feature files
    are written block by block through a memory map, so even ``large`` stays
    within a few GiB.

    If the folder already holds the files of the same preset, seed and
    generator version, nothing is written. Files are written under temporary
    names and renamed, the sidecar last, so an interrupted write is never
    mistaken for a finished one.

    Args:
        root (str or Path): The folder to create the dataset folder in.
        name (str): The dataset name (folder and ``.inter`` file name).
        preset (str or PlantedConfig, optional): A key of
            :data:`PLANTED_PRESETS` or a :class:`PlantedConfig`.
            (default: :obj:`"baby"`)
        seed (int, optional): The random seed. (default: :obj:`0`)
        overwrite (bool, optional): Regenerate even if the folder holds
            this very dataset, and replace ``name.inter`` / feature files that
            have no ``planted.json`` beside them. Without it, an up-to-date
            dataset is kept, another planted dataset (different preset, seed
            or generator version) is replaced, and files without a sidecar
            (possibly real data) raise :class:`FileExistsError`.
            (default: :obj:`False`)

    Returns:
        The dataset folder ``root/name``.
    """
    preset_name, config = _resolve(preset)
    directory = Path(root).expanduser() / name
    inter_path = directory / f"{name}.inter"
    modality_files = {m: FEATURE_FILES[m] for m in config.modality_dims}
    sidecar = {
        "generator_version": GENERATOR_VERSION,
        "preset": preset_name,
        "seed": seed,
        "config": dataclasses.asdict(config),
        "modalities": modality_files,
    }
    sidecar_path = directory / SIDECAR_NAME
    outputs = [inter_path, *(directory / f for f in modality_files.values())]
    existing = _read_sidecar(sidecar_path)
    if (
        not overwrite
        and existing is not None
        and all(existing.get(key) == value for key, value in sidecar.items())
        and all(p.is_file() for p in outputs)
    ):
        logger.info("planted: %s is up to date, not rewriting it", directory)
        return directory
    owned = [sidecar_path, inter_path, *(directory / f for f in FEATURE_FILES.values())]
    present = [p.name for p in owned if p.exists()]
    if present and existing is None and not overwrite:
        raise FileExistsError(
            f"{directory} already holds {', '.join(present)} without a {SIDECAR_NAME} "
            f"from write_planted (real data, or an interrupted write); pass "
            f"overwrite=True to replace them"
        )
    if present:
        logger.info(
            "planted: replacing %s (was preset %r, seed %r, generator version %r)",
            directory,
            *((existing or {}).get(k) for k in ("preset", "seed", "generator_version")),
        )
    directory.mkdir(parents=True, exist_ok=True)
    for path in owned:
        path.unlink(missing_ok=True)

    structure = _generate_structure(config, seed)
    _write_inter(structure.interactions, inter_path)
    for modality, file_name in modality_files.items():
        path = directory / file_name
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        shape = (structure.item_topics.shape[0], config.modality_dims[modality])
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
        for begin, block in _feature_blocks(structure.item_topics, config, modality, seed):
            out[begin : begin + len(block)] = block
        out.flush()
        del out
        os.replace(partial, path)

    interactions = structure.interactions
    sidecar["statistics"] = {
        "num_users": int(interactions[:, 0].max()) + 1,
        "num_items": structure.item_topics.shape[0],
        "num_interactions": len(interactions),
        "num_per_split": np.bincount(interactions[:, 4], minlength=3).tolist(),
    }
    partial = sidecar_path.with_name(f"{sidecar_path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(sidecar, indent=2) + "\n")
    os.replace(partial, sidecar_path)
    logger.info(
        "planted: wrote %s (%s, seed %d): %s",
        directory,
        preset_name,
        seed,
        sidecar["statistics"],
    )
    return directory


def _read_sidecar(path: Path) -> dict | None:
    r"""The sidecar's content if ``path`` is a sidecar written by
    :func:`write_planted`, else :obj:`None`."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) and "generator_version" in content else None


def _write_inter(interactions: np.ndarray, path: Path) -> None:
    r"""Writes the table as tab-separated text with a header, formatting
    whole blocks of rows at once with numpy's vectorized string ops."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(partial, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\t".join(INTER_COLUMNS) + "\n")
        for begin in range(0, len(interactions), _WRITE_BLOCK_ROWS):
            block = interactions[begin : begin + _WRITE_BLOCK_ROWS]
            lines = block[:, 0].astype(str)
            for column in range(1, block.shape[1]):
                lines = np.char.add(np.char.add(lines, "\t"), block[:, column].astype(str))
            handle.write("\n".join(lines.tolist()))
            handle.write("\n")
    os.replace(partial, path)
