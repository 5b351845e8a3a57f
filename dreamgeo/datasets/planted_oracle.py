r"""Generator-aware reference rankings of a planted dataset: how well a recommender that
knows the planted parameters can rank the held-out items, knowing the users' preferences
(:func:`planted_oracle_factors`) or inferring them from the training interactions
(:func:`planted_posterior_factors`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dreamgeo.datasets.planted import PlantedData

__all__ = ["planted_oracle_factors", "planted_posterior_factors"]


def planted_oracle_factors(
    planted: PlantedData, user_degree: Tensor | np.ndarray, item_side: bool = True
) -> tuple[Tensor, Tensor]:
    r"""User and item factors whose dot product is the expected number of times the
    planted generator (:func:`~dreamgeo.datasets.generate_planted`, module docstring)
    draws each (user, item) pair:

    .. math::
        \lambda_{ui} = n_u \Big[(1 - \epsilon) \sum_k \theta_{uk}
            \frac{z_{ik} p_i}{S_k} + \epsilon \frac{p_i}{P}\Big]
            + d_{\min} \sum_k z_{ik} \frac{\theta_{uk}}{T_k},

    with :math:`S_k = \sum_j z_{jk} p_j`, :math:`P = \sum_j p_j` and
    :math:`T_k = \sum_v \theta_{vk}` over every generated item and user. The first
    term is the user's own draws (about :math:`n_u` of them, its number of
    interactions), the second the :math:`d_{\min}` users each item draws by its topics
    (a topic :math:`k \sim z_i`, then a user :math:`\propto \theta_{uk}`). Ranking a
    user's unseen items by :math:`\lambda_{ui}` knows everything the generator used
    except the random draws themselves (top-ups, duplicates and the core filter are
    left out), so its Recall@K is a practical ceiling for any model trained on the
    interactions, not a proven bound.

    Args:
        planted (PlantedData): The generated dataset (same preset and seed as the data
            the models are trained on).
        user_degree (torch.Tensor or np.ndarray): :math:`n_u`, each user's number of
            interactions (all splits).
        item_side (bool, optional): Include the item-side term; :obj:`False` ranks by
            the user's own draws alone. (default: :obj:`True`)

    Shapes:
        - **user_degree:** :math:`[M]`
        - **output:** user factors :math:`[M, 2K + 1]`, item factors
          :math:`[N, 2K + 1]` (float64)
    """
    theta = torch.from_numpy(planted.user_preferences).double()
    degree = torch.as_tensor(user_degree, dtype=torch.float64).view(-1, 1)
    if degree.size(0) != theta.size(0):
        raise ValueError(
            f"planted_oracle_factors: user_degree has {degree.size(0)} rows, the planted "
            f"data has {theta.size(0)} users"
        )
    by_topic, explore = _item_draw_probs(planted)
    eps = planted.config.exploration
    side = planted.config.min_degree if item_side else 0.0
    topics = torch.from_numpy(planted.item_topics).double()
    user_topic_mass = torch.from_numpy(planted.user_topic_mass).double()
    users = [degree * (1 - eps) * theta, degree * eps, side * theta]
    items = [by_topic, explore.view(-1, 1), topics / user_topic_mass]
    return torch.cat(users, dim=1), torch.cat(items, dim=1)


def _item_draw_probs(planted: PlantedData) -> tuple[Tensor, Tensor]:
    # P(i | topic k) = z_ik p_i / S_k [N, K] and P(i | exploration) = p_i / P [N], with P
    # over every generated item: the popularities are a permutation of (r + 1)^-s
    config = planted.config
    topics = torch.from_numpy(planted.item_topics).double()
    popularity = torch.from_numpy(planted.item_popularity).double()
    ranks = np.arange(1, config.num_items + 1, dtype=np.float64)
    total = float((ranks**-config.popularity_exponent).sum())
    topic_mass = torch.from_numpy(planted.topic_mass).double()
    return topics * popularity.view(-1, 1) / topic_mass, popularity / total


def planted_posterior_factors(
    planted: PlantedData, train_edge_index: Tensor, iterations: int = 100
) -> tuple[Tensor, Tensor]:
    r"""User and item factors of the predictive distribution of a user's next draw when
    the item side of the generator (topics :math:`z`, popularities :math:`p`, the
    exploration share :math:`\epsilon`, the prior :math:`\mathrm{Dir}(A/K)`) is known
    and the user's preferences :math:`\theta_u` are inferred from their training
    interactions alone, by mean-field variational Bayes as in LDA with fixed topics
    (Blei et al., 2003), each training item a draw from topic :math:`k` or from the
    exploration component:

    .. math::
        r_{uik} &\propto (1 - \epsilon)\, e^{\psi(\gamma_{uk}) - \psi(\sum_l
            \gamma_{ul})} \frac{z_{ik} p_i}{S_k}, \qquad
        r_{ui\epsilon} \propto \epsilon \frac{p_i}{P}, \qquad
        \gamma_{uk} = \frac{A}{K} + \sum_{i \in \mathcal{I}_u} r_{uik},

        s_{ui} &= (1 - \epsilon) \sum_k \hat\theta_{uk} \frac{z_{ik} p_i}{S_k}
            + \epsilon \frac{p_i}{P}, \qquad
        \hat\theta_{uk} = \gamma_{uk} / \textstyle\sum_l \gamma_{ul}.

    This is what a model that recovered every item's planted parameters exactly could
    do with the training data: a reference for the part of the gap to
    :func:`planted_oracle_factors` that no model can close (the few interactions per
    user), not a bound.

    Args:
        planted (PlantedData): The generated dataset.
        train_edge_index (torch.Tensor): The training interactions (row 0 users, row 1
            items, the ids of ``planted``).
        iterations (int, optional): Variational updates. (default: :obj:`100`)

    Shapes:
        - **train_edge_index:** :math:`[2, E_{train}]`
        - **output:** user factors :math:`[M, K + 1]`, item factors :math:`[N, K + 1]`
          (float64)
    """
    config = planted.config
    num_users, num_topics = planted.user_preferences.shape
    by_topic, explore = _item_draw_probs(planted)
    users, items = train_edge_index[0], train_edge_index[1]
    prior = config.user_concentration / num_topics
    eps = config.exploration
    edge_logits = by_topic[items].clamp_min(1e-300).log() + np.log(1 - eps)  # [E, K]
    edge_explore = (explore[items].log() + np.log(eps)).view(-1, 1)  # [E, 1]
    # start from the responsibilities under uniform preferences: started from the prior
    # alone, exp(E[log theta]) of A/K = 0.01 is so small that the exploration component
    # takes every item and the updates never leave that fixed point
    expected_log = torch.full((num_users, num_topics), -np.log(num_topics), dtype=torch.float64)
    for _ in range(iterations + 1):
        logits = torch.cat([edge_logits + expected_log[users], edge_explore], dim=1)
        resp = torch.softmax(logits, dim=1)[:, :num_topics]
        gamma = torch.full((num_users, num_topics), prior, dtype=torch.float64)
        gamma.index_add_(0, users, resp)
        expected_log = torch.digamma(gamma) - torch.digamma(gamma.sum(1, keepdim=True))
    theta = gamma / gamma.sum(1, keepdim=True)
    user = torch.cat([(1 - eps) * theta, torch.full((num_users, 1), eps, dtype=torch.float64)], 1)
    item = torch.cat([by_topic, explore.view(-1, 1)], dim=1)
    return user, item
