r"""DREAM's modal line: one Modal-specific Encoder per modality over the raw item
features, fused by the modality weights."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import (
    INTERACTS,
    ITEM,
    USER,
    feature_key,
    modality_names,
    similarity_edge_type,
)
from dreamgeo.graph.modality_agreement import (
    agreeing_modalities,
    agreement_weights,
    modality_agreement,
)
from dreamgeo.hparams import HParam, HParams
from dreamgeo.nn.modal_encoder import ModalEncoder
from dreamgeo.nn.sparse import SparseOperator

__all__ = [
    "ModalLine",
    "FEATURE_DTYPES",
    "check_modality_weights",
    "modality_weights",
    "normalize_features",
]

log = logging.getLogger(__name__)

#: The storage dtypes of the raw features (:obj:`feature_dtype`).
FEATURE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
FEATURE_NORMS = ("none", "l2", "standardize", "whiten")
#: Triples drawn by :func:`~dreamgeo.graph.modality_agreement` for ``modal_weighting``.
AGREEMENT_SAMPLES = 200_000


def modality_weights(image_weight: float, modalities: Sequence[str]) -> dict[str, float]:
    r"""The weights :math:`\alpha_m` of Eq. 7 from one image weight :math:`\alpha_V`:
    ``{"image": α_V, "text": 1 - α_V}`` for image + text data (the paper's; MMRec's
    ``mm_image_weight``), uniform weights for any other set of modalities."""
    if not 0.0 <= image_weight <= 1.0:
        raise ValueError(f"image_weight must be in [0, 1], got {image_weight}")
    if sorted(modalities) == ["image", "text"]:
        return {"image": float(image_weight), "text": 1.0 - float(image_weight)}
    return {m: 1.0 / len(modalities) for m in modalities}


def normalize_features(x: Tensor, mode: str) -> Tensor:
    r"""Raw features ``[N, d_m]`` as the encoder sees them (``feature_norm``):
    ``"none"``; ``"l2"`` (unit rows); ``"standardize"`` (zero mean, unit variance per
    column); ``"whiten"`` (centred, projected on the principal axes and scaled by
    :math:`(\lambda_k + \bar\lambda)^{-1/2}`, a shrunk PCA whitening; its width is
    :math:`\min(N, d_m)`). Relation graphs and S3's targets always use the raw features.
    """
    x = x.float()
    if mode == "none":
        return x
    if mode == "l2":
        return torch.nn.functional.normalize(x, dim=-1)
    centred = x - x.mean(0, keepdim=True)
    if mode == "standardize":
        return centred / centred.std(0, keepdim=True).clamp(min=1e-6)
    if mode == "whiten":
        _, sv, vh = torch.linalg.svd(centred, full_matrices=False)
        eig = sv.pow(2) / max(x.size(0) - 1, 1)
        return (centred @ vh.t()) / (eig + eig.mean()).sqrt()
    raise ValueError(f"feature_norm must be one of {FEATURE_NORMS}, got {mode!r}")


class ModalLine(torch.nn.Module):
    r"""The modal line of `"DREAM: A Dual Representation Learning Model for Multimodal
    Recommendation" <https://arxiv.org/abs/2404.11119>`_ (Zhang et al., 2024), Eq. 4–7,
    for any set of :math:`M \ge 1` named modalities: per modality :math:`m` a
    :class:`~dreamgeo.nn.ModalEncoder` (filter gate shared by users and items, one
    layer over the item–item and user–user top-:math:`k` cosine relation graphs), fused
    with weights :math:`\alpha_m \ge 0`, :math:`\sum_m \alpha_m = 1`:

    .. math::
        \hat{\mathbf{E}}_m = \sigma(\mathbf{E}_m \mathbf{W}_m + \mathbf{b}_m) \odot
        \mathbf{E}_B^{(0)}, \qquad \bar{\mathbf{E}}_m = \tilde{\mathbf{S}}_m
        \hat{\mathbf{E}}_m, \qquad \bar{\mathbf{E}}_M = \sum_m \alpha_m \bar{\mathbf{E}}_m

    (users: :math:`\mathbf{E}_m^u = \mathbf{R}_{mean}\mathbf{E}_m^i` and the user–user
    graph :math:`\tilde{\mathbf{J}}_m`). The paper's two modalities are the case
    :math:`M = 2`; each modality keeps its own encoder, gate and graphs, and nothing
    couples the modalities but the weighted sum. Relation graphs stored in the data
    are used; missing ones are built with :func:`dreamgeo.graph.build_relation_graphs`
    in the data object given (pass a copy: DREAM does).

    Args:
        data (HeteroData): The dataset in dreamgeo's schema (a private copy).
        user_mean (SparseOperator): :math:`\mathbf{R}_{mean}` ``[M, N]``.
        embedding_dim (int, optional): :math:`d`. (default: :obj:`64`)
        modal_weights (Mapping[str, float], optional): :math:`\alpha_m`, replacing
            :obj:`image_weight`. (default: :obj:`None`)
        plain_modalities (Sequence[str], optional): Modalities whose encoder (gate and
            graphs) is removed (Table 3's "w/o <m> Encoder"). (default: :obj:`()`)
        graph_cache_dir (str, optional): Where built relation graphs are cached.
            (default: :obj:`None`)
        knn_mode (str, optional): ``"exact"`` or ``"ivf"`` top-:math:`k` search.
            (default: :obj:`"exact"`)
        knn_backend (str, optional): ``"torch"`` or ``"faiss"`` (see
            :func:`~dreamgeo.graph.knn_graph_cosine`; ``"torch"`` with ``"ivf"`` is the
            torch IVF engine). (default: :obj:`"torch"`)
        feature_dtype (str, optional): ``"float32"`` or ``"bfloat16"`` storage of the
            features the projections read. (default: :obj:`"float32"`)
        **options: The declared :attr:`HPARAMS`.

    Shapes:
        - **output:** users ``[M, d]``, items ``[N, d]``
    """

    HPARAMS = HParams(
        [
            HParam("knn_k", int, 10, "neighbours per row of the relation graphs", low=1),
            HParam(
                "image_weight",
                float,
                0.3,
                "alpha_V, the image share of the modal representation with modal_weighting="
                "fixed (text: 1 - it; other modality sets get equal weights)",
                low=0.0,
                high=1.0,
                grid=(0.1, 0.3, 0.5),
                aliases=("mm_image_weight",),
                requires=("modal_weighting", "fixed"),
            ),
            HParam(
                "modal_weighting",
                str,
                "agreement",
                "modality weights alpha_m: fixed (image_weight) or derived from how well each "
                "modality's feature similarities agree with the training interactions",
                choices=("fixed", "agreement"),
                details="``agreement``: :func:`~dreamgeo.graph.agreement_weights` of "
                ":func:`~dreamgeo.graph.modality_agreement` (beyond the paper, issue 34); "
                "they weight the modal representation and the S3 target alike",
            ),
            HParam("use_filter_gate", bool, True, "filter gates (Eq. 4)"),
            HParam("use_relation_graphs", bool, True, "relation graphs (Eq. 5-6)"),
            HParam(
                "ablation_scope",
                str,
                "encoder",
                "what 'w/o <m> encoder' removes: the gate and graphs, or the whole modality",
                choices=("encoder", "modality"),
                details="``encoder``: filter gate and relation graphs (Eq. 4-6), a plain "
                "projection of the features stays; ``modality``: no projection, no S3 "
                "target, its weight given to the others",
            ),
            HParam(
                "gate_input",
                str,
                "id",
                "filter gate (Eq. 4) multiplies the layer-0 ID embedding or the propagated "
                "behaviour embedding",
                choices=("id", "behavior"),
                details="``id`` is the formula's :math:`\\mathbf{E}_B` (as MGCN does), "
                "``behavior`` the propagated :math:`\\bar{\\mathbf{E}}_B` the text around "
                "Eq. 4 names",
            ),
            HParam(
                "feature_norm",
                str,
                "none",
                "normalization of the raw features before the encoder projection",
                choices=FEATURE_NORMS,
                details="see :func:`~dreamgeo.nn.modal_line.normalize_features`; relation "
                "graphs and S3 targets use the raw features",
            ),
            HParam(
                "relation_graph_sides",
                str,
                "both",
                "which relation graphs (Eq. 5-6) the encoders propagate over: item-item "
                "and user-user, or one of them",
                choices=("both", "item", "user"),
            ),
            HParam(
                "num_modal_layers",
                int,
                1,
                "propagation layers over the relation graphs (Eq. 6 has 1)",
                low=1,
            ),
            HParam(
                "user_modal",
                str,
                "graph",
                "user modal representation: own gated features over the user-user graph "
                "(Eq. 4-6), or the mean of the user's items' modal representations",
                choices=("graph", "items"),
            ),
            HParam(
                "modality_dropout",
                float,
                0.0,
                "probability of dropping a modality from the modal line for a training step",
                low=0.0,
                high=1.0,
                high_open=True,
            ),
            HParam(
                "train_features",
                bool,
                False,
                "fine-tune the features the encoder projections read, as MMRec's MGCN does "
                "(relation graphs and S3 targets stay on the raw features; beyond the paper)",
            ),
        ]
    )

    def __init__(
        self,
        data: HeteroData,
        user_mean: SparseOperator,
        embedding_dim: int = 64,
        *,
        modal_weights: Mapping[str, float] | None = None,
        plain_modalities: Sequence[str] = (),
        graph_cache_dir: str | None = None,
        knn_mode: str = "exact",
        knn_backend: str = "torch",
        feature_dtype: torch.dtype | str = "float32",
        **options,
    ):
        super().__init__()
        config = self.HPARAMS.resolve(options, "DREAM")
        #: AUC per modality (:func:`~dreamgeo.graph.modality_agreement`), or None when
        #: the weights are fixed
        self.agreement: dict[str, float] | None = None
        #: The modalities that agree with the interactions (excess AUC over chance, see
        #: :func:`~dreamgeo.graph.agreeing_modalities`), or None when the weights are fixed
        self.agreeing: dict[str, float] | None = None
        if modal_weights is None and config["modal_weighting"] == "agreement":
            self.agreement = modality_agreement(
                {m: data[ITEM][feature_key(m)] for m in modality_names(data)},
                data[INTERACTS].edge_index,
                AGREEMENT_SAMPLES,
            )
            # the anchors are interactions: a sample larger than the training set
            # repeats them, so the standard error is over at most that many
            samples = min(AGREEMENT_SAMPLES, data[INTERACTS].edge_index.size(1))
            self.agreeing = agreeing_modalities(self.agreement, samples)
            modal_weights = agreement_weights(self.agreement, samples)
            log.info(
                "DREAM: modality agreement (AUC) %s, weights %s", self.agreement, modal_weights
            )
        modalities, weights, plain = _modalities_and_weights(
            modality_names(data), modal_weights, plain_modalities, config
        )
        self.modalities: list[str] = modalities
        self.modal_weights: dict[str, float] = weights
        self.knn_k: int = config["knn_k"]
        self.feature_norm: str = config["feature_norm"]
        self.gate_input: str = config["gate_input"]
        self.user_modal: str = config["user_modal"]
        self.modality_dropout: float = config["modality_dropout"]
        self.user_mean = user_mean
        dtype_name = str(feature_dtype).removeprefix("torch.")
        if dtype_name not in FEATURE_DTYPES:
            raise ValueError(
                f"DREAM: feature_dtype must be one of {sorted(FEATURE_DTYPES)}, got "
                f"{feature_dtype!r}"
            )
        if config["train_features"] and dtype_name != "float32":
            raise ValueError(
                f"DREAM: train_features=True needs feature_dtype='float32', got "
                f"'{dtype_name}' (the optimizer updates the features in place)"
            )
        self.feature_dtype = FEATURE_DTYPES[dtype_name]

        sides = config["relation_graph_sides"]
        use_item_graph = config["use_relation_graphs"] and sides in ("both", "item")
        # users built from their items need no user-user graph
        use_user_graph = (
            config["use_relation_graphs"]
            and sides in ("both", "user")
            and self.user_modal == "graph"
        )
        graph_modalities = (
            [m for m in modalities if m not in plain] if use_item_graph or use_user_graph else []
        )
        if graph_modalities:
            _ensure_relation_graphs(
                data, graph_modalities, config["knn_k"], graph_cache_dir, knn_mode, knn_backend
            )
        self.encoders = torch.nn.ModuleDict()
        self.user_graphs = torch.nn.ModuleDict()
        self.item_graphs = torch.nn.ModuleDict()
        for m in modalities:
            x_in = normalize_features(data[ITEM][feature_key(m)].float(), config["feature_norm"])
            if config["train_features"]:
                self.register_parameter(f"features_{m}", torch.nn.Parameter(x_in.clone()))
            else:
                self.register_buffer(f"features_{m}", x_in.to(self.feature_dtype), False)
            use_graph = m in graph_modalities
            self.encoders[m] = ModalEncoder(
                x_in.size(1),
                embedding_dim,
                use_gate=config["use_filter_gate"] and m not in plain,
                use_item_graph=use_graph and use_item_graph,
                use_user_graph=use_graph and use_user_graph,
                num_layers=config["num_modal_layers"],
            )
            if use_graph and use_item_graph:
                self.item_graphs[m] = _graph_operator(data, ITEM, m)
            if use_graph and use_user_graph:
                self.user_graphs[m] = _graph_operator(data, USER, m)

    def reset_parameters(self):
        for encoder in self.encoders.values():
            encoder.reset_parameters()

    def features(self, modality: str) -> Tensor:
        r"""Item features ``[N, d_m]`` of ``modality`` as the encoder reads them (a
        parameter with ``train_features``)."""
        return getattr(self, f"features_{modality}")

    def step_weights(self) -> dict[str, float]:
        r"""The modality weights of this step: :attr:`modal_weights`, or while training
        with ``modality_dropout`` :math:`p`, each modality dropped with probability
        :math:`p` (at least one kept) and the kept weights renormalized."""
        if not self.training or self.modality_dropout == 0.0 or len(self.encoders) < 2:
            return self.modal_weights
        keep = torch.rand(len(self.modalities)) >= self.modality_dropout
        if not keep.any():
            keep[torch.randint(len(self.modalities), ())] = True
        kept = {m: w for m, w, k in zip(self.modalities, self.modal_weights.values(), keep) if k}
        total = sum(kept.values())
        if total <= 0:
            return self.modal_weights
        return {m: kept.get(m, 0.0) / total for m in self.modalities}

    def forward(
        self,
        id_embeddings: tuple[Tensor, Tensor],
        behavior: tuple[Tensor, Tensor] | None = None,
        user_mean: SparseOperator | None = None,
    ) -> tuple[Tensor, Tensor]:
        r""":math:`\bar{\mathbf{E}}_M^u, \bar{\mathbf{E}}_M^i`.

        Args:
            id_embeddings (tuple[Tensor, Tensor]): Layer-0 ID embeddings of users and
                items, the gates' input with ``gate_input="id"``.
            behavior (tuple[Tensor, Tensor], optional): The behaviour line's output, the
                gates' input with ``gate_input="behavior"``. (default: :obj:`None`)
            user_mean (SparseOperator, optional): :math:`\mathbf{R}_{mean}` of another
                interaction graph (new interactions). (default: :obj:`None`, the
                training graph's)
        """
        user_mean = self.user_mean if user_mean is None else user_mean
        if self.gate_input == "behavior":
            if behavior is None:
                raise ValueError("ModalLine: gate_input='behavior' needs the behaviour line")
            user_gate, item_gate = behavior
        else:
            user_gate, item_gate = id_embeddings
        weights = self.step_weights()
        user_modal = item_modal = None
        for m, encoder in self.encoders.items():
            weight = weights[m]
            if weight == 0.0:
                continue
            user, item = encoder(
                self.features(m),
                user_mean,
                user_gate,
                item_gate,
                self.user_graphs[m] if m in self.user_graphs else None,
                self.item_graphs[m] if m in self.item_graphs else None,
            )
            user_modal = weight * user if user_modal is None else user_modal + weight * user
            item_modal = weight * item if item_modal is None else item_modal + weight * item
        if self.user_modal == "items":
            user_modal = user_mean(item_modal)
        return user_modal, item_modal

    @torch.no_grad()
    def fold_in(
        self,
        features: Mapping[str, Tensor],
        gate_rows: Tensor,
        item_gate: Tensor,
        neighbours: Mapping[str, Tensor],
    ) -> Tensor:
        r"""Modal representations ``[K, d]`` of :math:`K` new items from their raw
        features alone, through the trained encoders: per modality the projection and
        filter gate of Eq. 4 on the new rows, then the new rows of the relation graph of
        Eq. 5–6: each new item joins the item–item graph with itself and its
        :math:`k - 1` nearest existing items (raw-feature cosine), every edge weighted
        :math:`1/k` as the row-normalized top-:math:`k` graph weighs them,

        .. math::
            \bar{\mathbf{e}}_m^{new} = \frac{1}{k}\Big(\hat{\mathbf{e}}_m^{new} +
            \sum_{j \in \mathcal{N}_k(new)} \hat{\mathbf{e}}_m^{j}\Big),

        fused with the weights :math:`\alpha_m` (Eq. 7). The existing items and their
        graphs are unchanged. Needs ``num_modal_layers=1`` and a row-wise
        ``feature_norm`` (``none`` or ``l2``).

        Args:
            features (Mapping[str, torch.Tensor]): Raw features ``[K, d_m]`` of every
                modality of the model.
            gate_rows (torch.Tensor): What the gates multiply for the new items
                ``[K, d]`` (their stand-in ID or behaviour rows).
            item_gate (torch.Tensor): The gates' input of the existing items ``[N, d]``.
            neighbours (Mapping[str, torch.Tensor]): Per modality the new items'
                :math:`k - 1` nearest existing items ``[K, k - 1]``.
        """
        if self.feature_norm not in ("none", "l2"):
            raise ValueError(
                f"ModalLine.fold_in: feature_norm '{self.feature_norm}' uses statistics of "
                "the training items; new items need a row-wise one (none or l2)"
            )
        modal = None
        for m, encoder in self.encoders.items():
            if encoder.num_layers != 1:
                raise ValueError("ModalLine.fold_in needs num_modal_layers=1")
            x_new = normalize_features(features[m].float(), self.feature_norm)
            new = encoder.project(x_new.to(self.features(m).dtype))
            if encoder.use_gate:
                new = torch.sigmoid(new) * gate_rows
            if m in self.item_graphs:
                existing = encoder.project(self.features(m))
                if encoder.use_gate:
                    existing = torch.sigmoid(existing) * item_gate
                new = (new + existing[neighbours[m]].sum(1)) / (neighbours[m].size(1) + 1)
            weight = self.modal_weights[m]
            modal = weight * new if modal is None else modal + weight * new
        return modal

    def extra_repr(self) -> str:
        return f"modal_weights={self.modal_weights}"


def _modalities_and_weights(
    modalities: list[str],
    modal_weights: Mapping[str, float] | None,
    plain_modalities: Sequence[str],
    config: Mapping[str, object],
) -> tuple[list[str], dict[str, float], tuple[str, ...]]:
    if not modalities:
        raise ValueError("DREAM needs at least one modality (data['item'].x_<m>)")
    unknown = sorted(set(plain_modalities) - set(modalities))
    if unknown:
        raise ValueError(
            f"DREAM: plain_modalities {unknown} are not modalities of the data {modalities}"
        )
    weights = (
        dict(modal_weights)
        if modal_weights
        else modality_weights(float(config["image_weight"]), modalities)
    )
    plain = tuple(plain_modalities)
    if config["ablation_scope"] == "modality" and plain:
        if set(plain) >= set(modalities):
            raise ValueError(
                f"DREAM: ablation_scope='modality' cannot remove every modality ({sorted(plain)})"
            )
        # the whole modality leaves the model: no encoder, no S3 target, no weight
        modalities = [m for m in modalities if m not in plain]
        kept = {m: float(weights.get(m, 0.0)) for m in modalities}
        total = sum(kept.values())
        weights = (
            {m: w / total for m, w in kept.items()}
            if total > 0
            else modality_weights(0.3, modalities)
        )
        plain = ()
    return modalities, check_modality_weights(weights, modalities, "DREAM"), plain


def check_modality_weights(
    weights: Mapping[str, float], modalities: Sequence[str], model: str
) -> dict[str, float]:
    r"""``weights`` as a dict over exactly ``modalities``, non-negative and summing to 1."""
    if set(weights) != set(modalities):
        raise ValueError(
            f"{model}: modality weights must name exactly the modalities {list(modalities)}, "
            f"got {sorted(weights)}"
        )
    if any(not 0.0 <= float(w) < float("inf") for w in weights.values()):
        raise ValueError(f"{model}: modality weights must be finite and >= 0, got {weights}")
    if abs(sum(weights.values()) - 1.0) > 1e-6:
        raise ValueError(f"{model}: modality weights must sum to 1, got {dict(weights)}")
    return {m: float(weights[m]) for m in modalities}


def _ensure_relation_graphs(
    data: HeteroData, modalities: list[str], k: int, cache_dir: str | None, mode: str, backend: str
) -> None:
    # a stored graph built with another k (``knn_k`` set by the builder) is rebuilt;
    # graphs given by the user without ``knn_k`` are taken as they are
    missing = [
        m
        for m in modalities
        for node_type in (USER, ITEM)
        if similarity_edge_type(node_type, m) not in data.edge_types
        or data[similarity_edge_type(node_type, m)].get("knn_k", k) != k
    ]
    if missing:
        from dreamgeo.graph import build_relation_graphs

        if mode == "ivf":
            backend = "torch_ivf" if backend in ("torch", "torch_ivf") else "faiss"
        log.info("Building relation graphs (k=%d) for %s", k, sorted(set(missing)))
        build_relation_graphs(
            data,
            k=k,
            modalities=sorted(set(missing), key=modalities.index),
            cache_dir=cache_dir,
            mode=mode,
            backend=backend,
        )


def _graph_operator(data: HeteroData, node_type: str, modality: str) -> SparseOperator:
    store = data[similarity_edge_type(node_type, modality)]
    num_nodes = data[node_type].num_nodes
    return SparseOperator(
        store.edge_index[0], store.edge_index[1], store.edge_weight, (num_nodes, num_nodes)
    )
