r"""Modal Information Forgetting (paper, Fig. 1b): how far the similarity structure of
learned modal representations has drifted from that of the raw modal features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pairwise_cosines", "cosine_distance", "modal_information_forgetting"]


def pairwise_cosines(x: Tensor) -> Tensor:
    r"""The strictly upper-triangular entries of the cosine-similarity matrix of the rows
    of ``x``, row by row: :math:`(\cos(\mathbf{x}_a, \mathbf{x}_b))_{a < b}`. Zero rows
    have similarity 0 to every row.

    Args:
        x (torch.Tensor): The rows to compare.

    Shapes:
        - **input:** ``[s, d]``
        - **output:** ``[s (s - 1) / 2]``
    """
    if x.dim() != 2 or x.size(0) < 2:
        raise ValueError(
            f"pairwise_cosines needs a [s, d] tensor with s >= 2, got {tuple(x.shape)}"
        )
    unit = F.normalize(x.float(), dim=-1)
    similarity = unit @ unit.t()
    row, col = torch.triu_indices(x.size(0), x.size(0), offset=1, device=x.device)
    return similarity[row, col]


def cosine_distance(a: Tensor, b: Tensor, centered: bool = False) -> Tensor:
    r"""One minus the cosine between two vectors (accumulated in float64),

    .. math::
        d(\mathbf{a}, \mathbf{b}) = 1 - \frac{\mathbf{a}^\top\mathbf{b}}
        {\max(\lVert\mathbf{a}\rVert_2 \lVert\mathbf{b}\rVert_2, \epsilon)},

    in :math:`[0, 2]`; a zero vector is at distance 1 from everything.

    Args:
        a (torch.Tensor): First vector.
        b (torch.Tensor): Second vector, same length.
        centered (bool, optional): Subtract each vector's mean first, which turns the
            cosine into Pearson's correlation. (default: :obj:`False`)

    Shapes:
        - **input:** ``[P]``, ``[P]``
        - **output:** scalar
    """
    if a.shape != b.shape or a.dim() != 1:
        raise ValueError(
            f"cosine_distance needs two vectors of one length, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    a, b = a.double(), b.to(a.device).double()
    if centered:
        a, b = a - a.mean(), b - b.mean()
    scale = (a.norm() * b.norm()).clamp(min=1e-12)
    return 1.0 - (a @ b) / scale


def modal_information_forgetting(
    representation: Tensor, features: Tensor, centered: bool = False
) -> Tensor:
    r"""Modal Information Forgetting of a sample of users or items: the cosine distance
    between the pairwise-similarity structure of their learned modal representations
    and that of their raw features of one modality.

    The paper (Fig. 1b) plots "the cosine distance between the learnable modal
    embeddings and the original modal features". Taken literally that is undefined
    here: learned modal representations are :math:`d`-dimensional (64) and raw features
    :math:`d_m`-dimensional (4096 image, 384 text), with no shared basis. What can be
    compared is what each space says about the *same* entities: which of them are
    alike. That is also exactly what DREAM's Similarity Supervised Signal (Eq. 8,
    :class:`~dreamgeo.nn.S3Loss`) constrains, the cosine similarities of modal
    representations against those of the raw features. So for a fixed sample of
    :math:`s` rows with learned representations :math:`\mathbf{E} \in
    \mathbb{R}^{s \times d}` and raw features :math:`\mathbf{X} \in
    \mathbb{R}^{s \times d_m}`,

    .. math::
        \mathbf{S}_E = \hat{\mathbf{E}}\hat{\mathbf{E}}^\top, \qquad
        \mathbf{S}_X = \hat{\mathbf{X}}\hat{\mathbf{X}}^\top, \qquad
        \mathrm{forgetting} = 1 - \frac{\sum_{a < b} (\mathbf{S}_E)_{ab}
        (\mathbf{S}_X)_{ab}}{\sqrt{\sum_{a < b} (\mathbf{S}_E)_{ab}^2}
        \sqrt{\sum_{a < b} (\mathbf{S}_X)_{ab}^2}}

    with :math:`\hat{\cdot}` row-wise L2 normalization; the diagonal (always 1) is left
    out, and each unordered pair counts once (both triangles give the same value). It is
    0 when the learned representations keep every pairwise cosine of the raw features
    (e.g. any orthogonal map of them, up to scale), grows as they drift, and is invariant
    to rotations and rescaling of either space. With :obj:`centered=True` both
    similarity vectors are centred first (:math:`1 -` Pearson correlation, as in
    representational similarity analysis), which ignores a shift of all similarities
    by a constant (e.g. raw image features whose cosines all sit near 0.9).

    Costs :math:`O(s^2 (d + d_m))` time and :math:`O(s^2)` memory; never use it on all
    items of a large catalogue, use a sample (e.g. :math:`s = 1000`).

    Args:
        representation (torch.Tensor): Learned modal representations of the sample.
        features (torch.Tensor): Raw features of one modality of the same rows, in the
            same order.
        centered (bool, optional): Compare centred similarities. (default: :obj:`False`)

    Shapes:
        - **input:** ``[s, d]``, ``[s, d_m]``
        - **output:** scalar in :math:`[0, 2]`
    """
    if representation.size(0) != features.size(0):
        raise ValueError(
            f"modal_information_forgetting: {representation.size(0)} representations but "
            f"{features.size(0)} feature rows; give the same sample to both"
        )
    return cosine_distance(
        pairwise_cosines(representation),
        pairwise_cosines(features.to(representation.device)),
        centered=centered,
    )
