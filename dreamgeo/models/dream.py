r"""DREAM: A Dual Representation Learning Model for Multimodal Recommendation."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.checks import check_edge_index, check_values
from dreamgeo.datasets.hetero_input import canonical_hetero
from dreamgeo.datasets.schema import (
    INTERACTS,
    ITEM,
    USER,
    feature_key,
    modality_names,
    similarity_edge_type,
)
from dreamgeo.graph.knn_query import cosine_top_k
from dreamgeo.hparams import HParam, HParams
from dreamgeo.models.base import DualRepresentation, Objective, Recommender
from dreamgeo.models.modal_inputs import ITEM_BIAS, NEGATIVE_CANDIDATES
from dreamgeo.models.registry import register_model
from dreamgeo.nn.behavior_line import BehaviorLine
from dreamgeo.nn.bma_loss import BMALoss
from dreamgeo.nn.bpr_loss import BPRLoss
from dreamgeo.nn.conv import BipartiteLGConv
from dreamgeo.nn.dynamic_negatives import DynamicNegativeSampling
from dreamgeo.nn.item_bias import ItemBias
from dreamgeo.nn.modal_line import ModalLine, modality_weights, normalize_features
from dreamgeo.nn.s3_regularizer import S3Regularizer
from dreamgeo.nn.softmax_loss import SampledSoftmaxLoss
from dreamgeo.nn.sparse import SparseOperator, user_mean_operator

log = logging.getLogger(__name__)

__all__ = [
    "DREAM",
    "ABLATIONS",
    "PAPER_OPTIONS",
    "ablation_overrides",
    "bma_decay_factor",
    "default_modal_weights",
    "normalize_features",
]

#: The rows of the paper's Table 3 as overrides of :class:`DREAM`'s arguments; beyond
#: them, ``no_<m>_encoder`` removes the encoder of any modality ``m`` of the data
#: (:func:`ablation_overrides`).
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "no_filter_gate": {"use_filter_gate": False},
    "no_relation_graphs": {"use_relation_graphs": False},
    "no_text_encoder": {"plain_modalities": ("text",)},
    "no_image_encoder": {"plain_modalities": ("image",)},
    "no_encoders": {"use_filter_gate": False, "use_relation_graphs": False},
    "no_s3": {"use_s3": False},
    "no_inter": {"use_inter": False},
    "no_intra": {"use_intra": False},
    "no_alignment": {"use_intra": False, "use_inter": False},
}

#: The options at the paper's most literal reading (``configs/paper/dream.yaml``).
PAPER_OPTIONS: dict[str, Any] = {
    "s3_distance": "norm",
    "s3_reduction": "mean",
    "ablation_scope": "encoder",
    "gate_input": "id",
    "feature_norm": "none",
    "bma_direction": "one",
    "bma_similarity": "dot",
    "fusion": "sum",
    "relation_graph_sides": "both",
    "num_modal_layers": 1,
    "user_modal": "graph",
    "modality_dropout": 0.0,
    "edge_dropout": 0.0,
    "rec_loss": "bpr",
    "train_features": False,
    "bma_decay": 1.0,
    "bma_negatives": "batch",
    "negative_candidates": 1,
    "item_bias": False,
    "modal_weighting": "fixed",
}


def ablation_overrides(name: str, modalities: Sequence[str]) -> dict[str, Any]:
    r"""The argument overrides of ablation ``name``: a row of :data:`ABLATIONS`, or
    ``no_<m>_encoder`` for any modality ``m`` of ``modalities`` (e.g.
    ``no_audio_encoder``: modality ``audio`` keeps a plain projection, without gate and
    relation graphs)."""
    if name in ABLATIONS and not name.endswith("_encoder"):
        return dict(ABLATIONS[name])
    if name.startswith("no_") and name.endswith("_encoder") and name != "no_encoders":
        modality = name[len("no_") : -len("_encoder")]
        if modality in modalities:
            return {"plain_modalities": (modality,)}
    valid = [a for a in ABLATIONS if not a.endswith("_encoder")]
    valid += [f"no_{m}_encoder" for m in modalities]
    raise ValueError(
        f"DREAM: unknown ablation '{name}' for modalities {list(modalities)}; choose one of {valid}"
    )


def bma_decay_factor(decay: float, epoch: int) -> float:
    r"""The factor :math:`\delta^{t-1}` of BMA's weights in training epoch
    :math:`t =` :obj:`epoch` (from 1) under :obj:`bma_decay` :math:`\delta`."""
    return decay ** (epoch - 1)


def default_modal_weights(modalities: Sequence[str]) -> dict[str, float]:
    r"""The paper's :math:`\alpha_V = 0.3, \alpha_T = 0.7` for image + text, uniform
    weights for any other set of modalities."""
    return modality_weights(ModalLine.HPARAMS["image_weight"].default, modalities)


#: DREAM's own declarations: how the two lines are scored and trained. The parts
#: declare theirs (:class:`~dreamgeo.nn.BehaviorLine`, :class:`~dreamgeo.nn.ModalLine`,
#: :class:`~dreamgeo.nn.BMALoss`, :class:`~dreamgeo.nn.S3Regularizer`).
OBJECTIVE_HPARAMS = HParams(
    [
        HParam(
            "reg_weight",
            float,
            1e-4,
            "lambda, L2 weight on the batch's layer-0 embeddings",
            low=0.0,
        ),
        HParam(
            "ablation",
            str,
            "full",
            "a row of the paper's Table 3 (parts switched off), no_<m>_encoder for any "
            "modality m of the data",
            pattern="|".join(a for a in ABLATIONS if not a.endswith("_encoder"))
            + r"|no_\w+_encoder",
        ),
        HParam(
            "fusion",
            str,
            "sum",
            "scoring from the two lines: E_B + E_M (Eq. 12), concatenation, or "
            "E_B + w E_M with a learnable w",
            choices=("sum", "concat", "learnable"),
            details="``concat`` scores :math:`\\mathbf{e}_B^u\\cdot\\mathbf{e}_B^i + "
            "\\mathbf{e}_M^u\\cdot\\mathbf{e}_M^i`; ``learnable`` learns :math:`w` from 1",
        ),
        HParam(
            "rec_loss",
            str,
            "bpr",
            "ranking term of Eq. 13: BPR (the paper) or an in-batch sampled softmax over "
            "the batch's positive and negative items (beyond the paper)",
            choices=("bpr", "softmax"),
        ),
        HParam(
            "rec_tau",
            float,
            1.0,
            "temperature of rec_loss=softmax",
            low=0.0,
            low_open=True,
            requires=("rec_loss", "softmax"),
        ),
        NEGATIVE_CANDIDATES,
        ITEM_BIAS,
    ]
)


@register_model(
    "dream",
    position=1000,
    label="DREAM",
    tables=("table2",),
    reference="Zhang et al., DREAM: A Dual Representation Learning Model for "
    "Multimodal Recommendation, 2024",
)
class DREAM(Recommender):
    r"""DREAM from `"DREAM: A Dual Representation Learning Model for Multimodal
    Recommendation" <https://arxiv.org/abs/2404.11119>`_ (Zhang et al., 2024), read as in
    ``DESIGN.md`` section 3, composed of four parts that each declare their own
    hyper-parameters:

    * :class:`~dreamgeo.nn.BehaviorLine` (Eq. 1–3): LightGCN over the user–item graph,
      :math:`\bar{\mathbf{E}}_B`.
    * :class:`~dreamgeo.nn.ModalLine` (Eq. 4–7): per modality a Modal-specific
      Encoder (filter gate, item–item and user–user relation graphs), fused as
      :math:`\bar{\mathbf{E}}_M = \sum_m \alpha_m \bar{\mathbf{E}}_m`, for any
      :math:`M \ge 1` named modalities.
    * :class:`~dreamgeo.nn.BMALoss` (Eq. 9–11) on the batch's :math:`(u, i^+)` rows.
    * :class:`~dreamgeo.nn.S3Regularizer` (Eq. 8) against the raw features.

    Scores use :math:`\mathbf{E}_G = \bar{\mathbf{E}}_B + \bar{\mathbf{E}}_M` (Eq. 12),
    :math:`\hat{y}_{ui} = \mathbf{e}_G^{u\top}\mathbf{e}_G^i`; the objective (Eq. 14) on a
    batch of triples :math:`(u, i^+, i^-)` is

    .. math::
        \mathcal{L} = \mathcal{L}_{BPR} + \lambda \mathcal{L}_{reg}
        + \alpha \mathcal{L}_{Intra} + \beta \mathcal{L}_{Inter}
        + \gamma (\mathcal{L}_{S3}^{u} + \mathcal{L}_{S3}^{i}).

    Every part can be switched off for the paper's ablations (Table 3, :data:`ABLATIONS`,
    ``ablation=``); a switched-off part has no parameters, no stored graph and no
    compute. As a PyG model it is built from any :class:`~torch_geometric.data.HeteroData`
    (:meth:`from_hetero`), never writes into it, scores new interactions with
    ``forward(edge_index)`` and answers :meth:`recommend`.

    Args:
        data (HeteroData, optional): The dataset (``DESIGN.md`` section 2; copied, never
            modified). Alternatively give :obj:`num_users`, :obj:`num_items`,
            :obj:`edge_index` and :obj:`features` (and optionally
            :obj:`relation_graphs`). (default: :obj:`None`)
        num_users (int, optional): :math:`M`, without :obj:`data`.
        num_items (int, optional): :math:`N`, without :obj:`data`.
        edge_index (torch.Tensor, optional): Training interactions ``[2, E]``, without
            :obj:`data`.
        features (Mapping[str, torch.Tensor], optional): Raw item features per modality
            ``[N, d_m]``, without :obj:`data`.
        relation_graphs (Mapping[tuple[str, str], tuple[Tensor, Tensor]], optional):
            ``(node_type, modality) -> (edge_index, edge_weight)``, without :obj:`data`;
            built when missing. (default: :obj:`None`)
        embedding_dim (int, optional): :math:`d`. (default: :obj:`64`)
        modal_weights (Mapping[str, float], optional): :math:`\alpha_m`, non-negative and
            summing to 1, replacing ``image_weight``. (default: :obj:`None`)
        plain_modalities (Sequence[str], optional): Modalities whose encoder (gate and
            graphs) is removed. (default: :obj:`()`)
        graph_cache_dir (str, optional): Where built relation graphs are cached.
            (default: :obj:`None`, no cache)
        knn_mode (str, optional): ``"exact"`` or ``"ivf"`` top-:math:`k` search.
            (default: :obj:`"exact"`)
        knn_backend (str, optional): ``"torch"`` (blocked matmul + top-k, CPU or CUDA)
            or ``"faiss"``; ``"torch"`` is the default for exact search because
            faiss-cpu's bundled OpenBLAS ran 8–11× slower on our test machines (see
            ``benchmarks/README.md``). (default: :obj:`"torch"`)
        feature_dtype (torch.dtype or str, optional): ``"float32"`` or ``"bfloat16"``
            storage of the raw features and S3's target factors (half the memory; see
            :class:`~dreamgeo.nn.ModalEncoder`). (default: :obj:`"float32"`)
        **hyper_parameters: The declared hyper-parameters (:attr:`HPARAMS`, listed
            below), each declared once on the part it changes.

    Shapes:
        - **output of** :meth:`forward`: users ``[M, d]``, items ``[N, d]`` (``2d``
          with ``fusion="concat"``, one more column with :obj:`item_bias`)
    """

    HPARAMS = (
        BehaviorLine.HPARAMS
        + ModalLine.HPARAMS
        + BMALoss.HPARAMS
        + S3Regularizer.HPARAMS
        + OBJECTIVE_HPARAMS
    )

    def __init__(
        self,
        data: HeteroData | None = None,
        *,
        num_users: int | None = None,
        num_items: int | None = None,
        edge_index: Tensor | None = None,
        features: Mapping[str, Tensor] | None = None,
        relation_graphs: Mapping[tuple[str, str], tuple[Tensor, Tensor]] | None = None,
        embedding_dim: int = 64,
        modal_weights: Mapping[str, float] | None = None,
        plain_modalities: Sequence[str] = (),
        graph_cache_dir: str | None = None,
        knn_mode: str = "exact",
        knn_backend: str = "torch",
        feature_dtype: torch.dtype | str = "float32",
        **hyper_parameters,
    ):
        data = _as_hetero_data(data, num_users, num_items, edge_index, features, relation_graphs)
        super().__init__(data[USER].num_nodes, data[ITEM].num_nodes, data[INTERACTS].edge_index)
        values = self.HPARAMS.resolve(hyper_parameters, "DREAM")
        switches = ablation_overrides(values["ablation"], modality_names(data))
        plain_modalities = (*plain_modalities, *switches.pop("plain_modalities", ()))
        values.update(switches)
        if embedding_dim <= 0:
            raise ValueError(f"DREAM: embedding_dim must be > 0, got {embedding_dim}")
        self.hparams = values
        self.embedding_dim = embedding_dim
        edges, size = self.seen_edge_index, (self.num_users, self.num_items)
        self.behavior_line = BehaviorLine(
            *size, edges, embedding_dim, **BehaviorLine.HPARAMS.pick(values)
        )
        self.fusion: str = values["fusion"]
        # Eq. 12 fixes the modal line's weight at 1; fusion="learnable" learns it
        learnable = self.fusion == "learnable"
        self.fusion_weight = torch.nn.Parameter(torch.ones(())) if learnable else None
        self.item_bias = ItemBias(self.num_items) if values["item_bias"] else None
        self.user_mean = user_mean_operator(edges, *size)
        self.modal_line = ModalLine(
            data,
            self.user_mean,
            embedding_dim,
            modal_weights=modal_weights,
            plain_modalities=plain_modalities,
            graph_cache_dir=graph_cache_dir,
            knn_mode=knn_mode,
            knn_backend=knn_backend,
            feature_dtype=feature_dtype,
            **ModalLine.HPARAMS.pick(values),
        )
        candidates = values["negative_candidates"]
        self.negatives = (
            DynamicNegativeSampling(edges, *size, candidates) if candidates > 1 else None
        )
        self.bpr = BPRLoss(values["reg_weight"])
        softmax = values["rec_loss"] == "softmax"
        self.softmax = SampledSoftmaxLoss(values["rec_tau"]) if softmax else None
        self.bma = BMALoss.from_options(values)
        if self.bma is not None and self.bma.needs_interactions:
            self.bma.set_interactions(edges, *size)
        modal = self.modal_line
        raw = [data[ITEM][feature_key(m)].float() for m in modal.modalities]
        self.s3 = S3Regularizer.from_options(
            raw,
            [self.user_mean.matrix @ x for x in raw],
            [modal.modal_weights[m] for m in modal.modalities],
            modal.feature_dtype,
            values,
        )
        if self.s3 is not None and modal.agreeing is not None:
            if not modal.agreeing:
                # no modality's similarities tell co-bought items from random ones: S3's
                # target would be noise, and pulling toward it costs accuracy
                log.info("DREAM: S3 off, no modality agrees with the interactions")
                self.s3 = None
        self.reset_parameters()

    @classmethod
    def from_data(cls, data: HeteroData, **kwargs) -> DREAM:
        r"""DREAM on ``data`` from its declared hyper-parameters (what
        :func:`~dreamgeo.models.build_model` calls); ``kwargs`` as in the
        constructor."""
        return cls(data, **kwargs)

    @classmethod
    def from_ablation(cls, name: str, data: HeteroData | None = None, **kwargs) -> DREAM:
        r"""DREAM with the parts of the paper's Table 3 row ``name`` removed (a key of
        :data:`ABLATIONS`, e.g. ``"no_s3"``); ``kwargs`` as in the constructor."""
        return cls(data, **{**kwargs, "ablation": name})

    def reset_parameters(self):
        self.behavior_line.reset_parameters()
        self.modal_line.reset_parameters()
        if self.fusion_weight is not None:
            with torch.no_grad():
                self.fusion_weight.fill_(1.0)
        if self.item_bias is not None:
            self.item_bias.reset_parameters()

    @property
    def modalities(self) -> list[str]:
        r"""The modalities of the modal line, in the data's order."""
        return self.modal_line.modalities

    @property
    def modal_weights(self) -> dict[str, float]:
        r""":math:`\alpha_m` of Eq. 7."""
        return self.modal_line.modal_weights

    @property
    def user_embedding(self) -> torch.nn.Embedding:
        r"""The users' layer-0 ID embeddings :math:`\mathbf{E}_B^{u(0)}`."""
        return self.behavior_line.user_embedding

    @property
    def item_embedding(self) -> torch.nn.Embedding:
        r"""The items' layer-0 ID embeddings :math:`\mathbf{E}_B^{i(0)}`."""
        return self.behavior_line.item_embedding

    def behavior(
        self, graph: tuple[BipartiteLGConv, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""The behaviour line: :math:`\bar{\mathbf{E}}_B^u, \bar{\mathbf{E}}_B^i`, over
        ``graph`` (a layer and its edges; default: the full training graph)."""
        return self.behavior_line(graph)

    def modal(
        self,
        behavior: tuple[Tensor, Tensor] | None = None,
        user_mean: SparseOperator | None = None,
    ) -> tuple[Tensor, Tensor]:
        r"""The modal line: :math:`\bar{\mathbf{E}}_M^u, \bar{\mathbf{E}}_M^i`.

        Args:
            behavior (tuple[Tensor, Tensor], optional): :meth:`behavior`'s output, the
                gates' input with ``gate_input="behavior"`` (computed when missing).
                (default: :obj:`None`)
            user_mean (SparseOperator, optional): The operator averaging item rows to
                users. (default: :obj:`None`, the training graph's)
        """
        if behavior is None and self.modal_line.gate_input == "behavior":
            behavior = self.behavior()
        ids = (self.user_embedding.weight, self.item_embedding.weight)
        return self.modal_line(ids, behavior, user_mean)

    def representations(
        self,
        graph: tuple[BipartiteLGConv, Tensor] | None = None,
        user_mean: SparseOperator | None = None,
    ) -> DualRepresentation:
        r"""Both representations of every user and item (the behaviour line over
        ``graph``, default the full training graph; users' modal features averaged by
        ``user_mean``, default the training graph's)."""
        behavior = self.behavior(graph)
        return DualRepresentation(*behavior, *self.modal(behavior, user_mean))

    def dual_representations(self) -> DualRepresentation:
        r"""Same as :meth:`representations`; the name the baselines with a BMA plug-in
        share, so diagnostics treat every dual-line model alike."""
        return self.representations()

    @torch.no_grad()
    def cold_item_embeddings(self, features: Mapping[str, Tensor]) -> Tensor:
        r"""Scoring representations ``[K, d]`` of :math:`K` new items that have
        features but no interactions, so that they can be recommended at once: each new
        item's :math:`k - 1` nearest existing items by raw-feature cosine (per modality,
        :math:`k` = ``knn_k``) stand in for what it lacks, the behaviour row and the ID
        row the filter gate multiplies (their mean, weighted by :math:`\alpha_m` across
        modalities); its modal row goes through the trained encoders, gates and its new
        row of the item–item relation graph (:meth:`ModalLine.fold_in
        <dreamgeo.nn.ModalLine.fold_in>`); Eq. 12 fuses them. The model is unchanged.

        Args:
            features (Mapping[str, torch.Tensor]): Raw features ``[K, d_m]`` of every
                modality of the model, finite.

        Shapes:
            - **output:** ``[K, d]`` (columns as :meth:`forward`'s items)
        """
        line = self.modal_line
        missing = sorted(set(line.modalities) - set(features))
        if missing:
            raise ValueError(f"DREAM.cold_item_embeddings: features of {missing} are missing")
        rows = None
        for m in line.modalities:
            x = features[m]
            name = f"features[{m!r}]"
            if not isinstance(x, Tensor) or x.dim() != 2 or x.size(1) != line.features(m).size(1):
                width = line.features(m).size(1)
                raise ValueError(f"DREAM.cold_item_embeddings: {name} must be [K, {width}]")
            check_values(x, name, "DREAM.cold_item_embeddings")
            rows = x.size(0) if rows is None else rows
            if x.size(0) != rows:
                raise ValueError("DREAM.cold_item_embeddings: every modality needs K rows")
        rep = self.representations()
        k = min(line.knn_k, self.num_items + 1)
        neighbours = {
            m: cosine_top_k(features[m], line.features(m), max(k - 1, 1))[0]
            for m in line.modalities
        }

        def neighbour_mean(table: Tensor) -> Tensor:
            return sum(w * table[neighbours[m]].mean(1) for m, w in line.modal_weights.items())

        behavior = neighbour_mean(rep.item_behavior)
        if line.gate_input == "behavior":
            gate_rows, item_gate = behavior, rep.item_behavior
        else:
            gate_rows, item_gate = (
                neighbour_mean(self.item_embedding.weight),
                self.item_embedding.weight,
            )
        fused = self.fuse(behavior, line.fold_in(features, gate_rows, item_gate, neighbours))
        if self.item_bias is not None:  # a new item starts from the bias's initial 0
            fused = torch.cat([fused, fused.new_zeros(fused.size(0), 1)], dim=-1)
        return fused

    def fuse(self, behavior: Tensor, modal: Tensor) -> Tensor:
        r"""The scoring representation :math:`\mathbf{e}_G` of rows of both lines (Eq. 12
        with ``fusion="sum"``); scores are inner products of fused rows."""
        if self.fusion == "concat":
            return torch.cat([behavior, modal], dim=-1)
        if self.fusion == "learnable":
            return behavior + self.fusion_weight * modal
        return behavior + modal

    def _scoring_users(self, rows: Tensor) -> Tensor:
        return rows if self.item_bias is None else self.item_bias.users(rows)

    def _scoring_items(self, rows: Tensor, items: Tensor | None = None) -> Tensor:
        return rows if self.item_bias is None else self.item_bias.items(rows, items)

    def forward(self, edge_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Final user and item representations (scores are their inner products).

        Args:
            edge_index (torch.Tensor, optional): User-item interactions ``[2, E]`` to
                compute them from instead of the training graph, e.g. the training graph
                plus a user's new clicks: the behaviour line propagates over it and users'
                modal features average their items in it, with no retraining. The
                relation graphs (Eq. 5-6) stay those built at construction.
                (default: :obj:`None`, the training graph)
        """
        if edge_index is None:
            rep = self.representations()
        else:
            edge_index = check_edge_index(
                edge_index, self.num_users, self.num_items, "edge_index", "DREAM.forward"
            ).to(self.user_embedding.weight.device)
            user_mean = user_mean_operator(edge_index, self.num_users, self.num_items)
            rep = self.representations(
                self.behavior_line.graph(edge_index), user_mean.to(edge_index.device)
            )
        return (
            self._scoring_users(self.fuse(rep.user_behavior, rep.user_modal)),
            self._scoring_items(self.fuse(rep.item_behavior, rep.item_modal)),
        )

    def objective(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> Objective:
        rep = self.representations(self.behavior_line.training_graph(users.numel()))
        # each row is gathered once: every gather's backward scatters into a full
        # [M, d] or [N, d] zero tensor
        user_behavior, user_modal = rep.user_behavior[users], rep.user_modal[users]
        user_final = self._scoring_users(self.fuse(user_behavior, user_modal))

        def item_final(items: Tensor) -> Tensor:
            fused = self.fuse(rep.item_behavior[items], rep.item_modal[items])
            return self._scoring_items(fused, items)

        if self.negatives is not None:
            neg_items = self.negatives.hardest(users, neg_items, user_final, item_final)
        pos_behavior, pos_modal = rep.item_behavior[pos_items], rep.item_modal[pos_items]
        neg_final = item_final(neg_items)
        pos_final = self._scoring_items(self.fuse(pos_behavior, pos_modal), pos_items)
        if self.softmax is not None:
            ranking = self.softmax(user_final, pos_final, neg_final, pos_items, neg_items)
        else:
            ranking = self.bpr.ranking(
                (user_final * pos_final).sum(-1), (user_final * neg_final).sum(-1)
            )
        reg = self.bpr.regularization(
            self.user_embedding(users),
            self._scoring_items(self.item_embedding(pos_items), pos_items),
            self._scoring_items(self.item_embedding(neg_items), neg_items),
        )
        total = ranking + self.bpr.reg_weight * reg
        parts = {"bpr": ranking.detach(), "reg": reg.detach()}  # logged as bpr either way

        if self.bma is not None:
            total = total + self.bma(
                user_behavior, pos_behavior, user_modal, pos_modal, users, pos_items
            )
            if self.bma.intra_weight > 0:
                parts["intra"] = self.bma.last_parts.intra
            if self.bma.inter_weight > 0:
                parts["inter"] = self.bma.last_parts.inter

        if self.s3 is not None:
            weighted, value = self.s3.term(user_modal, users, pos_modal, pos_items)
            total = total + weighted
            parts["s3"] = value.detach()
        if self.fusion_weight is not None:
            parts["fusion_weight"] = self.fusion_weight.detach()
        return total, parts, None  # BMA is part of DREAM's own objective (Eq. 14)


DREAM.__doc__ += "\n    **Declared hyper-parameters** (:attr:`HPARAMS`):\n\n    Args:\n" + (
    DREAM.HPARAMS.docstring(indent=8) + "\n"
)


def _as_hetero_data(
    data: HeteroData | None,
    num_users: int | None,
    num_items: int | None,
    edge_index: Tensor | None,
    features: Mapping[str, Tensor] | None,
    relation_graphs: Mapping[tuple[str, str], tuple[Tensor, Tensor]] | None,
) -> HeteroData:
    # always a checked copy: the caller's data never gains the graphs built here
    if data is not None:
        return canonical_hetero(data, owner="DREAM")
    if num_users is None or num_items is None or edge_index is None or not features:
        raise ValueError(
            "DREAM needs either a HeteroData or num_users, num_items, edge_index and features"
        )
    data = HeteroData()
    data[USER].num_nodes = num_users
    data[ITEM].num_nodes = num_items
    data[INTERACTS].edge_index = edge_index
    for m, x in features.items():
        data[ITEM][feature_key(m)] = x
    for (node_type, m), (graph_index, graph_weight) in (relation_graphs or {}).items():
        store = data[similarity_edge_type(node_type, m)]
        store.edge_index = graph_index
        store.edge_weight = graph_weight
    return canonical_hetero(data, owner="DREAM")
