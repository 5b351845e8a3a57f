r"""Symmetric degree normalization of the modal relation graphs (``DESIGN.md`` 3.3)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

__all__ = ["symmetric_normalize", "NORMALIZATION_VERSION"]

#: Bumped whenever :func:`symmetric_normalize` changes its output, so that relation
#: graphs cached on disk under an older rule are rebuilt.
NORMALIZATION_VERSION: int = 1


def symmetric_normalize(
    edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None
) -> Tensor:
    r"""Edge weights of :math:`\mathbf{D}^{-1/2} \mathbf{S} \mathbf{D}^{-1/2}`, with
    :math:`\mathbf{S}_{ij} = w_{ij}` for every edge :math:`(i, j)` and
    :math:`\mathbf{D}` the diagonal matrix of row sums (the row degree, Eq. 6 of the
    paper as MMRec's FREEDOM computes it):

    .. math::
        \tilde{w}_{ij} = \frac{w_{ij}}{\sqrt{d_i\, d_j}}, \qquad
        d_i = \sum_{j'} w_{ij'}.

    For an unweighted top-:math:`k` graph every row sum is :math:`k`, so every weight is
    :math:`1/k`. A node whose row sum is not positive contributes weight 0 to its edges.

    Args:
        edge_index (torch.Tensor): Edges ``[2, E]``, row 0 the row :math:`i` of
            :math:`\mathbf{S}`, row 1 the column :math:`j`.
        num_nodes (int): Number of nodes :math:`n`.
        edge_weight (torch.Tensor, optional): Weights :math:`w_{ij}` ``[E]``; ``None``
            means all ones. (default: ``None``)

    Shapes:
        - **input:** ``edge_index`` ``[2, E]``, ``edge_weight`` ``[E]``
        - **output:** ``[E]`` normalized weights (float32 unless ``edge_weight`` has
          another floating dtype)
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"symmetric_normalize: edge_index must have shape [2, E], got {tuple(edge_index.shape)}"
        )
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), dtype=torch.float32, device=edge_index.device)
    elif edge_weight.shape != (edge_index.size(1),):
        raise ValueError(
            f"symmetric_normalize: edge_weight has shape {tuple(edge_weight.shape)}, "
            f"expected [{edge_index.size(1)}]"
        )
    row, col = edge_index[0], edge_index[1]
    deg = scatter(edge_weight, row, dim=0, dim_size=num_nodes, reduce="sum")
    deg_inv_sqrt = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    return deg_inv_sqrt[row] * edge_weight * deg_inv_sqrt[col]
