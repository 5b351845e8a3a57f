r"""The Amazon review datasets' raw files, as published by McAuley et al.:
the review and rating files of the 2014, 2018 and 2023 releases (which
columns hold the user, item, time and rating), their product metadata and the
2014 release's binary CNN image features.

* **2014** (`McAuley et al., SIGIR 2015 <https://arxiv.org/abs/1506.04757>`_):
  ``reviews_<Category>[_5].json.gz``, one Python dict literal per line with
  ``reviewerID``, ``asin``, ``overall`` (rating), ``unixReviewTime``
  (seconds); ``ratings_<Category>.csv``, ``user,item,rating,timestamp``
  without a header; ``meta_<Category>.json.gz`` (Python literals: ``asin``,
  ``title``, ``brand``, ``categories``, ``description``, ``imUrl``);
  ``image_features_<Category>.b``, records of a 10-byte ASIN and 4096
  little-endian float32.
* **2018** (`Ni et al., EMNLP 2019 <https://aclanthology.org/D19-1018>`_):
  ``<Category>[_5].json.gz``, JSON lines with the same four keys as 2014;
  ``meta_<Category>.json.gz`` (``asin``, ``title``, ``brand``, ``category``,
  ``description``, ``feature``, ``imageURLHighRes``).
* **2023** (`Hou et al., 2024 <https://arxiv.org/abs/2403.03952>`_):
  ``<Category>.jsonl[.gz]``, JSON lines with ``user_id``, ``parent_asin``
  (the item), ``rating``, ``timestamp`` (milliseconds);
  ``meta_<Category>.jsonl[.gz]`` (``parent_asin``, ``title``, ``store``,
  ``categories``, ``description``, ``features``, ``images``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dreamgeo.datasets.raw_io import base_suffix, is_gzip, iter_records

__all__ = [
    "AMAZON_FORMATS",
    "AmazonColumns",
    "amazon_columns",
    "detect_amazon_format",
    "read_amazon_meta",
    "read_amazon_image_features",
    "AMAZON_IMAGE_DIM",
    "RATINGS_2014_NAMES",
]

AMAZON_FORMATS: tuple[str, ...] = ("amazon2014", "amazon2018", "amazon2023")
AMAZON_IMAGE_DIM = 4096
_ASIN_BYTES = 10


@dataclass(frozen=True)
class AmazonColumns:
    r"""Where one Amazon file keeps the fields of an interaction.

    Args:
        user (str): The user column or key.
        item (str): The item column or key.
        time (str): The time column or key.
        rating (str): The rating column or key.
        header (bool): Whether a CSV file has a header line (a JSON-lines
            file always names its keys).
        python_literals (bool): Whether lines may be Python dict literals.
    """

    user: str
    item: str
    time: str
    rating: str
    header: bool = True
    python_literals: bool = False


_REVIEWS_2014 = AmazonColumns("reviewerID", "asin", "unixReviewTime", "overall", True, True)
# ratings_<Category>.csv has no header: its columns get these names
_RATINGS_2014 = AmazonColumns("user", "item", "timestamp", "rating", header=False)
_REVIEWS_2018 = AmazonColumns("reviewerID", "asin", "unixReviewTime", "overall")
_REVIEWS_2023 = AmazonColumns("user_id", "parent_asin", "timestamp", "rating")
RATINGS_2014_NAMES: tuple[str, ...] = ("user", "item", "rating", "timestamp")

_NAME_2014 = re.compile(r"^(reviews|ratings)_.+\.(json|csv)(\.gz)?$", re.IGNORECASE)


def amazon_columns(fmt: str, path: str | os.PathLike) -> AmazonColumns:
    r"""The columns of the Amazon file ``path`` in release :obj:`fmt`
    (``"amazon2014"``: a ``.csv`` file is the headerless ratings file, any
    other the reviews)."""
    if fmt == "amazon2014":
        return _RATINGS_2014 if base_suffix(path) == ".csv" else _REVIEWS_2014
    if fmt == "amazon2018":
        return _REVIEWS_2018
    if fmt == "amazon2023":
        return _REVIEWS_2023
    raise ValueError(f"unknown Amazon format {fmt!r}; choose one of {list(AMAZON_FORMATS)}")


def detect_amazon_format(path: str | os.PathLike) -> str | None:
    r"""The Amazon release of ``path``: ``"amazon2014"`` from the 2014 file
    names (``reviews_<Category>[_5].json[.gz]``, ``ratings_<Category>.csv``);
    else, for a JSON-lines file, from the keys of its first record
    (``reviewerID``/``asin`` 2018, ``user_id``/``parent_asin`` 2023);
    else :obj:`None`."""
    if _NAME_2014.match(Path(path).name):
        return "amazon2014"
    if base_suffix(path) not in (".json", ".jsonl", ".ndjson"):
        return None
    try:
        first = next(iter_records(path, python_literals=True), None)
    except ValueError:
        return None
    if first is None:
        return None
    _, record = first
    if {"reviewerID", "asin"} <= record.keys():
        return "amazon2018"
    if {"user_id", "parent_asin"} <= record.keys():
        return "amazon2023"
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = [_text(v) for v in value]
        joined = " ".join(p for p in parts if p)
        return joined or None
    text = str(value).strip()
    return text or None


def _flat_strings(value: Any) -> list[str]:
    r"""The strings of a nested list (2014 ``categories`` is a list of lists),
    each once, in order."""
    out: list[str] = []
    stack = [value]
    while stack:
        current = stack.pop(0)
        if isinstance(current, (list, tuple)):
            stack[:0] = list(current)
        elif current is not None and str(current).strip():
            out.append(str(current).strip())
    return list(dict.fromkeys(out))


def _first_url(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, (list, tuple)):
        for entry in value:
            if isinstance(entry, dict):  # 2023: {"large": ..., "hi_res": ..., "thumb": ...}
                url = entry.get("large") or entry.get("hi_res") or entry.get("thumb")
            else:
                url = _first_url(entry)
            if url:
                return url
    return None


def _normalize_meta(record: dict[str, Any]) -> dict[str, Any]:
    r"""One item's text and image fields under the same keys for every
    release."""
    categories = record.get("categories", record.get("category"))
    features = record.get("features", record.get("feature"))
    image = record.get("imUrl") or record.get("imageURLHighRes") or record.get("imageURL")
    return {
        "title": _text(record.get("title")),
        "brand": _text(record.get("brand") or record.get("store")),
        "categories": _flat_strings(categories),
        "description": _text(record.get("description")),
        "features": _flat_strings(features),
        "image_url": _first_url(image if image is not None else record.get("images")),
    }


def read_amazon_meta(
    path: str | os.PathLike,
    wanted: Iterable[str] | None = None,
    key: str | None = None,
    normalize: bool = True,
) -> dict[str, dict[str, Any]]:
    r"""Reads an item metadata file (JSON lines or, as in 2014, Python dict
    literals) into a dict keyed by item id.

    With :obj:`normalize`, each record becomes ``{"title", "brand",
    "categories", "description", "features", "image_url"}`` whatever the
    release: ``brand`` is 2023's ``store``, ``categories`` the flattened
    ``categories``/``category`` lists, ``description`` the description (lists
    joined by spaces), ``features`` 2018's ``feature`` or 2023's ``features``,
    ``image_url`` 2014's ``imUrl``, 2018's first ``imageURLHighRes`` (else
    ``imageURL``) or 2023's first ``images`` entry (``large``, else
    ``hi_res``). Missing fields are :obj:`None` or empty lists. Without it the
    records are kept as read.

    Args:
        path (str or Path): The metadata file (gzipped or not).
        wanted (Iterable[str], optional): Keep only these item ids.
            (default: :obj:`None`, all)
        key (str, optional): The item id key. (default: :obj:`None`:
            ``parent_asin`` when the first record has it, else ``asin``)
        normalize (bool, optional): Map the fields to the common keys above.
            (default: :obj:`True`)

    Raises:
        ValueError: If a line is not a record or lacks the key, naming the line.
    """
    keep = None if wanted is None else set(wanted)
    out: dict[str, dict[str, Any]] = {}
    for line, record in iter_records(path, python_literals=True):
        if key is None:
            key = "parent_asin" if "parent_asin" in record else "asin"
        if key not in record or record[key] is None:
            raise ValueError(
                f"{path}: line {line}: no item id {key!r}; the keys are {sorted(record)}"
            )
        item = str(record[key])
        if (keep is not None and item not in keep) or item in out:
            continue
        out[item] = _normalize_meta(record) if normalize else record
    return out


def _image_dtype(dim: int) -> np.dtype:
    return np.dtype([("asin", f"S{_ASIN_BYTES}"), ("features", "<f4", (dim,))])


def read_amazon_image_features(
    path: str | os.PathLike, dim: int = AMAZON_IMAGE_DIM
) -> tuple[np.ndarray, np.ndarray]:
    r"""Reads the 2014 release's ``image_features_<Category>.b``: back-to-back
    records of a 10-byte ASCII ASIN and :obj:`dim` little-endian float32,
    through one NumPy structured dtype (memory-mapped, so only the rows that
    are indexed later are read from disk).

    Args:
        path (str or Path): The ``.b`` file (gzipped is read into memory).
        dim (int, optional): Floats per record. (default: :obj:`4096`)

    Returns:
        The ASINs as a string array :math:`[R]` and the features as a
        read-only float32 array :math:`[R, \mathrm{dim}]`.

    Raises:
        ValueError: If the size is not a whole number of records, naming the
            record that is cut off.
    """
    dtype = _image_dtype(dim)
    if is_gzip(path):
        import gzip

        with gzip.open(path, "rb") as handle:
            buffer = handle.read()
        size = len(buffer)
    else:
        buffer = None
        size = Path(path).stat().st_size
    if size == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes)")
    if size % dtype.itemsize:
        raise ValueError(
            f"{path}: {size} bytes is not a whole number of {dtype.itemsize}-byte records "
            f"(a {_ASIN_BYTES}-byte ASIN and {dim} float32): record {size // dtype.itemsize} "
            f"(at byte {size // dtype.itemsize * dtype.itemsize}) is cut off"
        )
    if buffer is not None:
        records = np.frombuffer(buffer, dtype=dtype)
    else:
        records = np.memmap(path, dtype=dtype, mode="r")
    asins = np.char.strip(records["asin"]).astype(str)
    return asins, records["features"]
