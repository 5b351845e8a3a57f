r"""Full-ranking top-:math:`K` evaluation with MMRec's metric definitions
(``DESIGN.md`` section 4)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from dreamgeo.checks import check_edge_index
from dreamgeo.graph.seen_items import SeenItems

__all__ = ["METRIC_NAMES", "FullRankEvaluator", "format_metrics_table"]

logger = logging.getLogger(__name__)

METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg", "precision", "map")
r"""The metrics :class:`FullRankEvaluator` reports, in the order of its sums."""

ScoreFn = Callable[[Tensor], Tensor]

# attribute of a score function whose returned views may be overwritten (internal)
_WRITES_SCRATCH = "_dreamgeo_writes_scratch"


def _sorted_unique_keys(edge_index: Tensor, num_items: int) -> Tensor:
    r"""The distinct interactions as sorted keys ``user * num_items + item``."""
    edge_index = edge_index.long().cpu()
    return torch.unique(edge_index[0] * num_items + edge_index[1], sorted=True)


class FullRankEvaluator:
    r"""Full-ranking evaluation of a recommender against every item, with the
    metric definitions of MMRec's ``TopKEvaluator`` (``utils/metrics.py``).

    For every user :math:`u` with at least one held-out item in a split, the
    user's training items are masked (score :math:`-\infty`), the top
    :math:`\max K` items :math:`i_1, i_2, \dots` are ranked once and shared by all
    splits (as in MMRec, only training items are masked, for valid and for
    test), and with :math:`T_u` the user's held-out items in the split and
    :math:`\mathrm{rel}_r = [i_r \in T_u]`:

    .. math::
        \mathrm{Recall@}K &= \frac{1}{|T_u|} \sum_{r \le K} \mathrm{rel}_r, \qquad
        \mathrm{Precision@}K = \frac{1}{K} \sum_{r \le K} \mathrm{rel}_r,

        \mathrm{NDCG@}K &= \frac{\sum_{r \le K} \mathrm{rel}_r / \log_2(r + 1)}
            {\sum_{r \le \min(|T_u|, K)} 1 / \log_2(r + 1)},

        \mathrm{MAP@}K &= \frac{1}{\min(|T_u|, K)} \sum_{r \le K}
            \mathrm{Precision@}r \cdot \mathrm{rel}_r,

    each averaged over the users with :math:`|T_u| \ge 1` in that split.
    Duplicate pairs inside one split count once. A held-out item that is also a
    training item of the user stays in :math:`|T_u|` but is masked, so it is
    never a hit. If a user has fewer than :math:`\max K` items left after
    masking, masked items fill the tail of the top-:math:`K` and are never
    counted as hits (MMRec and PyG's ``LinkPred*`` metrics would count such a
    masked held-out item in the tail; everywhere else the numbers are the same).
    PyG's unweighted ``LinkPredRecall``, ``LinkPredNDCG``,
    ``LinkPredPrecision`` and ``LinkPredMAP`` use the same definitions.

    All work is vectorized per batch of users: one ``[B, N]`` score block with
    the training items set to :math:`-\infty` from a CSR of the training
    interactions, one ``topk``, the bit flags of the top items (bit 0 training,
    bit :math:`s + 1` held out in split :math:`s`) found by binary search among
    the sorted (user, item) keys of all flagged pairs, and every metric from
    cumulative sums of the ``[S, B, max K]`` hit matrix. Memory is
    :math:`O(B \cdot N)` (the score block); no loop over users.

    Args:
        train_edge_index (torch.Tensor): Training interactions (row 0 users,
            row 1 items), masked from the ranking.
        eval_edge_indices (Mapping[str, torch.Tensor]): Held-out interactions by
            split name, e.g. ``{"valid": val_edge_index, "test": test_edge_index}``.
        num_users (int): Number of users :math:`M`.
        num_items (int): Number of items :math:`N`.
        ks (Sequence[int], optional): The cut-offs :math:`K`.
            (default: :obj:`(5, 10, 20, 50)`)
        batch_size (int, optional): Users scored at once. (default: :obj:`2048`)

    Shapes:
        - **train_edge_index:** :math:`[2, E_{train}]`
        - **eval_edge_indices[s]:** :math:`[2, E_s]`

    Example:
        >>> evaluator = FullRankEvaluator(
        ...     data["user", "interacts", "item"].edge_index,
        ...     {"valid": val_edge_index, "test": test_edge_index},
        ...     num_users, num_items)
        >>> result = evaluator.evaluate(user_emb, item_emb)
        >>> result["valid"]["recall@20"]
    """

    def __init__(
        self,
        train_edge_index: Tensor,
        eval_edge_indices: Mapping[str, Tensor],
        num_users: int,
        num_items: int,
        ks: Sequence[int] = (5, 10, 20, 50),
        batch_size: int = 2048,
    ):
        if num_users <= 0 or num_items <= 0:
            raise ValueError(
                f"evaluate.py: need at least one user and one item, got "
                f"{num_users} users and {num_items} items"
            )
        ks = tuple(int(k) for k in ks)
        if len(ks) == 0 or min(ks) <= 0:
            raise ValueError(f"evaluate.py: ks must be positive integers, got {ks}")
        if max(ks) > num_items:
            raise ValueError(f"evaluate.py: K = {max(ks)} exceeds the number of items {num_items}")
        if batch_size <= 0:
            raise ValueError(f"evaluate.py: batch_size must be positive, got {batch_size}")
        if len(eval_edge_indices) == 0:
            raise ValueError("evaluate.py: eval_edge_indices names no split")

        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.ks = ks
        self.max_k = max(ks)
        self.batch_size = int(batch_size)
        self.split_names: tuple[str, ...] = tuple(eval_edge_indices)

        if len(eval_edge_indices) > 30:
            raise ValueError(
                f"evaluate.py: at most 30 held-out splits, got {len(eval_edge_indices)}"
            )

        check_edge_index(
            train_edge_index, num_users, num_items, "train_edge_index", "evaluate.py", True
        )
        # the training items, masked from every ranking (the CSR recommend() uses too)
        self._seen = SeenItems(train_edge_index, num_users, num_items)
        train_keys = self._seen.keys
        train_degree = self._seen.rowptr.diff()
        # Masked items can only reach the top-K of users with fewer than max K others.
        self._short_list_users = bool((num_items - train_degree < self.max_k).any())

        # One CSR of flags per (user, item): bit 0 training, bit s + 1 held out in split s.
        flag_keys, flag_bits, heldout_count = [train_keys], [torch.ones_like(train_keys)], []
        for split, (name, edge_index) in enumerate(eval_edge_indices.items()):
            check_edge_index(
                edge_index,
                num_users,
                num_items,
                f"eval_edge_indices[{name!r}]",
                "evaluate.py",
                True,
            )
            keys = _sorted_unique_keys(edge_index, num_items)
            if keys.numel() == 0:
                logger.warning("split %r has no held-out interactions; its metrics are 0", name)
            flag_keys.append(keys)
            flag_bits.append(torch.full_like(keys, 1 << (split + 1)))
            heldout_count.append(torch.bincount(keys // num_items, minlength=num_users))
        self._heldout_count = torch.stack(heldout_count)  # [S, M]
        keys, inverse = torch.unique(torch.cat(flag_keys), sorted=True, return_inverse=True)
        self._flag_keys = keys
        self._flag_bit = torch.zeros_like(keys).scatter_add_(0, inverse, torch.cat(flag_bits))
        self._flag_dtype = torch.int16 if len(self.split_names) < 15 else torch.int32

        self.eval_users: Tensor = (self._heldout_count > 0).any(0).nonzero().view(-1)
        r"""Users with at least one held-out item in some split, ``[M_eval]``."""

        self._device_state: dict[torch.device, tuple[Tensor, ...]] = {}

    @property
    def metric_names(self) -> list[str]:
        r"""Column names of :meth:`accumulate`'s sums, e.g. ``"recall@20"``."""
        return [f"{metric}@{k}" for metric in METRIC_NAMES for k in self.ks]

    def _state_on(self, device: torch.device) -> tuple[Tensor, ...]:
        if device not in self._device_state:
            self._device_state[device] = tuple(
                tensor.to(device)
                for tensor in (
                    self._flag_keys,
                    self._flag_bit.to(self._flag_dtype),
                    self._heldout_count,
                )
            )
        return self._device_state[device]

    def _masked_top_items(self, users: Tensor, scores: Tensor, k: int) -> Tensor:
        r"""The ``k`` best items ``[B, k]`` of each user in ``users`` (on the
        device of ``scores``, ``[B, N]``) once their training items are masked
        (in place: :meth:`_scored_batches` hands out only writable scores)."""
        return self._seen.top_k(users, scores, k)

    def _scored_batches(
        self, score_fn: ScoreFn, users: Tensor | None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        r"""Yields ``(batch_users, scores)`` with ``batch_users`` on the device
        of ``scores``, after checking the indices and the score shapes. The
        scores may be masked in place: a view returned by ``score_fn`` is copied
        first (never write into the caller's tensor), unless it is the scratch
        buffer of :meth:`evaluate`."""
        scratch = getattr(score_fn, _WRITES_SCRATCH, False)
        if users is None:
            users = self.eval_users
        users = users.long().view(-1)
        if users.numel() and (int(users.min()) < 0 or int(users.max()) >= self.num_users):
            raise ValueError(
                f"evaluate.py: user indices must lie in [0, {self.num_users}), got "
                f"[{int(users.min())}, {int(users.max())}]"
            )
        for batch in users.split(self.batch_size):
            scores = score_fn(batch)
            if scores.dim() != 2 or scores.shape != (batch.numel(), self.num_items):
                raise ValueError(
                    f"evaluate.py: score_fn returned shape {list(scores.shape)} for "
                    f"{batch.numel()} users; expected [{batch.numel()}, {self.num_items}]"
                )
            if scores._is_view() and not scratch:
                scores = scores.clone()
            yield batch.to(scores.device), scores

    @torch.no_grad()
    def top_items(self, score_fn: ScoreFn, users: Tensor, k: int | None = None) -> Tensor:
        r"""The top-:math:`k` items of ``users`` with their training items
        excluded, best first (what the metrics are computed from).

        Args:
            score_fn (Callable[[torch.Tensor], torch.Tensor]): Maps user indices
                ``[B]`` to scores ``[B, N]`` (see :meth:`accumulate`).
            users (torch.Tensor): The users ``[U]``.
            k (int, optional): How many items. If :obj:`None`, :math:`\max K`.
                (default: :obj:`None`)

        Returns:
            Item indices ``[U, k]`` on the device of the scores.
        """
        k = self.max_k if k is None else int(k)
        if not 0 < k <= self.num_items:
            raise ValueError(f"evaluate.py: k must lie in [1, {self.num_items}], got {k}")
        tops = [
            self._masked_top_items(batch, scores, k)
            for batch, scores in self._scored_batches(score_fn, users)
        ]
        if not tops:
            return torch.empty(0, k, dtype=torch.long)
        return torch.cat(tops)

    def _batch_sums(self, users: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
        r"""Metric sums ``[S, len(metric_names)]`` and user counts ``[S]`` of one
        batch of users with scores ``[B, N]``."""
        device = scores.device
        flag_keys, flag_bit, heldout_count = self._state_on(device)
        top_items = self._masked_top_items(users, scores, self.max_k)  # [B, maxK]
        # flags of the top items only: binary search of their (user, item) keys among the
        # sorted keys of all flagged pairs, O(B maxK log E) instead of a [B, N] flag matrix
        query = users.view(-1, 1) * self.num_items + top_items
        position = torch.searchsorted(flag_keys, query).clamp_(max=flag_keys.numel() - 1)
        found = flag_keys[position] == query
        top_flags = torch.where(found, flag_bit[position], 0)  # [B, maxK], flag dtype
        shifts = torch.arange(1, len(self.split_names) + 1, device=device, dtype=top_flags.dtype)
        hits = (top_flags.unsqueeze(0) >> shifts.view(-1, 1, 1)) & 1  # [S, B, maxK]
        if self._short_list_users:  # masked items fill the tail of short lists
            hits &= 1 - (top_flags & 1)
        accumulate_dtype = torch.float32 if device.type == "mps" else torch.float64
        hits = hits.to(accumulate_dtype)
        num_heldout = heldout_count[:, users].to(accumulate_dtype)  # [S, B]

        rank = torch.arange(1, self.max_k + 1, device=device, dtype=accumulate_dtype)
        discount = 1.0 / torch.log2(rank + 1.0)
        ideal_dcg = torch.cat([discount.new_zeros(1), discount.cumsum(0)])
        k = torch.tensor(self.ks, device=device)
        k_float = k.to(accumulate_dtype)
        column = k - 1

        hits_cum = hits.cumsum(-1)
        dcg = (hits * discount).cumsum(-1)[..., column]
        precision_at_rank = hits_cum / rank
        ap = (precision_at_rank * hits).cumsum(-1)[..., column]
        hits_at_k = hits_cum[..., column]  # [S, B, |ks|]

        count = num_heldout.unsqueeze(-1)  # [S, B, 1]
        count_safe = count.clamp(min=1.0)
        capped = torch.minimum(count_safe, k_float)  # min(|T_u|, K)
        metrics = torch.stack(
            [
                hits_at_k / count_safe,
                dcg / ideal_dcg[capped.long()],
                hits_at_k / k_float,
                ap / capped,
            ],
            dim=2,
        )  # [S, B, len(METRIC_NAMES), |ks|]
        has_heldout = num_heldout > 0
        metrics = metrics * has_heldout.view(*has_heldout.shape, 1, 1)
        sums = metrics.sum(1).flatten(1)
        return sums, has_heldout.sum(1)

    @torch.no_grad()
    def accumulate(self, score_fn: ScoreFn, users: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Sums of the per-user metrics and the number of users that entered
        them, per split, over ``users`` (for a distributed caller to
        ``all_reduce`` before dividing).

        Args:
            score_fn (Callable[[torch.Tensor], torch.Tensor]): Maps a batch of
                user indices ``[B]`` (long, on the device of ``users``: CPU by
                default) to their scores against every item ``[B, N]``, on any
                device. A returned view is copied before masking; a fresh
                tensor may be masked in place.
            users (torch.Tensor, optional): The users to evaluate; users
                without held-out items in a split add nothing to it. If
                :obj:`None`, :attr:`eval_users`. (default: :obj:`None`)

        Returns:
            ``(sums, counts)``: ``sums`` ``[S, len(metric_names)]`` (float64,
            columns named by :attr:`metric_names`, rows by :attr:`split_names`)
            and ``counts`` ``[S]`` (long), both on the device of the scores
            (CPU if no batch was scored).
        """
        sums: Tensor | None = None
        counts: Tensor | None = None
        for batch, scores in self._scored_batches(score_fn, users):
            batch_sums, batch_counts = self._batch_sums(batch, scores)
            sums = batch_sums if sums is None else sums + batch_sums
            counts = batch_counts if counts is None else counts + batch_counts
        if sums is None or counts is None:
            num_splits = len(self.split_names)
            sums = torch.zeros(num_splits, len(self.metric_names), dtype=torch.float64)
            counts = torch.zeros(num_splits, dtype=torch.long)
        return sums, counts

    def _finalize(self, sums: Tensor, counts: Tensor) -> dict[str, dict[str, float]]:
        sums = sums.double().cpu()
        counts = counts.cpu()
        means = sums / counts.clamp(min=1).unsqueeze(1).double()
        return {
            split: dict(zip(self.metric_names, means[s].tolist()))
            for s, split in enumerate(self.split_names)
        }

    @torch.no_grad()
    def evaluate_scores(
        self,
        score_fn: ScoreFn,
        users: Tensor | None = None,
        distributed: bool = False,
    ) -> dict[str, dict[str, float]]:
        r"""Mean metrics per split for a model whose scores come from
        ``score_fn``.

        Args:
            score_fn (Callable[[torch.Tensor], torch.Tensor]): Maps user indices
                ``[B]`` to scores ``[B, N]`` (see :meth:`accumulate`).
            users (torch.Tensor, optional): Evaluate only these users. If
                :obj:`None`, :attr:`eval_users`. (default: :obj:`None`)
            distributed (bool, optional): If :obj:`True` and
                :mod:`torch.distributed` is initialized, each rank scores every
                ``world_size``-th user and the sums and counts are
                ``all_reduce``-d, so every rank returns the same result.
                (default: :obj:`False`)

        Returns:
            ``result[split][f"{metric}@{K}"]``, e.g. ``result["valid"]["recall@20"]``.
        """
        use_dist = distributed and dist.is_available() and dist.is_initialized()
        if use_dist:
            if users is None:
                users = self.eval_users
            users = users[dist.get_rank() :: dist.get_world_size()]
        sums, counts = self.accumulate(score_fn, users)
        if use_dist:
            device = sums.device
            if dist.get_backend() == "nccl":
                device = torch.device("cuda", torch.cuda.current_device())
            sums, counts = sums.to(device), counts.to(device)
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        return self._finalize(sums, counts)

    @torch.no_grad()
    def evaluate(
        self,
        user_emb: Tensor,
        item_emb: Tensor,
        users: Tensor | None = None,
        distributed: bool = False,
    ) -> dict[str, dict[str, float]]:
        r"""Mean metrics per split for dot-product scores
        :math:`s_{ui} = \mathbf{e}_u^\top \mathbf{e}_i`.

        Args:
            user_emb (torch.Tensor): User representations.
            item_emb (torch.Tensor): Item representations.
            users (torch.Tensor, optional): See :meth:`evaluate_scores`.
                (default: :obj:`None`)
            distributed (bool, optional): See :meth:`evaluate_scores`.
                (default: :obj:`False`)

        Shapes:
            - **user_emb:** :math:`[M, d]`
            - **item_emb:** :math:`[N, d]`

        Returns:
            ``result[split][f"{metric}@{K}"]``.
        """
        if user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.size(1) != item_emb.size(1):
            raise ValueError(
                f"evaluate.py: expected user_emb [M, d] and item_emb [N, d], got "
                f"{list(user_emb.shape)} and {list(item_emb.shape)}"
            )
        if user_emb.size(0) != self.num_users or item_emb.size(0) != self.num_items:
            raise ValueError(
                f"evaluate.py: embeddings cover {user_emb.size(0)} users and "
                f"{item_emb.size(0)} items; the evaluator has {self.num_users} users "
                f"and {self.num_items} items"
            )
        item_emb_t = item_emb.t()
        scratch: list[Tensor] = []

        # every batch's [B, N] scores go into one buffer: a fresh multi-hundred-MB
        # block per batch costs as much in page faults as the product itself (CPU)
        def dot_scores(batch: Tensor) -> Tensor:
            rows = user_emb[batch.to(user_emb.device)]
            if not scratch:
                dtype = torch.promote_types(rows.dtype, item_emb_t.dtype)
                scratch.append(rows.new_empty(self.batch_size, self.num_items, dtype=dtype))
            return torch.mm(rows, item_emb_t, out=scratch[0][: rows.size(0)])

        setattr(dot_scores, _WRITES_SCRATCH, True)

        return self.evaluate_scores(dot_scores, users, distributed)


# column headers of format_metrics_table(..., short=True)
_SHORT_NAMES = {"recall": "R", "ndcg": "N", "precision": "P", "map": "MAP"}


def format_metrics_table(
    results: Mapping[str, Mapping[str, float]],
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] = ("recall", "ndcg"),
    digits: int = 4,
    short: bool = False,
    row_label: str = "split",
) -> str:
    r"""A markdown table of evaluation results, one row per split (or per method).

    Args:
        results (Mapping[str, Mapping[str, float]]): The output of
            :meth:`FullRankEvaluator.evaluate`, or any split name to metric values.
        ks (Sequence[int], optional): The cut-offs to show. (default: :obj:`(10, 20)`)
        metrics (Sequence[str], optional): The metrics to show, each column
            ``f"{metric}@{K}"``. (default: :obj:`("recall", "ndcg")`)
        digits (int, optional): Decimal places. (default: :obj:`4`)
        short (bool, optional): Head the columns ``R@K``, ``N@K``, ``P@K`` and
            ``MAP@K`` instead of ``recall@K``, ``ndcg@K``, ... (default: :obj:`False`)
        row_label (str, optional): The head of the first column.
            (default: :obj:`"split"`)
    """
    columns = [f"{metric}@{k}" for metric in metrics for k in ks]
    names = [f"{_SHORT_NAMES.get(m, m) if short else m}@{k}" for m in metrics for k in ks]
    lines = [
        f"| {row_label} | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for split, values in results.items():
        missing = [column for column in columns if column not in values]
        if missing:
            raise KeyError(f"evaluate.py: split {split!r} has no {missing[0]!r}")
        cells = [f"{values[column]:.{digits}f}" for column in columns]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
