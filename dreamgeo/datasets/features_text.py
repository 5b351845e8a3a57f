r"""Item text features for ``dreamgeo features``: one sentence per item from its
content fields, encoded by a `sentence-transformers <https://sbert.net>`_ model.

**The sentence, as MMRec builds it.** MMRec's preprocessing notebook
``preprocessing/3feat-encoder.ipynb`` (github.com/enoche/MMRec) fills a missing
``title``, ``brand``, ``categories`` or ``description`` with ``" "``, then forms
``title + ' ' + brand + ' '``, appends every category of the *first* category path
(``categories[0]``, Amazon's 2014 metadata holds a list of paths) each followed by
``' '``, appends the description, replaces ``'\n'`` by ``' '``, and encodes the
sentences with ``SentenceTransformer('all-MiniLM-L6-v2')`` (384-d) into
``text_feat.npy``. :func:`item_sentence` generalises this to any columns and gives
the same string for those four: each column contributes pieces that are joined by
one space (a missing value is the piece ``" "``; a list contributes its elements, or
the elements of its first element when that is a list; a string that reads as a
Python list, as in MMRec's metadata CSVs, counts as that list), then ``'\n'`` becomes
``' '``.

Where we differ: an item without a row in the items table, or with none of the
columns present, gets no text (:obj:`None`) instead of a sentence of blanks, so that
:func:`~dreamgeo.datasets.features_writer.write_features` reports it and fills its
row by the missing rule.
"""

from __future__ import annotations

import ast
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dreamgeo.datasets.features_writer import check_device, import_features_extra

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "DEFAULT_TEXT_COLUMNS",
    "item_sentence",
    "item_sentences",
    "SentenceTransformerEncoder",
]

#: MMRec's text model (384-d).
DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
#: MMRec's text fields, in its order.
DEFAULT_TEXT_COLUMNS: tuple[str, ...] = ("title", "brand", "categories", "description")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and not value.strip():
        return True
    return isinstance(value, (list, tuple)) and not value


def _pieces(value: Any) -> list[str]:
    r"""The strings that one field contributes to the sentence."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed = None
        if isinstance(parsed, (list, tuple)):
            value = parsed
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], (list, tuple)):
            value = value[0]
        return [str(v) for v in value if not _is_missing(v)]
    if _is_missing(value):
        return [" "]
    return [str(value)]


def item_sentence(record: dict[str, Any] | None, columns: Sequence[str]) -> str | None:
    r"""The sentence of one item: its :obj:`columns` by MMRec's rule (see the module
    docstring), or :obj:`None` when :obj:`record` is :obj:`None` or none of the
    columns has a value.

    Args:
        record (dict, optional): The item's row of the items table.
        columns (Sequence[str]): The fields, in order.
    """
    if record is None or all(_is_missing(record.get(c)) for c in columns):
        return None
    pieces = [piece for c in columns for piece in _pieces(record.get(c))]
    return " ".join(pieces).replace("\n", " ")


def item_sentences(
    records: Sequence[dict[str, Any] | None],
    columns: Sequence[str] = DEFAULT_TEXT_COLUMNS,
) -> list[str | None]:
    r""":func:`item_sentence` of every record.

    Args:
        records (Sequence[dict or None]): Items-table rows in item-id order.
        columns (Sequence[str], optional): The fields. (default:
            :obj:`("title", "brand", "categories", "description")`)
    """
    return [item_sentence(record, columns) for record in records]


class SentenceTransformerEncoder:
    r"""Encodes texts with a :class:`sentence_transformers.SentenceTransformer`
    (the rows as the model returns them; ``all-MiniLM-L6-v2`` normalizes them).

    Args:
        model (str or Path, optional): A model name on the Hugging Face Hub or a local
            folder. (default: :obj:`"all-MiniLM-L6-v2"`)
        device (str, optional): ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            (default: :obj:`"cpu"`)
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_TEXT_MODEL, device: str = "cpu") -> None:
        st = import_features_extra("sentence_transformers")
        check_device(device)
        local = Path(model).expanduser()
        self.model_id = str(local.resolve()) if local.exists() else str(model)
        self.model = st.SentenceTransformer(self.model_id, device=device)
        self.model.eval()
        # sentence-transformers >= 6 renamed get_sentence_embedding_dimension
        get_dim = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension", None
        )
        dim = get_dim() if get_dim is not None else None
        if dim is None:
            dim = self.model.encode(["dimension probe"], convert_to_numpy=True).shape[1]
        self.dim = int(dim)

    def encode(self, inputs: list[str]) -> tuple[np.ndarray, dict[int, str]]:
        r"""The rows of :obj:`inputs` ``[len(inputs), dim]``; no input fails."""
        rows = self.model.encode(
            list(inputs),
            batch_size=len(inputs),
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(rows, dtype=np.float32), {}
