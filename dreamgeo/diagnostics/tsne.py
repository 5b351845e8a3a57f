r"""Two-dimensional picture of the dual representations (paper, Fig. 7 and 10): t-SNE of
the behaviour and modal representations of random users and items, the two of one
entity in one colour and joined by a dashed line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dreamgeo.diagnostics.pyplot import INSTALL_HINT, import_pyplot
from dreamgeo.diagnostics.sampling import sample_nodes

if TYPE_CHECKING:
    from dreamgeo.models.base import DualRepresentation

__all__ = ["embed_2d", "plot_dual_tsne"]

log = logging.getLogger(__name__)


def embed_2d(x: Tensor, method: str = "auto", seed: int = 0) -> np.ndarray:
    r"""Rows of ``x`` in two dimensions.

    ``"tsne"`` uses :class:`sklearn.manifold.TSNE` (``init="pca"``, seeded, perplexity
    30 or less for few rows); ``"pca"`` the top two principal components (torch, no extra
    dependency); ``"auto"`` is t-SNE when scikit-learn is importable and PCA with a
    warning otherwise.

    Args:
        x (torch.Tensor): The rows.
        method (str, optional): ``"auto"``, ``"tsne"`` or ``"pca"``.
            (default: :obj:`"auto"`)
        seed (int, optional): Seed of t-SNE. (default: :obj:`0`)

    Shapes:
        - **input:** ``[n, d]``
        - **output:** ``[n, 2]`` float64
    """
    if method not in ("auto", "tsne", "pca"):
        raise ValueError(f"embed_2d: method must be 'auto', 'tsne' or 'pca', got {method!r}")
    x = x.detach().double().cpu()
    if x.dim() != 2 or x.size(0) < 3:
        raise ValueError(f"embed_2d needs a [n, d] tensor with n >= 3, got {tuple(x.shape)}")
    if method != "pca":
        try:
            from sklearn.manifold import TSNE
        except ImportError as error:
            if method == "tsne":
                raise ImportError(f"t-SNE needs scikit-learn: {INSTALL_HINT}") from error
            log.warning(
                "scikit-learn is not installed (%s); drawing PCA instead of t-SNE", INSTALL_HINT
            )
            method = "pca"
        else:
            perplexity = min(30.0, (x.size(0) - 1) / 3.0)
            tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
            return tsne.fit_transform(x.numpy())
    centered = x - x.mean(0)
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    return (centered @ v[:2].t()).numpy()


def plot_dual_tsne(
    representation: DualRepresentation,
    path: str | Path,
    num_points: int = 1000,
    num_lines: int = 50,
    seed: int = 0,
    method: str = "auto",
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    r"""Fig. 7: for :obj:`num_points` random users (left) and items (right), their
    behaviour (squares) and modal (circles) representations embedded together in two
    dimensions by t-SNE, one colour per entity, with a thin dashed line between the two
    points of :obj:`num_lines` of them (all of them would hide the points).

    Rows are L2-normalized first (:obj:`normalize`): scores and the alignment losses
    compare directions, and the two lines' norms differ by orders of magnitude in some
    models, which would split the picture into two blobs by norm alone. Euclidean
    distance between unit vectors is a monotone function of their cosine.

    Args:
        representation (DualRepresentation): ``model.dual_representations()``.
        path (str or Path): The PNG to write (parent directories are made).
        num_points (int, optional): Users and items drawn, each. (default: :obj:`1000`)
        num_lines (int, optional): Entities whose two points are joined.
            (default: :obj:`50`)
        seed (int, optional): Seed of the samples, colours and t-SNE. (default: :obj:`0`)
        method (str, optional): See :func:`embed_2d`. (default: :obj:`"auto"`)
        normalize (bool, optional): L2-normalize rows first. (default: :obj:`True`)
        title (str, optional): Figure title. (default: :obj:`None`)

    Returns:
        The path written.
    """
    plt = import_pyplot()
    from matplotlib.lines import Line2D

    panels = (
        ("users", representation.user_behavior, representation.user_modal),
        ("items", representation.item_behavior, representation.item_modal),
    )
    figure, axes = plt.subplots(1, 2, figsize=(12, 6))
    rng = np.random.default_rng(seed)
    used_method = method
    for panel, (name, behavior, modal) in zip(axes, panels):
        if behavior.shape != modal.shape:
            raise ValueError(
                f"plot_dual_tsne: {name}' behaviour {tuple(behavior.shape)} and modal "
                f"{tuple(modal.shape)} representations differ in shape"
            )
        index = sample_nodes(behavior.size(0), num_points, seed).to(behavior.device)
        count = index.numel()
        points = torch.cat([behavior[index], modal[index]]).detach().float()
        if normalize:
            points = F.normalize(points, dim=-1)
        if method == "auto":
            try:
                import sklearn.manifold  # noqa: F401

                used_method = "tsne"
            except ImportError:
                used_method = "pca"
        xy = embed_2d(points, method, seed)
        behavior_xy, modal_xy = xy[:count], xy[count:]
        colors = plt.get_cmap("turbo")(rng.permutation(count) / max(count - 1, 1))
        joined = rng.choice(count, size=min(num_lines, count), replace=False)
        for entity in joined:
            panel.plot(
                [behavior_xy[entity, 0], modal_xy[entity, 0]],
                [behavior_xy[entity, 1], modal_xy[entity, 1]],
                linestyle="--",
                linewidth=0.6,
                color=colors[entity],
                alpha=0.8,
                zorder=1,
            )
        style = {"s": 10, "c": colors, "linewidths": 0, "alpha": 0.75, "zorder": 2}
        panel.scatter(behavior_xy[:, 0], behavior_xy[:, 1], marker="s", **style)
        panel.scatter(modal_xy[:, 0], modal_xy[:, 1], marker="o", **style)
        panel.set_title(f"{count} {name}", fontsize=10)
        panel.set_xticks([])
        panel.set_yticks([])
    legend = [
        Line2D([], [], marker="s", linestyle="", color="grey", label="behaviour"),
        Line2D([], [], marker="o", linestyle="", color="grey", label="modal"),
        Line2D([], [], linestyle="--", color="grey", label="same entity"),
    ]
    axes[1].legend(handles=legend, loc="upper right", fontsize=8)
    projection = "t-SNE" if used_method == "tsne" else "PCA"
    figure.suptitle(f"{title + ': ' if title else ''}dual representations ({projection})")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
