r"""DREAM's Modal-specific Encoder for one modality: filter gate and relation graphs."""

from __future__ import annotations

import torch
from torch import Tensor

from dreamgeo.nn.sparse import SparseOperator

__all__ = ["ModalEncoder"]


class ModalEncoder(torch.nn.Module):
    r"""The Modal-specific Encoder of one modality :math:`m` from "DREAM: A Dual
    Representation Learning Model for Multimodal Recommendation" (Zhang et al., 2024,
    Eq. 4–6): a filter gate shared by users and items, then one layer over the
    item–item (:math:`\tilde{\mathbf{S}}_m`) and user–user (:math:`\tilde{\mathbf{J}}_m`)
    relation graphs:

    .. math::
        \hat{\mathbf{E}}_m^i &= \sigma(\mathbf{E}_m^i \mathbf{W}_m + \mathbf{b}_m)
        \odot \mathbf{E}_B^i, \qquad
        \hat{\mathbf{E}}_m^u = \sigma(\mathbf{E}_m^u \mathbf{W}_m + \mathbf{b}_m)
        \odot \mathbf{E}_B^u

        \bar{\mathbf{E}}_m^i &= \tilde{\mathbf{S}}_m \hat{\mathbf{E}}_m^i, \qquad
        \bar{\mathbf{E}}_m^u = \tilde{\mathbf{J}}_m \hat{\mathbf{E}}_m^u

    with :math:`\mathbf{E}_B` the layer-0 ID embeddings. User features are means of
    their training items' features, :math:`\mathbf{E}_m^u = \mathbf{R}_{mean}
    \mathbf{E}_m^i`, so by linearity :math:`\mathbf{E}_m^u \mathbf{W}_m + \mathbf{b}_m =
    \mathbf{R}_{mean}(\mathbf{E}_m^i \mathbf{W}_m + \mathbf{b}_m)`: the
    :math:`d_m \to d` projection, the dominant cost, runs on the :math:`N` items only and
    is averaged to the users (never on :math:`M \times d_m` user features).

    Without the gate (:obj:`use_gate=False`, ablation "w/o Filter Gate") the modality is
    a plain linear projection :math:`\hat{\mathbf{E}}_m = \mathbf{E}_m\mathbf{W}_m +
    \mathbf{b}_m`, independent of the ID embeddings. Without graphs
    (:obj:`use_graph=False`) :math:`\bar{\mathbf{E}}_m = \hat{\mathbf{E}}_m`, and no
    graph is stored or multiplied.

    Features stored in a lower precision than the parameters (e.g. ``bfloat16``, see
    :class:`~dreamgeo.nn.DREAM`'s ``feature_dtype``) are projected in that precision,
    with the weights cast to it, and the projection is cast back to the parameters'
    dtype: the only large product of the encoder runs on the fast low-precision path,
    the graphs and gates stay in ``float32``, and the gradients reach ``float32``
    weights.

    Args:
        in_channels (int): Feature size :math:`d_m`.
        out_channels (int): Representation size :math:`d`.
        use_gate (bool, optional): Apply the filter gate. (default: :obj:`True`)
        use_graph (bool, optional): Propagate over the relation graphs.
            (default: :obj:`True`)
        use_item_graph (bool, optional): Propagate items over :math:`\tilde{\mathbf{S}}_m`;
            :obj:`None` follows :obj:`use_graph`. (default: :obj:`None`)
        use_user_graph (bool, optional): Propagate users over :math:`\tilde{\mathbf{J}}_m`;
            :obj:`None` follows :obj:`use_graph`. (default: :obj:`None`)
        num_layers (int, optional): Propagation layers over the relation graphs (Eq. 6
            has one; :math:`L_m > 1` gives :math:`\tilde{\mathbf{S}}_m^{L_m}
            \hat{\mathbf{E}}_m`, as FREEDOM's item graph). (default: :obj:`1`)

    Shapes:
        - **input:** item features ``[N, d_m]``, user mean operator ``[M, N]``, ID
          embeddings ``[M, d]`` and ``[N, d]``, relation graphs ``[N, N]`` and
          ``[M, M]`` (when :obj:`use_graph`)
        - **output:** user ``[M, d]`` and item ``[N, d]`` modal representations
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        use_gate: bool = True,
        use_graph: bool = True,
        use_item_graph: bool | None = None,
        use_user_graph: bool | None = None,
        num_layers: int = 1,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"ModalEncoder: num_layers must be >= 1, got {num_layers}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.use_gate = use_gate
        self.use_item_graph = use_graph if use_item_graph is None else use_item_graph
        self.use_user_graph = use_graph if use_user_graph is None else use_user_graph
        self.use_graph = self.use_item_graph or self.use_user_graph
        self.num_layers = num_layers
        self.projection = torch.nn.Linear(in_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.projection.weight)
        torch.nn.init.zeros_(self.projection.bias)

    def project(self, item_features: Tensor) -> Tensor:
        r""":math:`\mathbf{E}_m^i \mathbf{W}_m + \mathbf{b}_m` ``[N, d]`` in the
        parameters' dtype, computed in the features' dtype when that is lower."""
        weight, bias = self.projection.weight, self.projection.bias
        if item_features.dtype == weight.dtype:
            return self.projection(item_features)
        out = torch.nn.functional.linear(
            item_features, weight.to(item_features.dtype), bias.to(item_features.dtype)
        )
        return out.to(weight.dtype)

    def forward(
        self,
        item_features: Tensor,
        user_mean: SparseOperator,
        user_id_embedding: Tensor,
        item_id_embedding: Tensor,
        user_graph: SparseOperator | None = None,
        item_graph: SparseOperator | None = None,
    ) -> tuple[Tensor, Tensor]:
        item = self.project(item_features)
        user = user_mean(item)
        if self.use_gate:
            item = torch.sigmoid(item) * item_id_embedding
            user = torch.sigmoid(user) * user_id_embedding
        if self.use_item_graph:
            if item_graph is None:
                raise ValueError("ModalEncoder(use_item_graph=True) needs the item graph")
            for _ in range(self.num_layers):
                item = item_graph(item)
        if self.use_user_graph:
            if user_graph is None:
                raise ValueError("ModalEncoder(use_user_graph=True) needs the user graph")
            for _ in range(self.num_layers):
                user = user_graph(user)
        return user, item

    def extra_repr(self) -> str:
        return (
            f"use_gate={self.use_gate}, use_item_graph={self.use_item_graph}, "
            f"use_user_graph={self.use_user_graph}, num_layers={self.num_layers}"
        )
