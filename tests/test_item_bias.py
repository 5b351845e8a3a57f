import pytest
import torch

from dreamgeo.nn import ItemBias


def test_item_bias_is_an_extra_inner_product_column():
    bias = ItemBias(4)
    assert torch.equal(bias.weight, torch.zeros(4, 1))
    with torch.no_grad():
        bias.weight.copy_(torch.tensor([[0.5], [-1.0], [2.0], [0.0]]))
    users, items = torch.randn(3, 2), torch.randn(4, 2)
    scores = bias.users(users) @ bias.items(items).t()
    torch.testing.assert_close(scores, users @ items.t() + torch.tensor([0.5, -1.0, 2.0, 0.0]))
    index = torch.tensor([2, 2, 1])
    rows = bias.items(items[index], index)
    assert rows[:, -1].tolist() == [2.0, 2.0, -1.0]
    # the gradient reaches the biases of the indexed items only
    rows[:, -1].sum().backward()
    assert bias.weight.grad.view(-1).tolist() == [0.0, 1.0, 2.0, 0.0]
    bias.reset_parameters()
    assert torch.equal(bias.weight, torch.zeros(4, 1))


def test_item_bias_needs_every_item_without_an_index():
    with pytest.raises(ValueError, match="3 item rows without an index, expected all 4"):
        ItemBias(4).items(torch.randn(3, 2))
