import collections

import pytest
import torch

from dreamgeo.train.sampler import BPRSampler


def random_graph(num_users, num_items, density, seed=0):
    generator = torch.Generator().manual_seed(seed)
    adjacency = torch.rand(num_users, num_items, generator=generator) < density
    adjacency[:, 0] = False  # every user keeps at least one negative
    adjacency[
        torch.arange(num_users), torch.randint(1, num_items, (num_users,), generator=generator)
    ] = True
    return adjacency, adjacency.nonzero().t().contiguous()


def collect(sampler):
    batches = list(sampler.epoch())
    users, pos, neg = (torch.cat(parts) for parts in zip(*batches))
    return batches, users, pos, neg


def edge_multiset(users, items):
    return collections.Counter(zip(users.tolist(), items.tolist()))


def test_negatives_are_never_training_items_on_a_dense_graph():
    adjacency, edge_index = random_graph(40, 25, density=0.85)
    sampler = BPRSampler(edge_index, 40, 25, batch_size=64, seed=3)
    for _ in range(20):
        _, users, _, neg = collect(sampler)
        assert neg.min() >= 0 and neg.max() < 25
        assert not adjacency[users, neg].any()


def test_each_training_edge_is_a_positive_once_per_epoch():
    _, edge_index = random_graph(30, 20, density=0.3)
    edge_index = torch.cat([edge_index, edge_index[:, :5]], 1)  # duplicates count twice
    sampler = BPRSampler(edge_index, 30, 20, batch_size=16)
    assert len(sampler) == -(-edge_index.size(1) // 16)
    for _ in range(3):
        batches, users, pos, _ = collect(sampler)
        assert len(batches) == len(sampler)
        assert [b[0].numel() for b in batches[:-1]] == [16] * (len(batches) - 1)
        assert edge_multiset(users, pos) == edge_multiset(*edge_index)
        assert all(t.dtype == torch.long for batch in batches for t in batch)
    first = torch.cat([b[1] for b in list(sampler.epoch())])
    second = torch.cat([b[1] for b in list(sampler.epoch())])
    assert not torch.equal(first, second)  # shuffled anew every epoch


def test_without_shuffle_positives_keep_column_order():
    _, edge_index = random_graph(10, 12, density=0.4)
    edge_index = edge_index[:, torch.randperm(edge_index.size(1))]
    sampler = BPRSampler(edge_index, 10, 12, batch_size=7, shuffle=False)
    _, users, pos, _ = collect(sampler)
    assert torch.equal(users, edge_index[0]) and torch.equal(pos, edge_index[1])


def test_negatives_are_uniform_over_non_interacted_items():
    num_items = 12
    interacted = {0: [1, 4, 5], 1: [0, 11], 2: list(range(1, 11)), 3: [3, 4, 5, 6, 7]}
    edge_index = torch.tensor(
        [
            [user for user, items in interacted.items() for _ in items],
            [item for items in interacted.values() for item in items],
        ]
    )
    sampler = BPRSampler(edge_index, 4, num_items, batch_size=100, seed=1)
    drawn = collections.defaultdict(list)
    for _ in range(1500):
        _, users, _, neg = collect(sampler)
        for user in interacted:
            drawn[user].extend(neg[users == user].tolist())
    for user, items in interacted.items():
        free = sorted(set(range(num_items)) - set(items))
        counts = collections.Counter(drawn[user])
        assert sorted(counts) == free  # every non-interacted item, nothing else
        expected = len(drawn[user]) / len(free)
        chi_square = sum((counts[item] - expected) ** 2 / expected for item in free)
        # 99.99% quantile of chi-square with up to 9 degrees of freedom is < 34.
        assert chi_square < 34, (user, counts)


def test_same_seed_same_epochs_different_seed_different():
    _, edge_index = random_graph(30, 20, density=0.3)
    a = BPRSampler(edge_index, 30, 20, batch_size=32, seed=7)
    b = BPRSampler(edge_index, 30, 20, batch_size=32, seed=7)
    c = BPRSampler(edge_index, 30, 20, batch_size=32, seed=8)
    for _ in range(2):
        epoch_a, epoch_b, epoch_c = collect(a)[1:], collect(b)[1:], collect(c)[1:]
        assert all(torch.equal(x, y) for x, y in zip(epoch_a, epoch_b))
        assert not torch.equal(epoch_a[2], epoch_c[2])


def test_state_dict_resumes_the_next_epoch_exactly(tmp_path):
    _, edge_index = random_graph(30, 20, density=0.3)
    sampler = BPRSampler(edge_index, 30, 20, batch_size=32, seed=5)
    collect(sampler)
    collect(sampler)
    torch.save(sampler.state_dict(), tmp_path / "sampler.pt")
    expected = [collect(sampler)[1:] for _ in range(2)]

    resumed = BPRSampler(edge_index, 30, 20, batch_size=32, seed=5)
    resumed.load_state_dict(torch.load(tmp_path / "sampler.pt", weights_only=False))
    assert resumed.epochs_drawn == 2
    for triples in expected:
        assert all(torch.equal(x, y) for x, y in zip(collect(resumed)[1:], triples))
    assert resumed.epochs_drawn == 4

    other = BPRSampler(edge_index, 30, 20, batch_size=32, seed=6)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(sampler.state_dict())


@pytest.mark.parametrize(
    "num_edges, batch_size, world_size",
    [
        (101, 8, 2),  # uneven shards
        (25, 4, 3),  # last global batch of 1 < 3 ranks: re-cut
        (97, 50, 4),  # a single global batch
    ],
)
def test_shards_are_disjoint_cover_the_epoch_and_have_equal_lengths(
    num_edges, batch_size, world_size
):
    _, all_edges = random_graph(40, 30, density=0.5)
    edge_index = all_edges[:, torch.randperm(all_edges.size(1))[:num_edges]]
    adjacency = torch.zeros(40, 30, dtype=torch.bool)
    adjacency[edge_index[0], edge_index[1]] = True
    samplers = [
        BPRSampler(
            edge_index, 40, 30, batch_size=batch_size, seed=2, rank=rank, world_size=world_size
        )
        for rank in range(world_size)
    ]
    assert len({len(s) for s in samplers}) == 1
    for _ in range(2):
        keys = []
        for sampler in samplers:
            batches, users, pos, neg = collect(sampler)
            assert len(batches) == len(sampler)
            assert all(0 < b[0].numel() <= batch_size for b in batches)
            assert not adjacency[users, neg].any()
            keys.append(set((users * 30 + pos).tolist()))
            assert len(keys[-1]) == users.numel()
        assert sum(len(k) for k in keys) == num_edges
        assert set.union(*keys) == set((edge_index[0] * 30 + edge_index[1]).tolist())


def test_ranks_draw_from_different_negative_streams():
    _, edge_index = random_graph(20, 30, density=0.2)
    rank_samplers = [
        BPRSampler(edge_index, 20, 30, batch_size=1000, rank=r, world_size=2) for r in (0, 1)
    ]
    single = BPRSampler(edge_index, 20, 30, batch_size=1000, shuffle=True)
    negatives = []
    for sampler in [*rank_samplers, single]:
        sampler._draw_negatives()  # one negative per interaction, before sharding
        negatives.append(sampler._triples[2].clone())
    assert not torch.equal(negatives[0], negatives[1])
    assert torch.equal(negatives[0], negatives[2])  # rank 0 of any world size: same stream


def test_impossible_user_is_reported():
    edge_index = torch.tensor([[0, 0, 0, 1], [0, 1, 2, 1]])
    with pytest.raises(ValueError, match="user 0 .* all 3 items"):
        BPRSampler(edge_index, 2, 3)


def test_invalid_arguments_are_reported():
    edge_index = torch.tensor([[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="outside"):
        BPRSampler(edge_index, 1, 3)
    with pytest.raises(ValueError, match="rank"):
        BPRSampler(edge_index, 2, 3, rank=2, world_size=2)
    with pytest.raises(ValueError, match="cannot feed"):
        BPRSampler(edge_index, 2, 3, world_size=3)
    with pytest.raises(ValueError, match="batch_size >= 2"):
        BPRSampler(torch.tensor([[0, 0, 1], [0, 1, 1]]), 2, 3, batch_size=1, world_size=2)
