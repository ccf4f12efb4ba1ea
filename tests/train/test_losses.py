"""The shared losses and the balanced sampler against torch's / scikit-learn's own definitions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from emotune.train.losses import class_weights, make_loss
from emotune.train.sampling import balanced_sampler, balanced_weights
from tests.tolerance import tol


def close(ref: torch.Tensor) -> dict:
    """A loss over the 32 x 5 batch sums at most 160 fp32 terms, in an order each implementation picks."""
    return tol(torch.float32, 32 * 5, float(ref.abs()))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 5, generator=g) * 3
    y = torch.randint(0, 5, (32,), generator=g)
    return logits, y


def test_class_weights_equal_sklearn_balanced():
    y = np.array([0] * 50 + [1] * 10 + [2] * 5 + [-1] * 7)
    w = class_weights(y, 4)
    ref = compute_class_weight("balanced", classes=np.arange(3), y=y[y >= 0])
    np.testing.assert_allclose(w[:3], ref, rtol=1e-6)
    assert w[3] == 0  # absent class
    assert np.isclose((w[y[y >= 0]]).mean(), 1.0)


def test_class_weights_from_multi_hot_columns():
    y = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0], [1, 0, 0]], dtype=float)
    w = class_weights(y, 3)
    assert np.isclose(w[1], w[2]) and w[1] > w[0]
    np.testing.assert_allclose(w * y.sum(0), y.sum() / 3)


def test_single_ce_equals_torch_weighted_ce_with_ignore(batch):
    logits, y = batch
    y = y.clone()
    y[:4] = -1
    w = np.array([1.0, 2.0, 0.5, 3.0, 1.0], dtype=np.float32)
    ours = make_loss("ce", class_weights=w)(logits, y)
    ref = F.cross_entropy(logits, y, weight=torch.tensor(w), ignore_index=-1)
    assert torch.allclose(ours, ref, **close(ref))


def test_focal_gamma0_is_ce_and_focal_downweights_easy(batch):
    logits, y = batch
    ce = make_loss("ce")(logits, y)
    assert torch.allclose(make_loss("focal", gamma=0.0)(logits, y), ce, **close(ce))
    focal = make_loss("focal", gamma=2.0)(logits, y)
    assert focal < ce
    # A confidently right sample contributes almost nothing under focal loss, a wrong one nearly its CE.
    easy = torch.tensor([[10.0, 0, 0]])
    hard = torch.tensor([[0.0, 10, 0]])
    t = torch.tensor([0])
    assert make_loss("focal", gamma=2.0)(easy, t) < 1e-6 * make_loss("ce")(easy, t) + 1e-9
    # Not rounding: focal = CE * (1 - p)^2 with p ~ 5e-5 here, a true difference of ~1e-4 relative.
    assert torch.isclose(make_loss("focal", gamma=2.0)(hard, t), make_loss("ce")(hard, t), rtol=1e-3)


def test_soft_with_one_hot_equals_single(batch):
    logits, y = batch
    w = np.linspace(0.5, 2.0, 5).astype(np.float32)
    onehot = F.one_hot(y, 5).float()
    for kind in ("ce", "focal"):
        single = make_loss(kind, w, target="single")(logits, y)
        assert torch.allclose(make_loss(kind, w, target="soft")(logits, onehot), single, **close(single))


def test_soft_ce_equals_torch_probability_targets(batch):
    logits, _ = batch
    t = torch.softmax(torch.randn(32, 5, generator=torch.Generator().manual_seed(1)), -1)
    ref = F.cross_entropy(logits, t)
    assert torch.allclose(make_loss("ce", target="soft")(logits, t), ref, **close(ref))


def test_multi_bce_equals_torch_and_focal_gamma0(batch):
    logits, _ = batch
    t = (torch.rand(32, 5, generator=torch.Generator().manual_seed(2)) > 0.6).float()
    ref = F.binary_cross_entropy_with_logits(logits, t)
    assert torch.allclose(make_loss("ce", target="multi")(logits, t), ref, **close(ref))
    assert torch.allclose(make_loss("focal", gamma=0.0, target="multi")(logits, t), ref, **close(ref))
    w = torch.tensor([1.0, 2.0, 1.0, 1.0, 0.5])
    ref_w = (F.binary_cross_entropy_with_logits(logits, t, reduction="none") * w).sum() / (32 * w.sum())
    assert torch.allclose(make_loss("ce", w.numpy(), target="multi")(logits, t), ref_w, **close(ref_w))


def test_loss_has_gradient_and_rejects_unknown_kind(batch):
    logits, y = batch
    logits = logits.clone().requires_grad_(True)
    make_loss("focal", class_weights=class_weights(y.numpy(), 5))(logits, y).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError):
        make_loss("hinge")


def test_balanced_sampler_draws_classes_uniformly_and_is_seeded():
    y = np.array([0] * 900 + [1] * 90 + [2] * 10)
    drawn = np.array(list(balanced_sampler(y, seed=3, num_samples=30000)))
    freq = np.bincount(y[drawn], minlength=3) / len(drawn)
    np.testing.assert_allclose(freq, 1 / 3, atol=0.02)  # sampling error: 7 standard deviations of 30,000 draws
    assert list(balanced_sampler(y, seed=3)) == list(balanced_sampler(y, seed=3))
    assert list(balanced_sampler(y, seed=3)) != list(balanced_sampler(y, seed=4))


def test_balanced_weights_multi_label_favour_rare_labels():
    y = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 0]], dtype=float)
    w = balanced_weights(y)
    assert np.isclose(w.sum(), 1.0)
    assert w[3] > w[0] and w[4] > w[0]  # the sample with the rare label, and the unlabelled "class"


def test_label_smoothing_equals_torch_and_agrees_between_single_and_soft(batch):
    logits, y = batch
    for eps in (0.1, 0.3):
        ref = F.cross_entropy(logits, y, label_smoothing=eps)
        got = make_loss("ce", target="single", smoothing=eps)(logits, y)
        assert torch.isclose(got, ref, **close(ref))
        soft = make_loss("ce", target="soft", smoothing=eps)(logits, F.one_hot(y, 5).float())
        assert torch.isclose(soft, ref, **close(ref))
    # smoothing raises the loss of a confident right answer: the model is no longer pushed to certainty
    confident = torch.tensor([[20.0, 0, 0, 0, 0]])
    assert make_loss(smoothing=0.1)(confident, torch.tensor([0])) > make_loss()(confident, torch.tensor([0])) + 0.1


def test_label_smoothing_refused_where_it_means_nothing():
    from emotune.errors import EmotuneError
    from emotune.train.losses import check_smoothing

    for kind, target in (("focal", "single"), ("ce", "multi")):
        with pytest.raises(ValueError, match="label smoothing"):
            make_loss(kind, target=target, smoothing=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        make_loss(smoothing=1.0)
    with pytest.raises(EmotuneError, match="logistic regression"):
        check_smoothing(0.1, "baseline_lr", "none", "single")
    with pytest.raises(EmotuneError, match="train.imbalance=focal"):
        check_smoothing(0.1, "emotion_lm", "focal", "single")
    check_smoothing(0.1, "baseline_mlp", "class_weights", "soft")
    check_smoothing(0.0, "baseline_lr", "none", "multi")
