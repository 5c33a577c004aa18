import pytest
import torch

from convsight.style.gram import gram_matrix


def test_gram_matches_hand_computation() -> None:
    # two channels on a 2x2 map: F = [[1, 2, 3, 4], [0, 1, 0, 1]]
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    # F F^T = [[30, 6], [6, 2]], divided by C * h * w = 2 * 2 * 2 = 8
    expected = torch.tensor([[[30.0, 6.0], [6.0, 2.0]]]) / 8
    torch.testing.assert_close(gram_matrix(f), expected)


def test_gram_invariant_to_spatial_permutation() -> None:
    f = torch.randn(2, 5, 6, 7)
    perm = torch.randperm(6 * 7)
    shuffled = f.flatten(2)[:, :, perm].reshape(2, 5, 6, 7)
    torch.testing.assert_close(gram_matrix(shuffled), gram_matrix(f))
    assert gram_matrix(f).shape == (2, 5, 5)


def test_gram_is_float32_and_symmetric_for_bfloat16_input() -> None:
    g = gram_matrix(torch.rand(1, 4, 8, 8).bfloat16())
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, g.transpose(1, 2))


def test_gram_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError):
        gram_matrix(torch.rand(4, 8, 8))
