import itertools

import pytest
import torch
import torch.nn.functional as F

from dreamgeo.graph import agreement_weights, modality_agreement


def _exhaustive_auc(x: torch.Tensor, edge_index: torch.Tensor) -> float:
    # every (anchor interaction, other item of its user, any interaction's item) triple,
    # each anchor interaction weighted equally, as the sampler draws them
    x = F.normalize(x.float(), dim=1)
    users, items = edge_index.tolist()
    by_user: dict[int, list[int]] = {}
    for u, i in zip(users, items):
        by_user.setdefault(u, []).append(i)
    total, weight = 0.0, 0.0
    for u, i in zip(users, items):
        others = by_user[u]
        if len(others) < 2:
            continue
        seconds = [j for position, j in enumerate(others) if position != others.index(i)]
        share = 1.0 / (len(seconds) * len(items))
        for j, r in itertools.product(seconds, items):
            together, apart = float(x[i] @ x[j]), float(x[i] @ x[r])
            total += share * (1.0 if together > apart else 0.5 if together == apart else 0.0)
        weight += 1.0
    return total / weight


def _clustered(num_users=60, num_items=40, clusters=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    item_cluster = torch.arange(num_items) % clusters
    rows = []
    for u in range(num_users):
        pool = torch.nonzero(item_cluster == u % clusters).flatten()
        picks = pool[torch.randperm(pool.numel(), generator=generator)[:4]]
        rows += [(u, int(i)) for i in picks]
    edge_index = torch.tensor(rows).t()
    signal = F.one_hot(item_cluster, clusters).float() * 3 + 0.3 * torch.randn(
        num_items, clusters, generator=generator
    )
    noise = torch.randn(num_items, 16, generator=generator)
    return edge_index, signal, noise


def test_auc_matches_an_exhaustive_count():
    edge_index, signal, noise = _clustered(num_users=12, num_items=16)
    # distinct anchors of a user: the exhaustive count assumes unique items per user
    sampled = modality_agreement({"signal": signal, "noise": noise}, edge_index, 400_000)
    assert sampled["signal"] == pytest.approx(_exhaustive_auc(signal, edge_index), abs=0.005)
    assert sampled["noise"] == pytest.approx(_exhaustive_auc(noise, edge_index), abs=0.005)


def test_signal_and_noise_modalities():
    edge_index, signal, noise = _clustered()
    agreement = modality_agreement({"signal": signal, "noise": noise}, edge_index)
    assert agreement["signal"] > 0.85
    assert abs(agreement["noise"] - 0.5) < 0.05
    weights = agreement_weights(agreement)
    assert weights["signal"] > 0.85
    assert sum(weights.values()) == pytest.approx(1.0)


def test_deterministic_and_seeded():
    edge_index, signal, noise = _clustered()
    features = {"signal": signal, "noise": noise}
    assert modality_agreement(features, edge_index, 5_000, seed=3) == modality_agreement(
        features, edge_index, 5_000, seed=3
    )
    assert modality_agreement(features, edge_index, 5_000, seed=3) != modality_agreement(
        features, edge_index, 5_000, seed=4
    )


def test_weights_by_hand():
    # excess over chance 0.1, 0.05, 0 -> 2/3, 1/3, 0
    weights = agreement_weights({"a": 0.6, "b": 0.55, "c": 0.5}, num_samples=1_000_000)
    assert weights == pytest.approx({"a": 2 / 3, "b": 1 / 3, "c": 0.0})
    # below chance counts as none
    assert agreement_weights({"a": 0.6, "b": 0.4}, 1_000_000) == {"a": 1.0, "b": 0.0}
    # 0.51 on 100 samples is inside 3 standard errors (0.15): no modality agrees
    assert agreement_weights({"a": 0.51, "b": 0.5}, num_samples=100) == {"a": 0.5, "b": 0.5}
    # 0.51 on a million samples is 20 standard errors above chance
    assert agreement_weights({"a": 0.51, "b": 0.5}, num_samples=1_000_000) == {
        "a": 1.0,
        "b": 0.0,
    }


def test_degenerate_inputs():
    features = {"a": torch.randn(5, 3)}
    empty = torch.empty(2, 0, dtype=torch.long)
    assert modality_agreement(features, empty) == {"a": 0.5}
    single = torch.tensor([[0, 1, 2], [0, 1, 2]])  # nobody has two items
    assert modality_agreement(features, single) == {"a": 0.5}


def _dream_data(image, text, edge_index, num_users):
    from torch_geometric.data import HeteroData

    data = HeteroData()
    data["user"].num_nodes = num_users
    data["item"].num_nodes = image.size(0)
    data["item"].x_image = image
    data["item"].x_text = text
    data["user", "interacts", "item"].edge_index = edge_index
    return data


def test_dream_takes_the_agreement_weights():
    from dreamgeo import DREAM
    from dreamgeo.graph import agreement_weights

    edge_index, signal, noise = _clustered()
    data = _dream_data(noise, signal, edge_index, 60)
    model = DREAM(data, modal_weighting="agreement", knn_k=3)
    agreement = modality_agreement({"image": noise, "text": signal}, edge_index)
    assert model.modal_line.agreement == agreement
    # 240 training interactions: the standard error is over 240 draws, not 200,000
    assert model.modal_weights == pytest.approx(agreement_weights(agreement, 240))
    assert model.modal_weights["image"] == 0.0
    assert model.s3 is not None
    # the S3 target is the agreeing modality's alone: its factor is the text features
    text = F.normalize(signal, dim=1)
    assert (
        torch.allclose(model.s3.item_factor[:, -signal.size(1) :], text, atol=1e-6)
        and torch.count_nonzero(model.s3.item_factor[:, : noise.size(1)]) == 0
    )
    fixed = DREAM(data, knn_k=3, modal_weighting="fixed")
    assert fixed.modal_weights == {"image": 0.3, "text": 0.7}
    assert fixed.modal_line.agreement is None


def test_dream_drops_s3_when_no_modality_agrees():
    from dreamgeo import DREAM

    edge_index, _, noise = _clustered()
    other = torch.randn(noise.size(0), 8, generator=torch.Generator().manual_seed(5))
    model = DREAM(_dream_data(noise, other, edge_index, 60), modal_weighting="agreement", knn_k=3)
    assert model.modal_weights == {"image": 0.5, "text": 0.5}
    assert model.s3 is None
    # the same data at fixed weights keeps S3
    fixed = DREAM(_dream_data(noise, other, edge_index, 60), knn_k=3, modal_weighting="fixed")
    assert fixed.s3 is not None


def test_s3_rule_and_weights_judge_agreement_on_the_same_sample(monkeypatch):
    import dreamgeo.nn.modal_line as modal_line_module
    from dreamgeo import DREAM

    # AUC 0.55 is 16 standard errors above chance over 200,000 draws but 1.6 over the
    # 240 training interactions the draws repeat: neither the weights nor S3 trust it
    monkeypatch.setattr(
        modal_line_module, "modality_agreement", lambda *args: {"image": 0.55, "text": 0.52}
    )
    edge_index, signal, noise = _clustered()
    model = DREAM(_dream_data(noise, signal, edge_index, 60), modal_weighting="agreement", knn_k=3)
    assert model.modal_line.agreeing == {}
    assert model.modal_weights == {"image": 0.5, "text": 0.5}
    assert model.s3 is None
