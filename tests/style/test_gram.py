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


def test_bfloat16_and_channels_last_features_give_the_float32_gram() -> None:
    import torch

    from convsight.style.gram import gram_matrix

    f = torch.relu(torch.randn(2, 32, 40, 24))
    ref = gram_matrix(f)
    same = gram_matrix(f.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(same, ref, rtol=1e-5, atol=1e-7)
    half = gram_matrix(f.bfloat16())  # bf16 product, float32 accumulation: only the result is rounded
    assert half.dtype == torch.float32
    assert ((half - ref).abs() / ref.abs().clamp_min(1e-6)).max() < 0.01
