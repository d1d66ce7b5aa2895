"""VGG discriminator: any patch size to (B,) logits, gradients, spectral norm, features, rebuild by name."""
import pytest
import torch

from srcore.discriminator import DISCRIMINATORS, VGGDiscriminator, build_discriminator

TINY = dict(num_feat=8, num_dense=16)  # a few tens of thousands of parameters: fast on CPU
SIZES = [(32, 32), (48, 48), (96, 96), (40, 56), (17, 9)]  # last: smaller than 16 * pool_size, odd, H != W


def tiny(**kwargs) -> VGGDiscriminator:
    torch.manual_seed(0)
    return build_discriminator("vgg", **{**TINY, **kwargs})


def patch(h: int, w: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("spectral_norm", [False, True])
@pytest.mark.parametrize("h, w", SIZES)
def test_logits_shape_and_backward(h: int, w: int, spectral_norm: bool):
    model = tiny(spectral_norm=spectral_norm)
    x = patch(h, w).requires_grad_()
    logits = model(x)
    assert logits.shape == (2,) and torch.isfinite(logits).all()
    (logits * torch.tensor([1.3, -0.7])).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_paper_trunk():
    """Eight convs, 64 -> 512 channels, four of them stride 2; BN after all but the first."""
    model = VGGDiscriminator()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 7
    assert model.head[0].in_features == 512 * 4 * 4 and model.head[0].out_features == 1024
    assert model(patch(96, 96, batch=1)).shape == (1,)


def test_spectral_norm_replaces_bn():
    model = tiny(spectral_norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 10
    for layer in layers:
        assert torch.nn.utils.parametrize.is_parametrized(layer, "weight")
        assert layer.bias is not None  # no BN after it to cancel the bias
    # After a few power iterations the largest singular value of each normalised weight is ~1.
    model.train()
    for _ in range(20):
        model(patch(32, 32))
    weight = model.head[2].weight  # (1, num_dense): its one singular value is its norm
    assert weight.norm().item() == pytest.approx(1.0, rel=1e-3)


def test_features():
    """return_features gives the same logits plus each conv block's output, shallow to deep."""
    model = tiny().eval()
    x = patch(40, 56)
    logits, feats = model(x, return_features=True)
    torch.testing.assert_close(logits, model(x), rtol=0, atol=0)
    assert [f.shape[1] for f in feats] == [8, 8, 16, 16, 32, 32, 64, 64]
    assert [tuple(f.shape[2:]) for f in feats] == [(40, 56), (20, 28), (20, 28), (10, 14), (10, 14), (5, 7),
                                                  (5, 7), (3, 4)]
    for i, feat in enumerate(feats):
        torch.testing.assert_close(feat, model.body[: i + 1](x), rtol=0, atol=0)


def test_eval_mode_is_deterministic_per_sample():
    """In eval mode BN uses running stats, so a sample's logit does not depend on its batch mates."""
    model = tiny().eval()
    x = patch(32, 32, batch=3)
    torch.testing.assert_close(model(x)[1:2], model(x[1:2]))


def test_bad_name_lists_valid():
    with pytest.raises(ValueError, match="unknown discriminator 'patchgan'.*vgg"):
        build_discriminator("patchgan")


@pytest.mark.parametrize("key", ["num_feat", "pool_size", "num_dense"])
def test_bad_sizes_are_named(key: str):
    with pytest.raises(ValueError, match=f"{key} must be a positive int, got 0"):
        build_discriminator("vgg", **{**TINY, key: 0})


@pytest.mark.parametrize("name", list(DISCRIMINATORS))
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_rebuild_from_arch_args(name: str, spectral_norm: bool):
    model = tiny(spectral_norm=spectral_norm, pool_size=2)
    model.train()(patch(32, 32))  # move BN running stats / spectral-norm vectors off their initial values
    model.eval()
    assert model.name == name
    rebuilt = build_discriminator(model.name, **model.arch_args)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    x = patch(48, 40, seed=1)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
