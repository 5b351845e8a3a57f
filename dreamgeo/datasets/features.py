r"""Item content to MMRec feature files: ``dreamgeo features``.

Reads a dataset folder ``root/name`` in the MMRec layout (its item ids
:math:`0, \dots, N-1` from ``i_id_mapping.csv``, the item content from
``items.jsonl``, both as ``dreamgeo prepare`` writes them, or other files given
explicitly) and writes ``<modality>_feat.npy``, float32 :math:`[N, d]` with row
:math:`i` = item :math:`i`, for

* **text**: the item's fields (default ``title``, ``brand``, ``categories``,
  ``description``) joined as MMRec does (:mod:`dreamgeo.datasets.features_text`) and
  encoded by sentence-transformers (default ``all-MiniLM-L6-v2``, 384-d, MMRec's
  model);
* **images**: the files ``image_dir/<original id>.<ext>`` encoded by a CLIP image
  encoder of ``transformers`` (:mod:`dreamgeo.datasets.features_image`).

Runs are batched, show a progress bar and resume after a kill without recomputing
finished batches (:mod:`dreamgeo.datasets.features_writer`). Items without content
get a zero row (or the mean row, ``missing="mean"``) and are listed in
``<modality>_feat.missing.csv``. The encoders come from the optional extra
``pip install "dreamgeo[features]"``; nothing here imports them before they are used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dreamgeo.datasets.features_image import (
    DEFAULT_IMAGE_MODEL,
    CLIPImageEncoder,
    find_item_images,
)
from dreamgeo.datasets.features_items import ItemTable, read_item_table
from dreamgeo.datasets.features_text import (
    DEFAULT_TEXT_COLUMNS,
    DEFAULT_TEXT_MODEL,
    SentenceTransformerEncoder,
    item_sentences,
)
from dreamgeo.datasets.features_writer import FeatureReport, write_features

__all__ = [
    "extract_item_features",
    "feature_file_name",
    "ITEMS_FILE",
    "MAPPING_FILE",
]

#: The items table that ``dreamgeo prepare`` writes into the dataset folder.
ITEMS_FILE = "items.jsonl"
#: MMRec's id mapping (original id, ``itemID``) in the dataset folder.
MAPPING_FILE = "i_id_mapping.csv"


def feature_file_name(modality: str) -> str:
    r"""The MMRec feature file of a modality: ``"text"`` -> ``"text_feat.npy"``."""
    return f"{modality}_feat.npy"


def extract_item_features(
    root: str | os.PathLike,
    name: str,
    text: bool = False,
    image_dir: str | os.PathLike | None = None,
    text_model: str | os.PathLike = DEFAULT_TEXT_MODEL,
    text_columns: Sequence[str] = DEFAULT_TEXT_COLUMNS,
    image_model: str | os.PathLike = DEFAULT_IMAGE_MODEL,
    items: str | os.PathLike | None = None,
    mapping: str | os.PathLike | None = None,
    id_column: str | None = None,
    text_name: str = "text",
    image_name: str = "image",
    batch_size: int = 64,
    device: str = "cpu",
    overwrite: bool = False,
    restart: bool = False,
    missing: str = "zero",
    progress: bool = True,
    max_batches: int | None = None,
) -> dict[str, FeatureReport]:
    r"""Writes the text and/or image features of a dataset's items into its folder.

    .. code-block:: python

        reports = extract_item_features("data", "baby", text=True, image_dir="images/")
        reports["text"].path      # data/baby/text_feat.npy, [N, 384]
        reports["image"].missing  # {item id: reason} of items without an image

    Every target file is checked before anything is encoded, so a refused overwrite
    costs no computation.

    Args:
        root (str or Path): The data root; the dataset folder is ``root/name``.
        name (str): The dataset name.
        text (bool, optional): Write text features. (default: :obj:`False`)
        image_dir (str or Path, optional): Write image features from this folder of
            ``<original id>.<ext>`` files. (default: :obj:`None`)
        text_model (str or Path, optional): A sentence-transformers model name or
            folder. (default: :obj:`"all-MiniLM-L6-v2"`)
        text_columns (Sequence[str], optional): The item fields of the text, in
            order. (default: :obj:`("title", "brand", "categories", "description")`)
        image_model (str or Path, optional): A CLIP model name or folder.
            (default: :obj:`"openai/clip-vit-base-patch32"`)
        items (str or Path, optional): The items table. (default: :obj:`None`,
            meaning ``root/name/items.jsonl``)
        mapping (str or Path, optional): The id mapping. (default: :obj:`None`,
            meaning ``root/name/i_id_mapping.csv`` when it exists, else none: the
            items table must then have an ``itemID`` column)
        id_column (str, optional): The items table's original-id column. (default:
            :obj:`None`, found as :func:`~dreamgeo.datasets.features_items.read_item_table`
            says)
        text_name (str, optional): The text modality's name: the file is
            ``<text_name>_feat.npy``. (default: :obj:`"text"`)
        image_name (str, optional): The image modality's name. (default:
            :obj:`"image"`)
        batch_size (int, optional): Items per batch. (default: :obj:`64`)
        device (str, optional): ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            (default: :obj:`"cpu"`)
        overwrite (bool, optional): Replace existing feature files. (default:
            :obj:`False`)
        restart (bool, optional): Discard unfinished runs instead of continuing them.
            (default: :obj:`False`)
        missing (str, optional): Rows of items without content: ``"zero"`` or
            ``"mean"``. (default: :obj:`"zero"`)
        progress (bool, optional): Show progress bars. (default: :obj:`True`)
        max_batches (int, optional): Stop each modality after this many newly
            encoded batches (the run can be continued later). (default: :obj:`None`)

    Returns:
        The :class:`~dreamgeo.datasets.features_writer.FeatureReport` of each
        modality written, by modality name.

    Raises:
        FileExistsError: If a feature file exists and :obj:`overwrite` is
            :obj:`False`.
        FileNotFoundError: If the items table, the mapping or the image folder is
            missing.
        ValueError: If nothing is asked for, the names clash, or a file is malformed.
        ImportError: If the ``features`` extra is not installed.
    """
    if not text and image_dir is None:
        raise ValueError("nothing to do: ask for text features, image features, or both")
    names = ([text_name] if text else []) + ([image_name] if image_dir is not None else [])
    for modality in names:
        if not modality.isidentifier():
            raise ValueError(
                f"modality name {modality!r} must be a Python identifier (e.g. text, image): "
                f"it becomes data['item'].x_{modality}"
            )
    if text and image_dir is not None and text_name == image_name:
        raise ValueError(f"the text and image modalities have the same name {text_name!r}")
    folder = Path(root).expanduser() / name
    targets = {}
    if text:
        targets[text_name] = folder / feature_file_name(text_name)
    if image_dir is not None:
        targets[image_name] = folder / feature_file_name(image_name)
    for path in targets.values():
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    table = _read_table(folder, items, mapping, id_column)
    folder.mkdir(parents=True, exist_ok=True)
    options = dict(
        batch_size=batch_size,
        overwrite=overwrite,
        restart=restart,
        missing=missing,
        original_ids=table.original_ids,
        progress=progress,
        max_batches=max_batches,
    )
    reports = {}
    if text:
        sentences = item_sentences(table.records, list(text_columns))
        encoder = SentenceTransformerEncoder(text_model, device=device)
        reports[text_name] = write_features(
            sentences,
            encoder,
            targets[text_name],
            missing_reason="no text: " + (", ".join(text_columns) or "no columns") + " missing",
            **options,
        )
    if image_dir is not None:
        files = find_item_images(image_dir, table.original_ids)
        encoder = CLIPImageEncoder(image_model, device=device)
        reports[image_name] = write_features(
            [None if f is None else str(f) for f in files],
            encoder,
            targets[image_name],
            missing_reason=f"no image file <id>.<ext> in {image_dir}",
            **options,
        )
    return reports


def _read_table(
    folder: Path,
    items: str | os.PathLike | None,
    mapping: str | os.PathLike | None,
    id_column: str | None,
) -> ItemTable:
    items_path = Path(items) if items is not None else folder / ITEMS_FILE
    if not items_path.exists():
        raise FileNotFoundError(
            f"items table {items_path} does not exist (write it with dreamgeo prepare, "
            f"or name one with items= / --items)"
        )
    if mapping is None:
        default = folder / MAPPING_FILE
        mapping_path = default if default.exists() else None
    else:
        mapping_path = Path(mapping)
        if not mapping_path.exists():
            raise FileNotFoundError(f"id mapping {mapping_path} does not exist")
    return read_item_table(items_path, mapping_path, id_column)
