r"""Raw interactions (and item feature files) to a dataset folder in the MMRec
layout that :class:`~dreamgeo.datasets.MMRecDataset` reads: the library side
of ``dreamgeo prepare``.

The steps, in order: read the interactions
(:func:`~dreamgeo.datasets.raw_interactions.read_interactions`), drop
duplicate ``(user, item)`` rows (the earliest kept), read the feature files
and, with ``missing_features="drop"``, drop the items that lack a row in any
of them, take the :math:`k`-core, number users and items
:math:`0, 1, \dots` in order of first appearance in the file (as MMRec's
``pd.unique`` does), split (:func:`~dreamgeo.datasets.splits.split_labels`)
and write everything into a temporary folder beside the target, renamed to
``root/name`` at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dreamgeo.datasets.amazon import AMAZON_FORMATS, read_amazon_meta
from dreamgeo.datasets.feature_files import ItemFeatureFile, read_item_features
from dreamgeo.datasets.interaction_filters import deduplicate, k_core
from dreamgeo.datasets.raw_interactions import RawInteractions, detect_format, read_interactions
from dreamgeo.datasets.splits import SPLIT_RULES, split_labels

__all__ = [
    "MISSING_FEATURE_RULES",
    "PrepareSummary",
    "prepare_dataset",
    "USER_MAPPING_FILE",
    "ITEM_MAPPING_FILE",
    "ITEMS_FILE",
    "SUMMARY_FILE",
    "MISSING_FEATURES_FILE",
]

MISSING_FEATURE_RULES: tuple[str, ...] = ("drop", "zero")
# MMRec's preprocessing/0rating2inter.ipynb writes these two, tab-separated
USER_MAPPING_FILE = "u_id_mapping.csv"
ITEM_MAPPING_FILE = "i_id_mapping.csv"
ITEMS_FILE = "items.jsonl"
SUMMARY_FILE = "prepare.json"
MISSING_FEATURES_FILE = "missing_features.tsv"
_SPLIT_NAMES = ("train", "valid", "test")


@dataclass
class PrepareSummary:
    r"""What :func:`prepare_dataset` read, dropped and wrote; also written to
    ``root/name/prepare.json`` (under ``"summary"``, beside ``"settings"``).

    Args:
        path (str): The dataset folder written.
        rows_read (int): Interaction rows in the input file.
        users_read (int): Distinct users in it.
        items_read (int): Distinct items in it.
        duplicates_dropped (int): Rows dropped as repeated ``(user, item)``
            pairs.
        missing_features (dict): Per modality, the items (after duplicates,
            before the :math:`k`-core) that have no feature row.
        missing_feature_rule (str): ``"drop"`` or ``"zero"``.
        items_dropped_for_features (int): Items dropped for lack of features.
        rows_dropped_for_features (int): Their rows.
        zero_filled (dict): Per modality, final items given a zero row.
        kcore (int): The :math:`k` of the :math:`k`-core.
        kcore_rounds (int): Rounds that removed something.
        kcore_rows_removed (int): Rows removed by the :math:`k`-core.
        kcore_users_removed (int): Users removed by it.
        kcore_items_removed (int): Items removed by it.
        num_users (int): Users written.
        num_items (int): Items written.
        num_interactions (int): Rows written.
        split (str): The split rule.
        split_sizes (dict): Rows per split (``train``, ``valid``, ``test``).
        heldout_rows_of_users_without_train (int): Valid and test rows of
            users with no training row (the MMRec reader drops them).
        cold_items (int): Items in valid or test rows only.
        feature_dims (dict): Per modality, the feature dimension.
        feature_file_duplicates (dict): Per modality, rows of the feature file
            whose id repeats (the first row is used).
        meta_items (int, optional): Items found in the metadata file.
    """

    path: str
    rows_read: int
    users_read: int
    items_read: int
    duplicates_dropped: int
    missing_features: dict[str, int]
    missing_feature_rule: str
    items_dropped_for_features: int
    rows_dropped_for_features: int
    zero_filled: dict[str, int]
    kcore: int
    kcore_rounds: int
    kcore_rows_removed: int
    kcore_users_removed: int
    kcore_items_removed: int
    num_users: int
    num_items: int
    num_interactions: int
    split: str
    split_sizes: dict[str, int]
    heldout_rows_of_users_without_train: int
    cold_items: int
    feature_dims: dict[str, int] = field(default_factory=dict)
    feature_file_duplicates: dict[str, int] = field(default_factory=dict)
    meta_items: int | None = None

    def to_dict(self) -> dict[str, Any]:
        r"""The summary as plain JSON-able values."""
        return asdict(self)

    def format(self) -> str:
        r"""The summary as the lines ``dreamgeo prepare`` prints."""
        lines = [
            f"read {self.rows_read} rows: {self.users_read} users, {self.items_read} items",
            f"duplicates dropped: {self.duplicates_dropped} (earliest (user, item) row kept)",
        ]
        for modality, count in self.missing_features.items():
            lines.append(f"items without {modality} features: {count}")
        if self.missing_feature_rule == "drop" and self.missing_features:
            lines.append(
                f"dropped for missing features: {self.items_dropped_for_features} items, "
                f"{self.rows_dropped_for_features} rows"
            )
        for modality, count in self.zero_filled.items():
            if count:
                lines.append(
                    f"zero {modality} rows written: {count} (listed in {MISSING_FEATURES_FILE})"
                )
        if self.kcore > 1:
            lines.append(
                f"{self.kcore}-core: removed {self.kcore_rows_removed} rows, "
                f"{self.kcore_users_removed} users, {self.kcore_items_removed} items in "
                f"{self.kcore_rounds} round(s)"
            )
        else:
            lines.append("k-core: off")
        lines.append(
            f"final: {self.num_users} users, {self.num_items} items, "
            f"{self.num_interactions} interactions"
        )
        sizes = self.split_sizes
        lines.append(
            f"split {self.split}: train {sizes['train']}, valid {sizes['valid']}, "
            f"test {sizes['test']}"
        )
        if self.heldout_rows_of_users_without_train:
            lines.append(
                f"valid/test rows of users without a training row: "
                f"{self.heldout_rows_of_users_without_train} (dropped when loaded)"
            )
        if self.cold_items:
            lines.append(f"items only in valid/test (cold start): {self.cold_items}")
        for modality, dim in self.feature_dims.items():
            lines.append(f"{modality}_feat.npy: [{self.num_items}, {dim}] float32")
        if self.meta_items is not None:
            lines.append(f"{ITEMS_FILE}: {self.num_items} items, {self.meta_items} with metadata")
        lines.append(f"written to {self.path}")
        return "\n".join(lines)


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name[0] == ".":
        raise ValueError(
            f"dataset name {name!r} must be a plain folder name (no slashes, not starting "
            f"with a dot)"
        )


def _check_modalities(features: Mapping[str, Any]) -> None:
    for modality in features:
        if not isinstance(modality, str) or not modality.isidentifier():
            raise ValueError(
                f"modality name {modality!r} must be a Python identifier (it becomes "
                f"{modality}_feat.npy and the attribute x_{modality})"
            )


def _check_ids(raw: RawInteractions) -> None:
    r"""Ids go into tab-separated mapping files: no tab or line break in them."""
    for role, ids in (("user", raw.user_ids), ("item", raw.item_ids)):
        for code, text in enumerate(ids.tolist()):
            if any(c in text for c in "\t\r\n"):
                line = raw.lines[int(np.argmax(getattr(raw, f"{role}s") == code))]
                raise ValueError(
                    f"{raw.path}: line {line}: {role} id {text!r} holds a tab or line break, "
                    f"which the tab-separated mapping files cannot hold"
                )


def _check_loadable_split(split: str, labels: np.ndarray, user_has_train: np.ndarray) -> None:
    r"""The MMRec reader drops the valid and test rows of users without a
    training row: some valid and test rows must survive that."""
    for label, name in ((1, "valid"), (2, "test")):
        rows = labels == label
        if rows.any() and not (rows & user_has_train).any():
            raise ValueError(
                f"split {split!r}: all {int(rows.sum())} {name} interactions belong to users "
                f"without a training interaction, whom the MMRec reader drops: the dataset "
                f"would have no {name} data"
            )


def _first_appearance(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""New codes :math:`0, 1, \dots` in order of first appearance, and the
    old code of each new code."""
    unique, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    order = np.argsort(first)
    new = np.empty(len(unique), dtype=np.int64)
    new[order] = np.arange(len(unique))
    return new[inverse.reshape(-1)], unique[order]


def _number_text(values: np.ndarray) -> list[str]:
    if np.issubdtype(values.dtype, np.integer):
        return [str(v) for v in values.tolist()]
    return [repr(v) for v in values.astype(np.float64).tolist()]


def _write_inter(
    path: Path,
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray | None,
    timestamps: np.ndarray | None,
    labels: np.ndarray,
) -> None:
    columns = {"userID": _number_text(users), "itemID": _number_text(items)}
    if ratings is not None:
        columns["rating"] = _number_text(ratings.astype(np.float64))
    if timestamps is not None:
        columns["timestamp"] = _number_text(timestamps)
    columns["x_label"] = _number_text(labels)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\t".join(columns) + "\n")
        handle.writelines("\t".join(row) + "\n" for row in zip(*columns.values()))


def _write_mapping(path: Path, header: tuple[str, str], original: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\t".join(header) + "\n")
        handle.writelines(f"{text}\t{new}\n" for new, text in enumerate(original))


def _write_items(
    path: Path, item_ids: Sequence[str], meta: Mapping[str, Mapping[str, Any]]
) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for new, original in enumerate(item_ids):
            record = {"itemID": new, "asin": original, **meta.get(original, {})}
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def _install(staging: Path, target: Path, overwrite: bool) -> None:
    r"""Renames the finished :obj:`staging` folder to :obj:`target`, replacing
    an existing one only with :obj:`overwrite` (moved aside first, removed
    after)."""
    if not target.exists():
        os.rename(staging, target)
        return
    if not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    if not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
    os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def prepare_dataset(
    interactions: str | os.PathLike,
    name: str,
    root: str | os.PathLike,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    rating_col: str | None = None,
    format: str | None = None,
    kcore: int = 5,
    split: str = "mmrec",
    seed: int = 0,
    features: Mapping[str, str | os.PathLike] | None = None,
    missing_features: str = "drop",
    meta: str | os.PathLike | None = None,
    overwrite: bool = False,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
) -> PrepareSummary:
    r"""Turns a raw interaction file (and item feature files) into the dataset
    folder ``root/name`` in the MMRec layout, ready for
    ``dreamgeo train --dataset name --data-root root``.

    Written files:

    * ``name.inter``: tab-separated ``userID itemID [rating] [timestamp]
      x_label`` (``x_label`` 0 train, 1 valid, 2 test), rows grouped by user;
    * ``u_id_mapping.csv`` and ``i_id_mapping.csv``: tab-separated, headers
      ``user_id userID`` and ``asin itemID`` (MMRec's names and columns), one
      line per original id and its new integer id;
    * ``<modality>_feat.npy``: float32 :math:`[N, d_m]`, row :math:`j` item
      :math:`j`, one per entry of :obj:`features`;
    * ``missing_features.tsv`` (``modality asin itemID``): the items given a
      zero row with ``missing_features="zero"``;
    * ``items.jsonl``: with :obj:`meta`, one JSON object per item in item id
      order: ``itemID``, ``asin`` (the original id) and, for the Amazon
      formats, ``title``, ``brand``, ``categories``, ``description``,
      ``features``, ``image_url`` (see
      :func:`~dreamgeo.datasets.amazon.read_amazon_meta`), else the metadata
      record as read;
    * ``prepare.json``: ``{"settings": ..., "summary": ...}`` (see
      :class:`PrepareSummary`).

    Duplicate ``(user, item)`` rows: the earliest by time is kept, the first
    in the file among equal times or without a time column. Ids become
    :math:`0, \dots, M-1` and :math:`0, \dots, N-1` in order of first
    appearance in the file among the rows that are kept.

    Args:
        interactions (str or Path): The interaction file (see
            :func:`~dreamgeo.datasets.raw_interactions.read_interactions`).
        name (str): The dataset name: folder and ``.inter`` file name.
        root (str or Path): The data root the folder is created in.
        user_col (str, optional): User id column (optional for the Amazon
            formats). (default: :obj:`None`)
        item_col (str, optional): Item id column (optional for the Amazon
            formats). (default: :obj:`None`)
        time_col (str, optional): Time column; ``split="loo"`` and
            ``"temporal"`` need it. (default: :obj:`None`)
        rating_col (str, optional): Rating column, written as ``rating``.
            (default: :obj:`None`)
        format (str, optional): The input format. (default: :obj:`None`,
            detected by :func:`~dreamgeo.datasets.raw_interactions.detect_format`)
        kcore (int, optional): Keep the :math:`k`-core: every user and item
            with at least this many interactions; :obj:`0` or :obj:`1` keeps
            all. (default: :obj:`5`)
        split (str, optional): ``"mmrec"``, ``"loo"`` or ``"temporal"`` (see
            :mod:`dreamgeo.datasets.splits`). (default: :obj:`"mmrec"`)
        seed (int, optional): Seed of the ``"mmrec"`` split's shuffle.
            (default: :obj:`0`)
        features (Mapping[str, str or Path], optional): Modality name to item
            feature file keyed by original item id (forms in
            :mod:`dreamgeo.datasets.feature_files`). (default: :obj:`None`)
        missing_features (str, optional): Items without a row in some feature
            file: ``"drop"`` them (with their interactions, before the
            :math:`k`-core) or give them a ``"zero"`` row (listed in
            ``missing_features.tsv``). (default: :obj:`"drop"`)
        meta (str or Path, optional): An item metadata file (JSON lines or
            Amazon's Python-literal lines) written to ``items.jsonl``.
            (default: :obj:`None`)
        overwrite (bool, optional): Replace an existing ``root/name``.
            (default: :obj:`False`)
        ratios (Sequence[float], optional): Train, valid, test shares of the
            ``"temporal"`` split. (default: :obj:`(0.8, 0.1, 0.1)`)

    Raises:
        FileExistsError: If ``root/name`` exists and not :obj:`overwrite`.
        FileNotFoundError: If an input file is missing.
        ImportError: For Parquet input without :mod:`pyarrow`.
        ValueError: For malformed input (naming file, line and column), an
            empty :math:`k`-core, or a split without valid or test rows;
            nothing is written then.
    """
    features = dict(features or {})
    _check_name(name)
    _check_modalities(features)
    if kcore < 0:
        raise ValueError(f"kcore must be >= 0, got {kcore}")
    if split not in SPLIT_RULES:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SPLIT_RULES)}")
    if missing_features not in MISSING_FEATURE_RULES:
        raise ValueError(
            f"unknown missing_features {missing_features!r}; choose one of "
            f"{list(MISSING_FEATURE_RULES)}"
        )
    target = Path(root).expanduser() / name
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    if not Path(interactions).is_file():
        raise FileNotFoundError(f"interactions file {interactions} does not exist")
    fmt = format or detect_format(interactions, user_col)
    if split != "mmrec" and time_col is None and fmt not in AMAZON_FORMATS:
        raise ValueError(
            f"split {split!r} orders interactions by time: give the time column (--time-col)"
        )
    for modality, path in features.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{modality} feature file {path} does not exist")
    if meta is not None and not Path(meta).is_file():
        raise FileNotFoundError(f"metadata file {meta} does not exist")

    raw = read_interactions(interactions, user_col, item_col, time_col, rating_col, fmt)
    _check_ids(raw)
    rows_read, users_read, items_read = len(raw), len(raw.user_ids), len(raw.item_ids)
    raw = raw.select(deduplicate(raw.users, raw.items, raw.timestamps))
    duplicates = rows_read - len(raw)

    tables: dict[str, ItemFeatureFile] = {m: read_item_features(p) for m, p in features.items()}
    rows_of = {m: t.row_of(raw.item_ids) for m, t in tables.items()}  # per item code
    missing_count = {m: int((rows < 0).sum()) for m, rows in rows_of.items()}
    items_dropped = rows_dropped = 0
    if missing_features == "drop" and tables:
        lacking = np.logical_or.reduce([rows < 0 for rows in rows_of.values()])
        dropped_rows = lacking[raw.items]
        items_dropped, rows_dropped = int(lacking.sum()), int(dropped_rows.sum())
        raw = raw.select(~dropped_rows)
        if len(raw) == 0:
            raise ValueError(
                f"no interaction is left: none of the {items_read} items has a row in every "
                f"feature file ({', '.join(f'{m}: {c} missing' for m, c in missing_count.items())})"
                f"; check that the feature files use the item ids of {raw.path}"
            )

    core = k_core(raw.users, raw.items, kcore)
    if not core.keep.any():
        raise ValueError(
            f"the {kcore}-core is empty: removing users and items with fewer than {kcore} "
            f"interactions left nothing of {len(raw)} rows (after {core.rounds} rounds); "
            f"pass a smaller kcore (--kcore)"
        )
    raw = raw.select(core.keep)

    users, user_codes = _first_appearance(raw.users)
    items, item_codes = _first_appearance(raw.items)
    labels = split_labels(split, users, raw.timestamps, seed, ratios)
    has_train = np.bincount(users[labels == 0], minlength=len(user_codes)) > 0
    _check_loadable_split(split, labels, has_train[users])

    item_ids = raw.item_ids[item_codes].tolist()
    aligned: dict[str, np.ndarray] = {}
    zero_filled: dict[str, list[int]] = {}
    for modality, table in tables.items():
        aligned[modality], missing = table.gather(rows_of[modality][item_codes], item_ids)
        zero_filled[modality] = np.flatnonzero(missing).tolist()
    meta_records = None
    if meta is not None:
        key = None if fmt in AMAZON_FORMATS else item_col
        meta_records = read_amazon_meta(
            meta, wanted=item_ids, key=key, normalize=fmt in AMAZON_FORMATS
        )

    in_train = np.bincount(items[labels == 0], minlength=len(item_codes)) > 0
    summary = PrepareSummary(
        path=str(target),
        rows_read=rows_read,
        users_read=users_read,
        items_read=items_read,
        duplicates_dropped=duplicates,
        missing_features=missing_count,
        missing_feature_rule=missing_features,
        items_dropped_for_features=items_dropped,
        rows_dropped_for_features=rows_dropped,
        zero_filled={m: len(v) for m, v in zero_filled.items()},
        kcore=kcore,
        kcore_rounds=core.rounds,
        kcore_rows_removed=core.rows_removed,
        kcore_users_removed=core.users_removed,
        kcore_items_removed=core.items_removed,
        num_users=len(user_codes),
        num_items=len(item_codes),
        num_interactions=len(raw),
        split=split,
        split_sizes=dict(zip(_SPLIT_NAMES, np.bincount(labels, minlength=3).tolist())),
        heldout_rows_of_users_without_train=int((~has_train[users]).sum()),
        cold_items=int((~in_train).sum()),
        feature_dims={m: int(x.shape[1]) for m, x in aligned.items()},
        feature_file_duplicates={m: t.duplicates for m, t in tables.items()},
        meta_items=None if meta_records is None else len(meta_records),
    )
    settings = {
        "interactions": str(Path(interactions).resolve()),
        "format": fmt,
        "user_col": user_col,
        "item_col": item_col,
        "time_col": time_col,
        "rating_col": rating_col,
        "name": name,
        "root": str(Path(root).expanduser().resolve()),
        "kcore": kcore,
        "split": split,
        "seed": seed,
        "ratios": list(ratios) if split == "temporal" else None,
        "features": {m: str(Path(p).resolve()) for m, p in features.items()},
        "missing_features": missing_features,
        "meta": None if meta is None else str(Path(meta).resolve()),
    }

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    staging.mkdir()
    try:
        order = np.argsort(users, kind="stable")
        _write_inter(
            staging / f"{name}.inter",
            users[order],
            items[order],
            None if raw.ratings is None else raw.ratings[order],
            None if raw.timestamps is None else raw.timestamps[order],
            labels[order],
        )
        _write_mapping(
            staging / USER_MAPPING_FILE, ("user_id", "userID"), raw.user_ids[user_codes].tolist()
        )
        _write_mapping(staging / ITEM_MAPPING_FILE, ("asin", "itemID"), item_ids)
        for modality, x in aligned.items():
            np.save(staging / f"{modality}_feat.npy", x)
        if any(zero_filled.values()):
            with open(staging / MISSING_FEATURES_FILE, "w", encoding="utf-8") as handle:
                handle.write("modality\tasin\titemID\n")
                for modality, rows in zero_filled.items():
                    handle.writelines(f"{modality}\t{item_ids[j]}\t{j}\n" for j in rows)
        if meta_records is not None:
            _write_items(staging / ITEMS_FILE, item_ids, meta_records)
        (staging / SUMMARY_FILE).write_text(
            json.dumps({"settings": settings, "summary": summary.to_dict()}, indent=2) + "\n"
        )
        _install(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary
