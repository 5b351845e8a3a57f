r"""Vectorized BPR triples :math:`(u, i^+, i^-)`: every training interaction once per
epoch, with a negative item drawn uniformly from the items the user has not
interacted with (``DESIGN.md`` sections 3.7 and 7)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["BPRSampler"]

Triple = tuple[Tensor, Tensor, Tensor]


def _derived_seed(*entropy: int) -> int:
    r"""A 63-bit seed derived from ``entropy`` with NumPy's ``SeedSequence``, so
    that streams seeded from different tuples are statistically independent."""
    low, high = np.random.SeedSequence(list(entropy)).generate_state(2, np.uint32)
    return (int(high) & 0x7FFFFFFF) << 32 | int(low)


class BPRSampler:
    r"""Shuffled epochs of BPR triples with uniform negatives over each user's
    non-interacted items.

    An epoch visits every training interaction :math:`(u, i^+)` exactly once in
    a random order (as MMRec's training loader does) and pairs it with one
    negative :math:`i^-` drawn uniformly from
    :math:`\mathcal{I} \setminus \mathcal{I}_u^{train}`.

    Negatives are drawn directly from the complement, without rejection
    rounds: with
    :math:`a_0 < a_1 < \dots` the user's sorted training items,
    :math:`b_j = a_j - j` counts the non-interacted items below :math:`a_j`, so
    the :math:`r`-th non-interacted item (0-based) is

    .. math::
        i^-(r) = r + \left|\{\, j : b_j \le r \,\}\right|,
        \qquad r \sim \mathcal{U}\{0, \dots, N - |\mathcal{I}_u^{train}| - 1\},

    one ``searchsorted`` over the sorted keys :math:`u N + b_j` for the whole
    epoch (:math:`r` is a 62-bit draw modulo the number of free items, a
    relative bias below :math:`N / 2^{62}`). It costs the same for a user who
    interacted with almost every item as for anyone else, where rejection
    sampling needs about :math:`N / (N - |\mathcal{I}_u|)` rounds for that user.

    All random draws of an epoch (order and negatives) are made when
    :meth:`epoch` is called, on CPU, from generators the sampler owns; the
    triples are moved to ``device`` once per epoch and sliced into batches.
    :meth:`state_dict` therefore describes the sampler between epochs: loading
    it reproduces the following epochs exactly.

    **Distributed sharding.** With ``world_size`` :math:`W > 1`, every rank
    draws the same order (the order generator is seeded from ``seed`` alone),
    cuts it into global batches of ``batch_size * W`` interactions (the last one
    shorter) and takes every :math:`W`-th interaction of each global batch,
    starting at ``rank``. Shards are disjoint, together cover the epoch, and
    every rank yields the same number of batches (as DDP needs). If the last
    global batch holds fewer than :math:`W` interactions, the last two global
    batches are re-cut into two halves so that no rank gets an empty batch.
    Each rank draws a negative for every interaction from its own stream,
    seeded from ``(seed, rank)``, and keeps those of its shard. With
    :math:`W = 1` batches are ``batch_size`` long except the last, as in MMRec.

    Args:
        train_edge_index (torch.Tensor): Training interactions (row 0 users,
            row 1 items); each column is one positive per epoch (duplicates
            included), the distinct pairs define what is not a negative.
        num_users (int): Number of users :math:`M`.
        num_items (int): Number of items :math:`N`.
        batch_size (int, optional): Triples per batch and rank.
            (default: :obj:`2048`)
        seed (int, optional): Seed of the order and negative streams.
            (default: :obj:`0`)
        shuffle (bool, optional): If :obj:`False`, interactions keep their
            column order (negatives stay random). (default: :obj:`True`)
        rank (int, optional): This process's rank. (default: :obj:`0`)
        world_size (int, optional): Number of processes sharing the epoch.
            (default: :obj:`1`)
        device (torch.device or str, optional): Where batches are yielded. If
            :obj:`None`, the device of ``train_edge_index``. (default: :obj:`None`)

    Shapes:
        - **train_edge_index:** :math:`[2, E]`
        - **yielded users, positives, negatives:** :math:`[B]` each (long),
          :math:`B \le` ``batch_size``

    Example:
        >>> sampler = BPRSampler(train_edge_index, num_users, num_items)
        >>> for users, pos_items, neg_items in sampler.epoch():
        ...     loss = model.loss(users, pos_items, neg_items)
    """

    def __init__(
        self,
        train_edge_index: Tensor,
        num_users: int,
        num_items: int,
        batch_size: int = 2048,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ):
        self._check_arguments(
            train_edge_index, num_users, num_items, batch_size, seed, rank, world_size
        )
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.device = torch.device(device) if device is not None else train_edge_index.device

        edge_index = train_edge_index.long().cpu()
        # Interactions are stored sorted by (user, item) so that the negatives of
        # the whole epoch come from one searchsorted over sorted queries
        # (cache-friendly); ``_column_order`` lists them in their column order.
        edge_key = edge_index[0] * self.num_items + edge_index[1]
        sort_perm = torch.argsort(edge_key, stable=True)
        # Rows: user, positive item, and the negatives of the current epoch.
        self._triples = torch.empty(3, sort_perm.numel(), dtype=torch.long)
        self._triples[:2] = edge_index[:, sort_perm]
        self._users, self._items = self._triples[0], self._triples[1]
        self._column_order = torch.empty_like(sort_perm)
        self._column_order[sort_perm] = torch.arange(sort_perm.numel())
        self._prepare_negatives(edge_key[sort_perm])
        self._shard_positions, self._batch_sizes = self._shard_layout()

        self._order_generator = torch.Generator().manual_seed(_derived_seed(self.seed))
        self._negative_generator = torch.Generator().manual_seed(
            _derived_seed(self.seed, self.rank + 1)
        )
        self.epochs_drawn: int = 0
        r"""How many epochs :meth:`epoch` has drawn so far."""

    @staticmethod
    def _check_arguments(
        edge_index: Tensor,
        num_users: int,
        num_items: int,
        batch_size: int,
        seed: int,
        rank: int,
        world_size: int,
    ) -> None:
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            shape = list(edge_index.shape) if isinstance(edge_index, Tensor) else edge_index
            raise ValueError(f"sampler.py: train_edge_index must be [2, E], got {shape}")
        if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
            raise ValueError("sampler.py: train_edge_index must hold integer indices")
        if num_users <= 0 or num_items <= 0:
            raise ValueError(
                f"sampler.py: need at least one user and one item, got {num_users} users "
                f"and {num_items} items"
            )
        if batch_size <= 0:
            raise ValueError(f"sampler.py: batch_size must be positive, got {batch_size}")
        if seed < 0:
            raise ValueError(f"sampler.py: seed must be non-negative, got {seed}")
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(
                f"sampler.py: need 0 <= rank < world_size, got rank {rank} and "
                f"world_size {world_size}"
            )
        num_edges = edge_index.size(1)
        if num_edges < world_size:
            raise ValueError(
                f"sampler.py: {num_edges} training interactions cannot feed {world_size} ranks"
            )
        user, item = edge_index
        if int(user.min()) < 0 or int(user.max()) >= num_users:
            raise ValueError(
                f"sampler.py: train_edge_index has user indices in [{int(user.min())}, "
                f"{int(user.max())}], outside [0, {num_users})"
            )
        if int(item.min()) < 0 or int(item.max()) >= num_items:
            raise ValueError(
                f"sampler.py: train_edge_index has item indices in [{int(item.min())}, "
                f"{int(item.max())}], outside [0, {num_items})"
            )

    def _prepare_negatives(self, sorted_edge_key: Tensor) -> None:
        num_items = self.num_items
        keys = torch.unique_consecutive(sorted_edge_key)
        key_user = keys // num_items
        degree = torch.bincount(key_user, minlength=self.num_users)
        saturated = (degree >= num_items).nonzero().view(-1)
        if saturated.numel() > 0:
            raise ValueError(
                f"sampler.py: user {int(saturated[0])} (and {saturated.numel() - 1} more) "
                f"interacted with all {num_items} items in training, so no negative item "
                f"exists for them; drop such users or add items"
            )
        rowptr = torch.zeros(self.num_users + 1, dtype=torch.long)
        rowptr[1:] = degree.cumsum(0)
        position_in_row = torch.arange(keys.numel()) - rowptr[key_user]
        free_below = keys % num_items - position_in_row  # b_j, non-decreasing per user
        self._gap_keys = key_user * num_items + free_below
        # Per stored interaction: its user's query base u * N, the offset that turns
        # searchsorted's global position into a count within the user's row, and
        # the number of the user's non-interacted items.
        self._edge_query_base = self._users * num_items
        self._edge_offset = self._edge_query_base + rowptr[self._users]
        self._edge_num_free = num_items - degree[self._users]

    def _shard_layout(self) -> tuple[Tensor | None, list[int]]:
        r"""Positions (in the epoch's order) taken by this rank (:obj:`None` for
        all), and the sizes of its batches."""
        num_edges, world = self._users.numel(), self.world_size
        global_size = self.batch_size * world
        starts = list(range(0, num_edges, global_size))
        if world > 1 and len(starts) >= 2 and num_edges - starts[-1] < world:
            starts[-1] = starts[-2] + (num_edges - starts[-2]) // 2
        bounds = torch.tensor(starts + [num_edges])
        sizes = bounds[1:] - bounds[:-1]
        if int(sizes.min()) < world:
            raise ValueError(
                f"sampler.py: {num_edges} interactions in batches of {self.batch_size} "
                f"cannot give all {world} ranks the same number of non-empty batches; "
                f"use batch_size >= 2"
            )
        batch_of_position = torch.repeat_interleave(torch.arange(sizes.numel()), sizes)
        offset = torch.arange(num_edges) - bounds[batch_of_position]
        mine = offset % world == self.rank
        batch_sizes = torch.bincount(batch_of_position[mine], minlength=sizes.numel())
        positions = None if world == 1 else mine.nonzero().view(-1)
        return positions, batch_sizes.tolist()

    def _draw_negatives(self) -> None:
        r"""Draws one negative for every stored interaction into ``_triples[2]``.

        The few large passes over :math:`E` elements are kept to a minimum, as
        each is a parallel region."""
        # r uniform in [0, free): a 62-bit draw modulo free (bias below N / 2**62).
        free_rank = torch.randint(
            0, 1 << 62, (self._users.numel(),), generator=self._negative_generator
        ).remainder_(self._edge_num_free)
        query = free_rank.add_(self._edge_query_base)  # u * N + r
        position = torch.searchsorted(self._gap_keys, query, right=True)
        # i = r + |{j : b_j <= r}| = (u * N + r) + position - (u * N + rowptr[u])
        torch.add(query, position, out=self._triples[2]).sub_(self._edge_offset)

    def __len__(self) -> int:
        r"""Batches per epoch for this rank (the same on every rank)."""
        return len(self._batch_sizes)

    def epoch(self) -> Iterator[Triple]:
        r"""Draws the next epoch and returns an iterator over its batches
        ``(users, pos_items, neg_items)``. All randomness of the epoch is
        consumed by this call."""
        if self.shuffle:
            edges = torch.randperm(self._users.numel(), generator=self._order_generator)
        else:
            edges = self._column_order
        if self._shard_positions is not None:
            edges = edges[self._shard_positions]
        self._draw_negatives()
        triples = self._triples.index_select(1, edges).to(self.device)
        self.epochs_drawn += 1
        return iter([tuple(batch.unbind(0)) for batch in triples.split(self._batch_sizes, dim=1)])

    def __iter__(self) -> Iterator[Triple]:
        return self.epoch()

    def state_dict(self) -> dict[str, Any]:
        r"""The generator states and epoch counter; :meth:`load_state_dict`
        with it makes the next epochs repeat exactly."""
        return {
            "epochs_drawn": self.epochs_drawn,
            "order_generator": self._order_generator.get_state(),
            "negative_generator": self._negative_generator.get_state(),
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_interactions": self._users.numel(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        r"""Restores a :meth:`state_dict`, after checking that it comes from a
        sampler over as many interactions with the same seed and sharding."""
        expected = {
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_interactions": self._users.numel(),
        }
        found = {key: state.get(key) for key in expected}
        if found != expected:
            raise ValueError(
                f"sampler.py: the sampler state was saved for {found}, this sampler has {expected}"
            )
        self._order_generator.set_state(state["order_generator"].cpu())
        self._negative_generator.set_state(state["negative_generator"].cpu())
        self.epochs_drawn = int(state["epochs_drawn"])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(interactions={self._users.numel()}, "
            f"batch_size={self.batch_size}, rank={self.rank}, world_size={self.world_size})"
        )
