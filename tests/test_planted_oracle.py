import math

import numpy as np
import pytest
import torch

from dreamgeo.datasets import PlantedConfig, PlantedData, generate_planted
from dreamgeo.datasets.planted_oracle import planted_oracle_factors, planted_posterior_factors
from dreamgeo.train.evaluate import FullRankEvaluator


@pytest.fixture(scope="module")
def small():
    return generate_planted("small", seed=0)


def two_topic_data(exploration: float = 0.1) -> PlantedData:
    # 1 user, 2 pure items (item 0 topic 0, item 1 topic 1), popularity 1 and 2^-0.5
    config = PlantedConfig(
        1,
        2,
        10,
        num_topics=2,
        image_dim=0,
        text_dim=1,
        popularity_exponent=0.5,
        exploration=exploration,
        min_degree=1,
        item_purity=1.0,
    )
    topics = np.eye(2)
    popularity = np.array([1.0, 2**-0.5])
    return PlantedData(
        interactions=np.zeros((0, 5), dtype=np.int64),
        features={},
        item_topics=topics.astype(np.float32),
        user_preferences=np.array([[0.75, 0.25]], dtype=np.float32),
        config=config,
        seed=0,
        item_popularity=popularity,
        topic_mass=(topics * popularity[:, None]).sum(0),
        user_topic_mass=np.array([0.75, 0.25]),
    )


def test_planted_keeps_popularity_and_normalizers(small):
    assert small.item_popularity.shape == (small.num_items,)
    assert (small.item_popularity > 0).all() and small.item_popularity.max() <= 1.0
    assert small.topic_mass.shape == small.user_topic_mass.shape == (small.config.num_topics,)
    # every kept item's share of a topic is at most the topic's whole mass
    share = small.item_topics * small.item_popularity[:, None] / small.topic_mass
    assert share.sum(0).max() <= 1.0 + 1e-6


def test_oracle_factors_match_the_rate_by_hand():
    data = two_topic_data()
    user, item = planted_oracle_factors(data, torch.tensor([4.0]))
    rate = (user @ item.t())[0]
    total = 1.0 + 2**-0.5
    for i, (theta_k, p) in enumerate([(0.75, 1.0), (0.25, 2**-0.5)]):
        # own draws: 4 [(1 - eps) theta_k z p / S_k + eps p / P]; S_k = p (pure items)
        own = 4 * (0.9 * theta_k * 1.0 + 0.1 * p / total)
        # item side: d_min z theta_k / T_k = 1 * theta_k / theta_k
        assert rate[i].item() == pytest.approx(own + 1.0, rel=1e-12)
    user, item = planted_oracle_factors(data, torch.tensor([4.0]), item_side=False)
    assert (user @ item.t())[0, 0].item() == pytest.approx(4 * (0.9 * 0.75 + 0.1 / total))


def test_oracle_factors_check_the_degree_length(small):
    with pytest.raises(ValueError, match="user_degree has 3 rows"):
        planted_oracle_factors(small, torch.ones(3))


def test_posterior_factors_by_hand():
    data = two_topic_data()
    total = 1.0 + 2**-0.5
    train = torch.tensor([[0], [0]])  # the user's one training item: item 0
    prior = 1.0 / 2  # A / K with A = 1, K = 2

    def expected(gamma0: float) -> float:
        theta0 = gamma0 / (gamma0 + prior)
        # score of item 1 (topic 1, p = 2^-0.5): (1 - eps) theta_1 * 1 + eps p_1 / P
        return 0.9 * (1 - theta0) + 0.1 * 2**-0.5 / total

    # first responsibility under uniform preferences: topic 0 against exploration
    topic = 0.9 * 0.5 * 1.0
    explore = 0.1 * 1.0 / total
    gamma0 = prior + topic / (topic + explore)
    user, item = planted_posterior_factors(data, train, iterations=0)
    assert (user @ item.t())[0, 1].item() == pytest.approx(expected(gamma0), rel=1e-10)
    # one variational update: exp(E[log theta_0]) = exp(psi(gamma_0) - psi(gamma_0 + A/K))
    psi = torch.digamma(torch.tensor([gamma0, gamma0 + prior], dtype=torch.float64))
    weight = math.exp(psi[0] - psi[1])
    gamma0 = prior + 0.9 * weight / (0.9 * weight + explore)
    user, item = planted_posterior_factors(data, train, iterations=1)
    assert (user @ item.t())[0, 1].item() == pytest.approx(expected(gamma0), rel=1e-10)


def test_references_rank_held_out_items_above_popularity(small):
    table = torch.from_numpy(small.interactions)
    users, items, labels = table[:, 0], table[:, 1], table[:, 4]
    edges = [torch.stack([users[labels == s], items[labels == s]]) for s in range(3)]
    evaluator = FullRankEvaluator(
        edges[0], {"valid": edges[1]}, small.num_users, small.num_items, ks=(20,)
    )
    degree = torch.bincount(users, minlength=small.num_users)

    def recall(factors):
        return evaluator.evaluate(*factors)["valid"]["recall@20"]

    popularity = torch.from_numpy(small.item_popularity).view(-1, 1)
    chance = recall((torch.ones(small.num_users, 1, dtype=torch.float64), popularity))
    knows = recall(planted_oracle_factors(small, degree))
    infers = recall(planted_posterior_factors(small, edges[0]))
    # knowing the preferences beats inferring them, which beats popularity
    assert knows > infers > 1.5 * chance


def test_ceiling_script_on_tiny(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from planted_ceiling import main

    assert main(["--preset", "tiny", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split("|")[1].strip(): float(line.split("|")[2])
        for line in out.splitlines()
        if line.startswith("| ") and not line.startswith("| ranking")
    }
    assert len(rows) == 4
    knows = rows["generator-aware ranking (both terms)"]
    assert knows >= rows["item side known, preferences inferred from train"]
    assert knows > rows["planted popularity alone"]
