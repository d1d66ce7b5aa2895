"""GAN-stage losses: adversarial terms against hand-written BCE, VGG19 perceptual loss on synthetic weights
(nothing is downloaded), discriminator feature matching, and the detaching a GAN step relies on."""
import pytest
import torch
import torch.nn.functional as F

from srcore.discriminator import build_discriminator
from srcore.losses import (ADVERSARIAL, VGG19_LAYERS, VGGPerceptualLoss, discriminator_loss,
                           feature_matching_loss, generator_loss, load_vgg19_features, pixel_loss, vgg19_features)

# torchvision.models.vgg19().features: conv indices, block by block.
TORCHVISION_CONVS = {1: (0, 2), 2: (5, 7), 3: (10, 12, 14, 16), 4: (19, 21, 23, 25), 5: (28, 30, 32, 34)}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def image(seed: int = 0, size: int = 32) -> torch.Tensor:
    """(1, 3, size, size) in [0, 1]."""
    return torch.rand(1, 3, size, size, generator=gen(seed))


def logits(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, generator=gen(seed), dtype=torch.float64) * 2


def bce(z: torch.Tensor, label: float) -> torch.Tensor:
    """Hand-written mean binary cross-entropy of sigmoid(z) against a constant label."""
    p = torch.sigmoid(z)
    return -(label * torch.log(p) + (1 - label) * torch.log(1 - p)).mean()


@pytest.fixture(scope="module")
def vgg_path(tmp_path_factory):
    """A torchvision-format VGG19 state dict with random weights, plus classifier keys to be ignored."""
    torch.manual_seed(0)
    state = {f"features.{key}": value for key, value in vgg19_features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 2)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(state, path)
    return path


# --- adversarial -------------------------------------------------------------------------------------

def test_ragan_matches_hand_written_bce():
    real, fake = logits(16, 0), logits(16, 1)
    real_rel, fake_rel = real - fake.mean(), fake - real.mean()
    d = 0.5 * (bce(real_rel, 1) + bce(fake_rel, 0))
    g = 0.5 * (bce(real_rel, 0) + bce(fake_rel, 1))
    torch.testing.assert_close(discriminator_loss("ragan", real, fake), d, rtol=1e-12, atol=0)
    torch.testing.assert_close(generator_loss("ragan", real, fake), g, rtol=1e-12, atol=0)


def test_vanilla_matches_hand_written_bce():
    real, fake = logits(16, 2), logits(16, 3)
    d = 0.5 * (bce(real, 1) + bce(fake, 0))
    torch.testing.assert_close(discriminator_loss("vanilla", real, fake), d, rtol=1e-12, atol=0)
    torch.testing.assert_close(generator_loss("vanilla", real, fake), bce(fake, 1), rtol=1e-12, atol=0)
    # SRGAN's G loss does not read D(real), so the caller may skip computing it.
    torch.testing.assert_close(generator_loss("vanilla", None, fake), bce(fake, 1), rtol=1e-12, atol=0)


# --- pixel losses ----------------------------------------------------------------------------------------

def channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind, reference", [("l1", F.l1_loss), ("mse", F.mse_loss)])
def test_pixel_losses_are_torchs_bit_for_bit_with_gradients_in_the_input_layout(kind, reference, dtype):
    """The same value and gradients as F.l1_loss / F.mse_loss, to the bit; the gradient reaching a channels_last
    activation is channels_last too (torch's is NCHW, and every backward op after it mixes layouts: slow)."""
    ours = pixel_loss(kind)
    for seed in range(4):
        x0, y0 = (channels_last(torch.randn(2, 8, 5 + seed, 7, generator=gen(seed + k)).to(dtype)) for k in (0, 10))
        weight = torch.rand((), generator=gen(seed)).to(dtype)  # the loss's weight in the total
        results = []
        for loss in (reference, ours):
            x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
            layouts = []
            activation = x * 1  # a non-leaf, as a network's output is
            activation.register_hook(lambda grad: layouts.append(grad.is_contiguous(memory_format=torch.channels_last)))
            value = loss(activation, y)
            (weight * value).backward()
            results.append((value, x.grad, y.grad, layouts))
        (value, grad_x, grad_y, _), (our_value, our_grad_x, our_grad_y, our_layouts) = results
        assert torch.equal(our_value, value) and our_value.dtype == dtype
        assert torch.equal(our_grad_x, grad_x) and torch.equal(our_grad_y, grad_y)
        assert our_layouts == [True]


def test_pixel_loss_without_target_gradient_and_unknown_kind():
    x, y = torch.rand(1, 3, 4, 4, requires_grad=True), torch.rand(1, 3, 4, 4)
    pixel_loss("l1")(x, y).backward()
    assert y.grad is None and x.grad is not None
    with pytest.raises(ValueError, match="unknown pixel loss 'huber'; valid: l1, mse"):
        pixel_loss("huber")


def test_ragan_triton_backend_matches_torch():
    """On CUDA the Triton kernels run compiled and need CUDA tensors (on CPU, tests/conftest.py interprets them)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    real, fake = logits(7, 4).float().to(device), logits(7, 5).float().to(device)
    for loss in (discriminator_loss, generator_loss):
        torch.testing.assert_close(loss("ragan", real, fake, backend="triton"), loss("ragan", real, fake))


def test_adversarial_errors():
    real, fake = logits(4, 0), logits(4, 1)
    with pytest.raises(ValueError, match="unknown adversarial loss 'wgan'.*vanilla, ragan"):
        discriminator_loss("wgan", real, fake)
    with pytest.raises(ValueError, match="ragan GAN loss needs real_logits"):
        generator_loss("ragan", None, fake)
    with pytest.raises(ValueError, match="got 'auto'"):
        generator_loss("vanilla", real, fake, backend="auto")


@pytest.mark.parametrize("kind", list(ADVERSARIAL))
def test_gan_step_detaching(kind: str):
    """D step on G(lr).detach() leaves G without gradients; G step with D(hr).detach() reaches G."""
    torch.manual_seed(0)
    g = torch.nn.Conv2d(3, 3, 3, padding=1)  # stands in for a generator: only the gradient path matters
    d = build_discriminator("vgg", num_feat=4, num_dense=8)
    lr, hr = image(0), image(1)
    discriminator_loss(kind, d(hr), d(g(lr).detach())).backward()
    assert all(p.grad is None for p in g.parameters())
    # RaGAN compares D(real) with D(fake), so the last layer's bias cancels and gets a zero gradient.
    shift_invariant = {"head.2.bias"} if kind == "ragan" else set()
    for name, p in d.named_parameters():
        assert p.grad is not None and (p.grad.abs().sum() > 0) != (name in shift_invariant), name

    d.zero_grad(set_to_none=True)
    generator_loss(kind, d(hr).detach(), d(g(lr))).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


# --- perceptual ----------------------------------------------------------------------------------------

def test_layer_indices_match_torchvision():
    expected = {f"conv{b}_{i + 1}": index for b, convs in TORCHVISION_CONVS.items() for i, index in enumerate(convs)}
    assert VGG19_LAYERS == expected
    features = vgg19_features()
    assert len(features) == 37
    conv_indices = [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]
    assert conv_indices == sorted(expected.values())
    assert all(isinstance(features[i + 1], torch.nn.ReLU) for i in conv_indices)


def test_perceptual_loads_zero_and_positive(vgg_path):
    loss = VGGPerceptualLoss({"conv5_4": 1.0, "conv3_4": 0.5}, vgg_path)
    assert len(loss.vgg) == 35  # truncated right after conv5_4: its ReLU is never run
    x, y = image(0), image(1)
    assert loss(x, x).item() == 0
    assert loss(x, y).item() > 0


def test_perceptual_gradient_reaches_input_only(vgg_path):
    loss = VGGPerceptualLoss({"conv2_2": 1.0}, vgg_path)
    sr, hr = image(0).requires_grad_(), image(1).requires_grad_()
    loss(sr, hr).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert hr.grad is None
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())


def test_perceptual_taps_before_relu(vgg_path):
    loss = VGGPerceptualLoss({"conv1_2": 1.0, "conv4_4": 1.0}, vgg_path)
    x = image(0)
    feats = loss.features(x)
    normalised = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(feats["conv1_2"], loss.vgg[:3](normalised))  # conv1_1, relu, conv1_2
    for name, feat in feats.items():
        assert feat.min() < 0, name  # a ReLU output never is


def test_perceptual_layer_weights_and_criterion(vgg_path):
    x, y = image(0), image(1)
    a = VGGPerceptualLoss({"conv1_2": 1.0}, vgg_path)(x, y)
    b = VGGPerceptualLoss({"conv3_1": 1.0}, vgg_path)(x, y)
    both = VGGPerceptualLoss({"conv1_2": 2.0, "conv3_1": 0.25}, vgg_path)(x, y)
    torch.testing.assert_close(both, 2.0 * a + 0.25 * b)
    mse = VGGPerceptualLoss({"conv1_2": 1.0}, vgg_path, criterion="mse")
    feats_x, feats_y = mse.features(x), mse.features(y)
    torch.testing.assert_close(mse(x, y), F.mse_loss(feats_x["conv1_2"], feats_y["conv1_2"]))


def test_perceptual_bad_arguments(vgg_path):
    with pytest.raises(ValueError, match="unknown VGG19 layer.*'relu5_4'.*conv1_1.*conv5_4"):
        VGGPerceptualLoss({"relu5_4": 1.0}, vgg_path)
    with pytest.raises(ValueError, match="unknown perceptual criterion 'fro'.*l1, mse"):
        VGGPerceptualLoss({"conv5_4": 1.0}, vgg_path, criterion="fro")
    with pytest.raises(ValueError, match="at least one layer"):
        VGGPerceptualLoss({}, vgg_path)


def test_vgg_weights_errors(vgg_path, tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_vgg19_features(missing)
    state = torch.load(vgg_path, weights_only=True)

    bad_keys = {key.removeprefix("features."): value for key, value in state.items()}  # bare Sequential keys
    torch.save(bad_keys, tmp_path / "bare.pth")
    with pytest.raises(ValueError, match=r"bare.pth are not a torchvision vgg19 state dict: missing \['features"):
        load_vgg19_features(tmp_path / "bare.pth")

    extra = {**state, "features.1.weight": torch.zeros(1)}  # index 1 is a ReLU: no weights there
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"extra.pth .*unexpected \['features.1.weight'\]"):
        load_vgg19_features(tmp_path / "extra.pth")

    wrong = {**state, "features.34.weight": torch.zeros(512, 512, 1, 1)}
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match=r"wrong.pth have wrong shapes: features.34.weight \(512, 512, 1, 1\)"):
        load_vgg19_features(tmp_path / "wrong.pth")

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth could not be read"):
        load_vgg19_features(tmp_path / "junk.pth")


# --- feature matching -----------------------------------------------------------------------------------

def test_feature_matching():
    real = [torch.randn(2, 4, 8, 8, generator=gen(i)) for i in range(3)]
    fake = [f.clone().requires_grad_() for f in real]
    assert feature_matching_loss(real, fake).item() == 0
    shifted = [f + 0.5 * (i + 1) for i, f in enumerate(fake)]  # L1 of 0.5, 1.0, 1.5: mean 1.0
    torch.testing.assert_close(feature_matching_loss(real, shifted), torch.tensor(1.0))


def test_feature_matching_detaches_real():
    d = build_discriminator("vgg", num_feat=4, num_dense=8)
    hr, sr = image(0), image(1).requires_grad_()
    _, real = d(hr.requires_grad_(), return_features=True)
    _, fake = d(sr, return_features=True)
    feature_matching_loss(real, fake).backward()
    assert hr.grad is None and sr.grad.abs().sum() > 0


def test_feature_matching_errors():
    a = [torch.zeros(1, 2, 4, 4)]
    with pytest.raises(ValueError, match="got 1 and 2"):
        feature_matching_loss(a, a + a)
    with pytest.raises(ValueError, match=r"feature map 0: real \(1, 2, 4, 4\) and fake \(1, 2, 2, 2\)"):
        feature_matching_loss(a, [torch.zeros(1, 2, 2, 2)])


def test_perceptual_loss_under_bf16_autocast_moves_by_bf16_rounding_only(tmp_path):
    """The GAN step runs VGG19 under the runtime's autocast (srcore.recipes.gan.perceptual_term): in bf16 the
    loss stays within bf16 rounding of fp32's, and its gradient points the same way. The weights are random
    but scaled as trained VGG keeps its activations (Kaiming, ReLU gain): with PyTorch's default init the
    conv5_4 features of random weights shrink to ~1e-4 and are mostly rounding noise in either precision.
    Measured here: conv2_2 loss 1.1e-4 relative apart, gradient cosine 0.997; conv5_4 2.1e-4 and 0.956."""
    torch.manual_seed(0)
    features = vgg19_features()
    for module in features.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg19.pth")
    gen = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 48, 48, generator=gen).contiguous(memory_format=torch.channels_last)
    sr = (hr + 0.1 * torch.randn(2, 3, 48, 48, generator=gen)).clamp(0, 1)
    for layer, min_cosine in (("conv2_2", 0.99), ("conv5_4", 0.9)):
        loss = VGGPerceptualLoss({layer: 1.0}, tmp_path / "vgg19.pth").to(memory_format=torch.channels_last)
        results = {}
        for precision in ("fp32", "bf16"):
            x = sr.clone().requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                value = loss(x, hr)
            value.backward()
            results[precision] = (value.item(), x.grad.flatten())
        (fp32, g32), (bf16, g16) = results["fp32"], results["bf16"]
        assert abs(bf16 - fp32) / fp32 < 4e-3, (layer, fp32, bf16)  # one bf16 rounding is up to 3.9e-3
        assert torch.nn.functional.cosine_similarity(g32, g16, dim=0) > min_cosine, layer
