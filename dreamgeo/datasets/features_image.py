r"""Item image features for ``dreamgeo features``: one local image file per item,
encoded by a CLIP image encoder from Hugging Face ``transformers``.

Images are found by name: the file of the item with original id ``ID`` is
``IMAGE_DIR/ID.<ext>`` for an image suffix (``.jpg``, ``.jpeg``, ``.png``,
``.webp``, ``.gif``, ``.bmp``, ``.tif``, ``.tiff``, any letter case; when several
exist, the first suffix in that order). An item without a file, or whose file
Pillow cannot read, has no image features: its row is filled by the missing rule
of :func:`~dreamgeo.datasets.features_writer.write_features` (zero by default;
MMRec fills missing images with the mean of the others, ``missing="mean"``) and it
is listed in ``<modality>_feat.missing.csv``.

The feature of an image is CLIP's image embedding: the pooled vision output
through the visual projection (``CLIPModel.get_image_features``; 512-d for
``openai/clip-vit-base-patch32``, the model of the embedded Scientific dataset),
not normalized. Images are converted to RGB and preprocessed by the model's own
image processor (resize, centre crop, normalize), with the Pillow backend when
torchvision is not installed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dreamgeo.datasets.features_writer import check_device, import_features_extra

__all__ = ["DEFAULT_IMAGE_MODEL", "IMAGE_SUFFIXES", "find_item_images", "CLIPImageEncoder"]

#: A CLIP ViT-B/32 (512-d), the image encoder of the embedded Scientific features.
DEFAULT_IMAGE_MODEL = "openai/clip-vit-base-patch32"
#: Image file suffixes looked for, in order of preference.
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
)


def find_item_images(
    image_dir: str | os.PathLike, original_ids: Sequence[str]
) -> list[Path | None]:
    r"""The image file of every item, :obj:`None` where there is none.

    Args:
        image_dir (str or Path): The folder of ``<original id>.<ext>`` files.
        original_ids (Sequence[str]): Original ids in item-id order.

    Raises:
        FileNotFoundError: If :obj:`image_dir` is not a folder.
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder {image_dir} does not exist")
    rank = {suffix: i for i, suffix in enumerate(IMAGE_SUFFIXES)}
    best: dict[str, tuple[int, Path]] = {}
    with os.scandir(image_dir) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            order = rank.get(suffix.lower())
            if order is None or not entry.is_file():
                continue
            if stem not in best or order < best[stem][0]:
                best[stem] = (order, Path(entry.path))
    return [best[i][1] if i in best else None for i in map(str, original_ids)]


class CLIPImageEncoder:
    r"""Encodes image files with a CLIP image encoder of ``transformers``.

    The model is a full CLIP checkpoint (``model_type`` ``"clip"``, e.g.
    ``openai/clip-vit-base-patch32``; only its vision tower and visual projection are
    kept) or a vision-only one (``"clip_vision_model"``, saved from
    ``CLIPVisionModelWithProjection``, or from ``CLIPVisionModel``, whose pooled
    output is then the feature). The folder needs the image processor's
    ``preprocessor_config.json``.

    Args:
        model (str or Path, optional): A model name on the Hugging Face Hub or a
            local folder. (default: :obj:`"openai/clip-vit-base-patch32"`)
        device (str, optional): ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            (default: :obj:`"cpu"`)
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_IMAGE_MODEL, device: str = "cpu") -> None:
        transformers = import_features_extra("transformers")
        self._pil = import_features_extra("PIL.Image")
        check_device(device)
        local = Path(model).expanduser()
        self.model_id = str(local.resolve()) if local.exists() else str(model)
        config = transformers.AutoConfig.from_pretrained(self.model_id)
        if config.model_type == "clip":
            full = transformers.CLIPModel.from_pretrained(self.model_id)
            vision, projection = full.vision_model, full.visual_projection
            del full
        elif config.model_type == "clip_vision_model":
            if "CLIPVisionModel" in (config.architectures or []):
                loaded = transformers.CLIPVisionModel.from_pretrained(self.model_id)
                vision, projection = loaded.vision_model, None
            else:
                loaded = transformers.CLIPVisionModelWithProjection.from_pretrained(self.model_id)
                vision, projection = loaded.vision_model, loaded.visual_projection
        else:
            raise ValueError(
                f"{self.model_id}: model_type {config.model_type!r} is not a CLIP model "
                f"('clip' or 'clip_vision_model')"
            )
        self.device = device
        self.vision = vision.to(device).eval()
        self.projection = projection.to(device).eval() if projection is not None else None
        self.dim = int(
            projection.out_features if projection is not None else vision.config.hidden_size
        )
        self.processor = _image_processor(transformers, self.model_id)

    def encode(self, inputs: list[str | os.PathLike]) -> tuple[np.ndarray, dict[int, str]]:
        r"""The rows of the image files :obj:`inputs` ``[len(inputs), dim]`` and the
        positions of files that could not be read, with Pillow's reason."""
        import torch

        images, kept, failed = [], [], {}
        for position, path in enumerate(inputs):
            try:
                with self._pil.open(path) as image:
                    images.append(image.convert("RGB"))
                kept.append(position)
            except (OSError, ValueError, self._pil.DecompressionBombError) as error:
                failed[position] = f"unreadable image {path}: {error}"
        rows = np.zeros((len(inputs), self.dim), dtype=np.float32)
        if images:
            pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                pooled = self.vision(pixel_values=pixels.to(self.device)).pooler_output
                out = self.projection(pooled) if self.projection is not None else pooled
            rows[kept] = out.float().cpu().numpy()
        return rows, failed


def _image_processor(transformers, model_id: str):
    r"""The model's image processor, with the Pillow backend when torchvision (which
    the fast processors need) is not installed."""
    kwargs = {}
    if importlib.util.find_spec("torchvision") is None:
        major = int(transformers.__version__.split(".")[0])
        kwargs = {"backend": "pil"} if major >= 5 else {"use_fast": False}
    return transformers.AutoImageProcessor.from_pretrained(model_id, **kwargs)
