r"""Behaviour-Modal Alignment (BMA) loss of DREAM."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamgeo.graph.seen_items import SeenItems
from dreamgeo.hparams import HParam, HParams

__all__ = ["BMALoss", "BMAParts", "info_nce"]


class _ScaledInfoNCE(torch.autograd.Function):
    r"""InfoNCE on already normalized, temperature-scaled rows with one
    :math:`B \times C` buffer: the forward keeps only the softmax, the backward is two
    products with it, :math:`\nabla_{\mathbf{A}} = (\mathbf{P} - \mathbf{Y})
    \hat{\mathbf{C}} / B` and :math:`\nabla_{\hat{\mathbf{C}}} = (\mathbf{P} -
    \mathbf{Y})^\top \mathbf{A} / B`, with :math:`\mathbf{Y}` the one-hot targets
    (the identity for in-batch negatives). Autograd through ``cross_entropy`` would
    materialize five :math:`B \times C` tensors (logits, scaled logits, log-softmax and
    their gradients) and run a division, a gather and a scatter over them."""

    @staticmethod
    def forward(
        ctx,
        scaled_anchor: Tensor,
        candidates: Tensor,
        target: Tensor | None,
        exclude: Tensor | None,
        bias: Tensor | None,
    ) -> Tensor:
        logits = scaled_anchor @ candidates.t()
        if bias is not None:  # a constant per candidate: the backward is unchanged
            logits += bias.to(logits.dtype)
        if exclude is not None:  # excluded candidates get probability 0, hence no gradient
            logits.masked_fill_(exclude, float("-inf"))
        log_probs = torch.log_softmax(logits, dim=-1)
        if target is None:
            loss = -log_probs.diagonal().mean()
        else:
            loss = -log_probs.gather(1, target.view(-1, 1)).mean()
        probs = log_probs.exp_()
        ctx.save_for_backward(scaled_anchor, candidates, probs, target)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: Tensor):
        scaled_anchor, candidates, probs, target = ctx.saved_tensors
        scale = grad_output / probs.size(0)
        grad_anchor = grad_candidates = None
        if ctx.needs_input_grad[0]:
            positive = candidates if target is None else candidates[target]
            grad_anchor = (probs @ candidates - positive) * scale
        if ctx.needs_input_grad[1]:
            grad_candidates = probs.t() @ scaled_anchor
            if target is None:
                grad_candidates -= scaled_anchor
            else:
                grad_candidates.index_add_(0, target, scaled_anchor, alpha=-1.0)
            grad_candidates *= scale
        return grad_anchor, grad_candidates, None, None, None


def info_nce(
    anchor: Tensor,
    positive: Tensor,
    tau: float = 0.2,
    normalize: bool = True,
    target: Tensor | None = None,
    exclude: Tensor | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    r"""InfoNCE on L2-normalized rows, averaged over the batch: with in-batch negatives
    (the default)

    .. math::
        \frac{1}{B} \sum_{k=1}^{B} -\log \frac{\exp(\hat{\mathbf{a}}_k^\top
        \hat{\mathbf{p}}_k / \tau)}{\sum_{j=1}^{B} \exp(\hat{\mathbf{a}}_k^\top
        \hat{\mathbf{p}}_j / \tau)}, \qquad \hat{\mathbf{x}} = \mathbf{x} / \|\mathbf{x}\|_2

    or, with :obj:`target`, against a candidate set (e.g. every user or item, as
    LGMRec's contrast): the positive of anchor :math:`k` is candidate
    :math:`t_k` and every other candidate a negative,
    :math:`-\log \exp(\hat{\mathbf{a}}_k^\top \hat{\mathbf{c}}_{t_k} / \tau) /
    \sum_{j=1}^{C} \exp(\hat{\mathbf{a}}_k^\top \hat{\mathbf{c}}_j / \tau)`.

    Equal to ``F.cross_entropy(normalize(anchor) @ normalize(positive).T / tau,
    target)`` (``target = arange(B)`` by default) with its gradients, at about half the
    time and a fifth of the :math:`B \times C` memory (a fused softmax and a
    hand-written backward; not twice differentiable).

    Args:
        anchor (torch.Tensor): Anchors ``[B, d]``.
        positive (torch.Tensor): Without :obj:`target`, row ``k`` is the positive of
            anchor ``k`` and every other row a negative of it (``[B, d]``); with
            :obj:`target`, the candidates ``[C, d]``.
        tau (float, optional): Temperature :math:`\tau`. (default: :obj:`0.2`)
        normalize (bool, optional): L2-normalize the rows (cosine similarity); with
            :obj:`False` the raw dot products :math:`\mathbf{a}_k^\top\mathbf{p}_j /
            \tau` enter the softmax, as Eq. 9–11 of DREAM are printed.
            (default: :obj:`True`)
        target (torch.Tensor, optional): The positive candidate of each anchor ``[B]``
            (indices into :obj:`positive`). (default: :obj:`None`, in-batch)
        exclude (torch.Tensor, optional): Boolean ``[B, C]``: candidates that are no
            negatives of an anchor (known positives of it, e.g. a user's other training
            items): they leave the denominator. Never an anchor's own positive.
            (default: :obj:`None`, every other candidate is a negative)
        bias (torch.Tensor, optional): A constant ``[C]`` added to every anchor's logit
            of each candidate (after the temperature), e.g. the sampling-bias correction
            :math:`-\log q_j` of candidates drawn with probability :math:`q_j`.
            (default: :obj:`None`)

    Shapes:
        - **output:** scalar
    """
    if target is None:
        if anchor.dim() != 2 or anchor.shape != positive.shape:
            raise ValueError(
                f"info_nce: anchor and positive must both be [B, d], got "
                f"{tuple(anchor.shape)} and {tuple(positive.shape)}"
            )
    elif (
        anchor.dim() != 2
        or positive.dim() != 2
        or anchor.size(1) != positive.size(1)
        or target.shape != (anchor.size(0),)
    ):
        raise ValueError(
            f"info_nce: with a target, anchor must be [B, d], the candidates [C, d] and "
            f"target [B], got {tuple(anchor.shape)}, {tuple(positive.shape)} and "
            f"{tuple(target.shape)}"
        )
    if exclude is not None:
        shape = (anchor.size(0), positive.size(0))
        if exclude.dtype != torch.bool or exclude.shape != shape:
            raise ValueError(
                f"info_nce: exclude must be a boolean [B, C] = {list(shape)} mask, got "
                f"{exclude.dtype} {tuple(exclude.shape)}"
            )
    if normalize:
        anchor, positive = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
    if target is not None:
        target = target.long()
    if bias is not None and bias.shape != (positive.size(0),):
        raise ValueError(
            f"info_nce: bias must be [C] = [{positive.size(0)}], got {tuple(bias.shape)}"
        )
    return _ScaledInfoNCE.apply(anchor / tau, positive, target, exclude, bias)


def _distinct_slots(ids: Tensor, num_rows: int, name: str = "ids") -> tuple[Tensor, Tensor]:
    r"""The distinct ids of a batch as candidate slots: the first row of each distinct
    id (``[C]``) and each row's slot (``[B]``), so that ``rows[first][slot] == rows``
    when rows with the same id are equal.

    Args:
        ids (torch.Tensor): The id of each row ``[B]``.
        num_rows (int): :math:`B`, checked against :obj:`ids`.
        name (str, optional): What the ids are, for the error. (default: :obj:`"ids"`)
    """
    if ids.dim() != 1 or ids.numel() != num_rows:
        raise ValueError(
            f"BMALoss: {name} must be [B] = [{num_rows}] ids of the rows, got shape "
            f"{tuple(ids.shape)}"
        )
    distinct, slot = torch.unique(ids, return_inverse=True)
    rows = torch.arange(num_rows, device=ids.device)
    first = torch.full((distinct.numel(),), num_rows, dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, slot, rows, reduce="amin")
    return first, slot


def _known_mask(anchor_ids: Tensor, candidate_ids: Tensor, known: SeenItems) -> Tensor:
    r"""``mask[k, c]``: candidate ``c`` (a distinct id) is a known positive of anchor
    ``k`` (e.g. an item the row's user interacted with in training), ``[B, C]``. Costs
    the anchors' degrees, never :math:`B \times` the number of nodes."""
    device = anchor_ids.device
    slot = torch.full((known.num_items,), -1, dtype=torch.long, device=device)
    slot[candidate_ids] = torch.arange(candidate_ids.numel(), device=device)
    rows, neighbours = known.pairs(anchor_ids)
    candidate = slot[neighbours]
    kept = candidate >= 0
    mask = torch.zeros(anchor_ids.numel(), candidate_ids.numel(), dtype=torch.bool, device=device)
    mask[rows[kept], candidate[kept]] = True
    return mask


class BMAParts(NamedTuple):
    r"""The four unweighted InfoNCE terms of :class:`BMALoss`."""

    bia: Tensor
    mia: Tensor
    inter_user: Tensor
    inter_item: Tensor

    @property
    def intra(self) -> Tensor:
        return self.bia + self.mia

    @property
    def inter(self) -> Tensor:
        return self.inter_user + self.inter_item


class BMALoss(torch.nn.Module):
    r"""The Behaviour-Modal Alignment loss of "DREAM: A Dual Representation Learning
    Model for Multimodal Recommendation" (Zhang et al., 2024, Eq. 9–11),
    usable with any recommender that has a behaviour (ID / collaborative) and a modal
    (content) representation for users and items.

    **Contract.** The four inputs are ``[B, d]`` tensors whose ``k``-th rows belong to one
    interacted pair :math:`(u_k, i_k)` of the batch: ``user_behavior[k]`` =
    :math:`\bar{\mathbf{e}}_B^{u_k}`, ``item_behavior[k]`` =
    :math:`\bar{\mathbf{e}}_B^{i_k}`, ``user_modal[k]`` = :math:`\bar{\mathbf{e}}_M^{u_k}`,
    ``item_modal[k]`` = :math:`\bar{\mathbf{e}}_M^{i_k}`. All other rows of the batch are
    the negatives of row ``k`` (in-batch negatives; a user or item repeated in the batch
    is also a negative of itself, as in DREAM/MMRec), or, with ``negatives="distinct"``,
    each other distinct user or item of the batch once: the candidates of a term are the
    batch's distinct ids, so a repeat of the positive is no negative (the accidental hits
    of in-batch sampling) and a popular item is not counted once per repeat.
    With ``negatives="unseen"`` the user–item (Intra) terms also drop the candidates
    that are known positives of the row: the items its user interacted with in training
    (set once by :meth:`set_interactions`) and, in the reverse direction, the users
    who interacted with its item. With InfoNCE as in :func:`info_nce`:

    .. math::
        \mathcal{L}_{Intra} &= \underbrace{\mathrm{InfoNCE}(\bar{\mathbf{E}}_B^u,
        \bar{\mathbf{E}}_B^i)}_{\text{BIA}} + \underbrace{\mathrm{InfoNCE}(
        \bar{\mathbf{E}}_M^u, \bar{\mathbf{E}}_M^i)}_{\text{MIA}}

        \mathcal{L}_{Inter} &= \mathrm{InfoNCE}(\bar{\mathbf{E}}_B^u, \bar{\mathbf{E}}_M^u)
        + \mathrm{InfoNCE}(\bar{\mathbf{E}}_B^i, \bar{\mathbf{E}}_M^i)

        \mathcal{L}_{BMA} &= w_{intra} \mathcal{L}_{Intra} + w_{inter} \mathcal{L}_{Inter}

    The paper sums over the batch; we average (the weights :math:`\alpha, \beta` absorb
    the factor :math:`B`, and averages keep them independent of the batch size).
    Every call stores its unweighted parts in :attr:`last_parts` (:class:`BMAParts`:
    ``bia``, ``mia``, ``inter_user``, ``inter_item``); :meth:`parts` computes them only.

    **Pairs.** With ``direction="one"`` (Eq. 9–11 as printed) each term has the
    first argument as anchor and the other side's in-batch rows as negatives (users
    against items for Intra, behaviour against modal rows for Inter). With
    ``direction="both"`` each term is the mean of both directions (also items against
    users, modal against behaviour rows), the symmetric InfoNCE of CLIP.

    Args:
        tau (float, optional): Temperature :math:`\tau`. (default: :obj:`0.2`)
        direction (str, optional): ``"one"`` or ``"both"``, see above.
            (default: :obj:`"one"`)
        normalize (bool, optional): Cosine (:obj:`True`) or raw dot-product
            (:obj:`False`, Eq. 9–11 as printed) similarities, see :func:`info_nce`.
            (default: :obj:`True`)
        intra_weight (float, optional): :math:`\alpha`, weight of Intra-Alignment;
            :obj:`0` skips its computation. (default: :obj:`0.01`)
        inter_weight (float, optional): :math:`\beta`, weight of Inter-Alignment;
            :obj:`0` skips its computation. (default: :obj:`0.01`)
        decay (float, optional): :math:`\delta \in (0, 1]`: in training epoch
            :math:`t` (set by :meth:`start_epoch`) the loss is scaled by
            :math:`\delta^{t-1}`, so the alignment steers the start and fades; :math:`1`
            keeps Eq. 14's constant weights (beyond the paper). (default: :obj:`1.0`)
        negatives (str, optional): ``"batch"`` (every other row, the paper),
            ``"distinct"`` (each other distinct id once; :meth:`forward` then takes the
            rows' ``users`` and ``items``) or ``"unseen"`` (``"distinct"`` without the
            known positives, see above; needs :meth:`set_interactions`). The
            constructor keeps the paper's ``"batch"``, which needs no ids; the declared
            default that DREAM reads (:attr:`HPARAMS`, ``bma_negatives``) is
            ``"distinct"``.
            (default: :obj:`"batch"`)

    Its hyper-parameters are declared once, in :attr:`HPARAMS`; a model built from
    declared values calls :meth:`from_options`.

    Shapes:
        - **input:** four tensors ``[B, d]``; ``users``, ``items``: ``[B]``
        - **output:** scalar
    """

    DIRECTIONS = ("one", "both")
    NEGATIVES = ("batch", "distinct", "unseen")

    HPARAMS = HParams(
        [
            HParam(
                "tau",
                float,
                0.2,
                "BMA's InfoNCE temperature (the paper's)",
                low=0.0,
                low_open=True,
                grid=(0.1, 0.2),
                details="0.1 won the tuning on scientific (``configs/scientific/dream.yaml``, "
                "+3.8 % valid Recall@20) but on planted ``baby`` it peaks after one epoch "
                "and falls, so it is searched, not the default",
            ),
            HParam(
                "intra_weight",
                float,
                0.01,
                "alpha, Intra-Alignment weight",
                low=0.0,
                grid=(0.01, 0.03),
            ),
            HParam(
                "inter_weight",
                float,
                0.01,
                "beta, Inter-Alignment weight",
                low=0.0,
                grid=(0.01, 0.03),
            ),
            HParam("use_intra", bool, True, "Intra-Alignment (Eq. 9)"),
            HParam("use_inter", bool, True, "Inter-Alignment (Eq. 10)"),
            HParam(
                "bma_direction",
                str,
                "one",
                "BMA InfoNCE (Eq. 9-11): anchor side only, or the mean of both directions",
                choices=DIRECTIONS,
            ),
            HParam(
                "bma_similarity",
                str,
                "cosine",
                "BMA InfoNCE (Eq. 9-11) on cosine or raw dot-product similarities",
                choices=("cosine", "dot"),
                details="``dot`` is the raw :math:`\\mathbf{e}\\cdot\\mathbf{e}'/\\tau` "
                "of Eq. 9-11 as printed",
            ),
            HParam(
                "bma_decay",
                float,
                1.0,
                "per-epoch factor delta of BMA's weights (alpha delta^(t-1) in epoch t; "
                "1 keeps them constant; beyond the paper)",
                low=0.0,
                low_open=True,
                high=1.0,
            ),
            HParam(
                "bma_negatives",
                str,
                "distinct",
                "BMA's negatives: every other row of the batch (the paper), each other "
                "distinct user or item of it once, so a repeat of the positive is no negative, "
                "or those distinct ones without the user's other training items (unseen)",
                choices=NEGATIVES,
                details="``distinct`` (the default, beyond the paper) removes the accidental "
                "hits of in-batch sampling (a popular item sits in a batch several times and "
                "each repeat is a negative of its own positive; on scientific a row's item "
                "sits in 3.1 other rows of a batch of 2048 on average) and counts each negative "
                "once instead of by its popularity; it needs the batch's ids "
                "(:meth:`BMALoss.forward`'s ``users``/``items``, which DREAM and the "
                "plug-in pass; the plug-in's BMA keeps ``batch``, as Table 4 ran). Over 3 "
                "seeds it raised DREAM's valid Recall@20 on all 7 "
                "scientific datasets of the robustness table (+0.4 % to +1.9 %); "
                "``batch`` is the paper's reading (``configs/paper/dream.yaml``). "
                "``unseen`` also drops from the Intra terms' candidates the items the "
                "row's user interacted with in training (and, with both directions, the "
                "users who interacted with the row's item): known positives, 9 % of a row's "
                "candidates on the ML-100k-shaped proxy, 0.2-0.6 % on the sparse ones; over "
                "3 seeds valid Recall@20 moved by +0.0 to +0.4 % on the 10 datasets of the "
                "robustness table, inside every spread, at up to 25 % more step time, so it "
                "is an option",
            ),
            HParam(
                "bma_logq",
                bool,
                False,
                "correct BMA's InfoNCE logits for how the batch samples its candidates: "
                "-log q_j, q_j the chance that a batch holds user or item j (beyond the paper)",
                details="in-batch candidates are drawn by popularity, so an uncorrected "
                "InfoNCE learns :math:`\\log p(i \\mid u) - \\log q_i` (popular items "
                "pushed down) rather than :math:`p(i \\mid u)`; the logQ correction of "
                "Yi et al. (RecSys 2019) with :math:`q_j = 1 - (1 - p_j)^B`, :math:`p_j` "
                "the training share of :math:`j`; needs distinct or unseen negatives",
            ),
        ]
    )

    def __init__(
        self,
        tau: float = 0.2,
        intra_weight: float = 0.01,
        inter_weight: float = 0.01,
        direction: str = "one",
        normalize: bool = True,
        decay: float = 1.0,
        negatives: str = "batch",
        logq: bool = False,
    ):
        super().__init__()
        if negatives not in self.NEGATIVES:
            raise ValueError(
                f"BMALoss: negatives must be one of {self.NEGATIVES}, got {negatives!r}"
            )
        if logq and negatives == "batch":
            raise ValueError("BMALoss: logq needs negatives='distinct' or 'unseen'")
        self.logq = logq
        self.negatives = negatives
        if direction not in self.DIRECTIONS:
            raise ValueError(
                f"BMALoss: direction must be one of {self.DIRECTIONS}, got {direction!r}"
            )
        self.direction = direction
        self.normalize = normalize
        if tau <= 0:
            raise ValueError(f"BMALoss: tau must be > 0, got {tau}")
        if intra_weight < 0 or inter_weight < 0:
            raise ValueError(
                "BMALoss: intra_weight and inter_weight must be >= 0, got "
                f"{intra_weight} and {inter_weight}"
            )
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"BMALoss: decay must be in (0, 1], got {decay}")
        self.tau = tau
        self.intra_weight = intra_weight
        self.inter_weight = inter_weight
        self.decay = decay
        self.scale = 1.0  # decay^(t-1), set by start_epoch
        self.last_parts: BMAParts | None = None
        # each user's training items and each item's users, with negatives="unseen"
        self.user_items: SeenItems | None = None
        self.item_users: SeenItems | None = None
        for name in ("user_popularity", "item_popularity"):
            self.register_buffer(name, None, persistent=False)

    @property
    def needs_interactions(self) -> bool:
        r"""Whether :meth:`set_interactions` must be called before training."""
        return self.negatives == "unseen" or self.logq

    def set_interactions(self, edge_index: Tensor, num_users: int, num_items: int) -> None:
        r"""Sets the training interactions ``[2, E]`` (row 0 users): their pairs are no
        negatives of each other with ``negatives="unseen"``, and their degrees give the
        sampling probabilities of ``logq``."""
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(
                f"BMALoss.set_interactions: edge_index must be [2, E], got "
                f"{tuple(edge_index.shape)}"
            )
        users, items = edge_index.long()
        self.user_items = SeenItems(edge_index, num_users, num_items)
        self.item_users = SeenItems(edge_index.flip(0), num_items, num_users)
        # an id in a batch was drawn at least once: a floor of one interaction keeps
        # -log q finite for ids without training interactions (e.g. a caller's own pairs)
        total = max(users.numel(), 1)
        user_count = torch.bincount(users, minlength=num_users).clamp(min=1)
        item_count = torch.bincount(items, minlength=num_items).clamp(min=1)
        self.user_popularity = user_count.double() / total
        self.item_popularity = item_count.double() / total

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> BMALoss | None:
        r"""The loss from declared values (:attr:`HPARAMS`; others are ignored), or
        :obj:`None` when both ``use_intra`` and ``use_inter`` are off."""
        config = cls.HPARAMS.resolve(cls.HPARAMS.pick(options), "BMA")
        if not (config["use_intra"] or config["use_inter"]):
            return None
        return cls(
            config["tau"],
            intra_weight=config["intra_weight"] if config["use_intra"] else 0.0,
            inter_weight=config["inter_weight"] if config["use_inter"] else 0.0,
            direction=config["bma_direction"],
            normalize=config["bma_similarity"] == "cosine",
            decay=config["bma_decay"],
            negatives=config["bma_negatives"],
            logq=config["bma_logq"],
        )

    def start_epoch(self, epoch: int) -> None:
        r"""Sets the scale :math:`\delta^{t-1}` of training epoch :math:`t =`
        :obj:`epoch` (from 1)."""
        self.scale = self.decay ** (epoch - 1)

    def parts(
        self,
        user_behavior: Tensor,
        item_behavior: Tensor,
        user_modal: Tensor,
        item_modal: Tensor,
        users: Tensor | None = None,
        items: Tensor | None = None,
    ) -> BMAParts:
        r"""The four unweighted terms. Terms whose weight is zero are returned as zeros
        without being computed. :obj:`users` and :obj:`items` (``[B]`` ids of the rows)
        are required with ``negatives="distinct"`` and ignored otherwise."""
        shape = user_behavior.shape
        for name, tensor in (
            ("item_behavior", item_behavior),
            ("user_modal", user_modal),
            ("item_modal", item_modal),
        ):
            if tensor.shape != shape:
                raise ValueError(
                    f"BMALoss: {name} has shape {tuple(tensor.shape)}, expected "
                    f"{tuple(shape)} like user_behavior (rows are interacted pairs)"
                )
        user_slots = item_slots = None
        seen_items = seen_users = None
        if self.negatives != "batch":
            if users is None or items is None:
                raise ValueError(
                    f"BMALoss: negatives={self.negatives!r} needs the batch's users and "
                    "items ([B] ids of the rows)"
                )
            user_slots = self._candidates(users, shape[0], "users", self.user_popularity)
            item_slots = self._candidates(items, shape[0], "items", self.item_popularity)
            if self.negatives == "unseen" and self.intra_weight > 0:
                seen_items, seen_users = self._seen(users, items, user_slots, item_slots)
        zero = user_behavior.new_zeros(())
        bia = mia = inter_user = inter_item = zero
        if self.intra_weight > 0:
            slots = (user_slots, item_slots, seen_items, seen_users)
            bia = self._term(user_behavior, item_behavior, *slots)
            mia = self._term(user_modal, item_modal, *slots)
        if self.inter_weight > 0:
            inter_user = self._term(user_behavior, user_modal, user_slots, user_slots)
            inter_item = self._term(item_behavior, item_modal, item_slots, item_slots)
        return BMAParts(bia, mia, inter_user, inter_item)

    def _candidates(
        self, ids: Tensor, num_rows: int, name: str, popularity: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        r"""The distinct ids as candidates: first row, each row's slot and, with
        ``logq``, the correction :math:`-\log q_j` of each candidate, :math:`q_j = 1 -
        (1 - p_j)^B` the probability that a batch of :math:`B` interactions drawn
        uniformly holds id :math:`j` (training share :math:`p_j`)."""
        first, slot = _distinct_slots(ids, num_rows, name)
        if not self.logq:
            return first, slot, None
        if popularity is None:
            raise ValueError(
                "BMALoss: logq needs the training interactions; call "
                "set_interactions(edge_index, num_users, num_items) first"
            )
        p = popularity[ids[first]]
        inclusion = -torch.expm1(num_rows * torch.log1p(-p.clamp(max=1.0 - 1e-12)))
        return first, slot, -torch.log(inclusion)

    def _seen(
        self,
        users: Tensor,
        items: Tensor,
        user_slots: tuple[Tensor, Tensor, Tensor | None],
        item_slots: tuple[Tensor, Tensor, Tensor | None],
    ) -> tuple[Tensor, Tensor | None]:
        r"""The Intra terms' exclusions under ``negatives="unseen"``: for each row the
        candidate items its user interacted with in training (``[B, C_items]``) and,
        with ``direction="both"``, the candidate users who interacted with its item;
        never the row's own positive."""
        if self.user_items is None or self.item_users is None:
            raise ValueError(
                "BMALoss: negatives='unseen' needs the training interactions; call "
                "set_interactions(edge_index, num_users, num_items) first"
            )
        rows = torch.arange(users.numel(), device=users.device)
        (first_item, item_target, _), (first_user, user_target, _) = item_slots, user_slots
        seen_items = _known_mask(users, items[first_item], self.user_items)
        seen_items[rows, item_target] = False
        seen_users = None
        if self.direction == "both":
            seen_users = _known_mask(items, users[first_user], self.item_users)
            seen_users[rows, user_target] = False
        return seen_items, seen_users

    def _term(
        self,
        anchor: Tensor,
        positive: Tensor,
        anchor_slots: tuple[Tensor, Tensor, Tensor | None] | None,
        positive_slots: tuple[Tensor, Tensor, Tensor | None] | None,
        exclude: Tensor | None = None,
        reverse_exclude: Tensor | None = None,
    ) -> Tensor:
        loss = self._one_way(anchor, positive, positive_slots, exclude)
        if self.direction == "both":
            reverse = self._one_way(positive, anchor, anchor_slots, reverse_exclude)
            loss = 0.5 * (loss + reverse)
        return loss

    def _one_way(
        self,
        anchor: Tensor,
        positive: Tensor,
        slots: tuple[Tensor, Tensor, Tensor | None] | None,
        exclude: Tensor | None = None,
    ) -> Tensor:
        if slots is None:
            return info_nce(anchor, positive, self.tau, self.normalize)
        first, target, bias = slots
        return info_nce(
            anchor,
            positive[first],
            self.tau,
            self.normalize,
            target=target,
            exclude=exclude,
            bias=bias,
        )

    def forward(
        self,
        user_behavior: Tensor,
        item_behavior: Tensor,
        user_modal: Tensor,
        item_modal: Tensor,
        users: Tensor | None = None,
        items: Tensor | None = None,
    ) -> Tensor:
        parts = self.parts(user_behavior, item_behavior, user_modal, item_modal, users, items)
        self.last_parts = BMAParts(*(p.detach() for p in parts))
        return self.scale * (self.intra_weight * parts.intra + self.inter_weight * parts.inter)

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, intra_weight={self.intra_weight}, "
            f"inter_weight={self.inter_weight}, direction={self.direction}, "
            f"normalize={self.normalize}, decay={self.decay}, negatives={self.negatives}"
        )
