"""Backbones by name from torchvision and timm: train, checkpoint, evaluate, predict, export, and their weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from garbage_lit.data.images import load_rgb
from garbage_lit.evaluate import evaluate
from garbage_lit.export import export, sidecar_path
from garbage_lit.models.backbones import create_backbone
from garbage_lit.models.loading import eval_transform, load_classifier
from garbage_lit.predict import predict
from garbage_lit.train import train

from helpers import TEST_ACC
from helpers.config import compose_app, compose_fast_cfg
from helpers.data import make_folder_dataset, write_image

timm = pytest.importorskip("timm", reason="model=timm needs the timm extra: pip install 'garbage-lit[timm]'")

ZOO_ARCHS = [("torchvision", "mobilenet_v3_small"), ("timm", "resnet18")]


@pytest.fixture(scope="module", params=ZOO_ARCHS, ids=["-".join(p) for p in ZOO_ARCHS])
def trained(request, tmp_path_factory) -> dict:
    """One epoch of ``model=<zoo> model.arch=<arch> model.weights=none`` on 3 tiny colour classes."""
    zoo, arch = request.param
    base = tmp_path_factory.mktemp(f"{zoo}_{arch}")
    data = make_folder_dataset(base / "data")
    run = base / "run"
    cfg = compose_fast_cfg(base, f"model={zoo}", f"model.arch={arch}", "model.weights=none", "data=folder",
                           f"data.root={data}", "data.image_size=64", "data.resize_size=72", output_dir=run)
    train(cfg)
    return {"zoo": zoo, "arch": arch, "data": data, "run": run, "ckpt": run / "checkpoints" / "model.ckpt",
            "metrics": json.loads((run / "metrics.json").read_text())}


def test_zoo_backbone_trains_and_records_its_preprocessing(trained):
    metrics = trained["metrics"]
    assert metrics["status"] == "completed" and metrics["weights_source"] == "none (random init)"
    assert metrics["config"]["model"]["arch"] == trained["arch"] and metrics["config"]["model"]["zoo"] == trained["zoo"]
    # Sizes were overridden; interpolation and normalization come from the weights' metadata.
    expected_interpolation = {"torchvision": "bilinear", "timm": "bicubic"}[trained["zoo"]]
    assert metrics["config"]["data"]["interpolation"] == expected_interpolation
    assert metrics["config"]["data"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    model = load_classifier(trained["ckpt"])
    assert model.hparams.preprocessing == {"image_size": 64, "resize_size": 72,
                                           "interpolation": expected_interpolation,
                                           "mean": pytest.approx([0.485, 0.456, 0.406]),
                                           "std": pytest.approx([0.229, 0.224, 0.225])}
    assert (model.hparams.zoo, model.hparams.arch) == (trained["zoo"], trained["arch"])


def test_zoo_checkpoint_evaluates_to_the_training_test_accuracy(trained, tmp_path):
    report = evaluate(compose_app("evaluate", tmp_path / "eval", f"ckpt={trained['ckpt']}", "data=folder",
                                  f"data.root={trained['data']}", "split=test"))
    assert report["images"] == 6
    assert report[TEST_ACC] == pytest.approx(trained["metrics"]["final"][TEST_ACC], abs=1e-6)
    assert report["confusion_matrix"] == trained["metrics"]["final"]["confusion_matrix"]


def test_zoo_checkpoint_predicts_what_the_model_computes(trained, tmp_path):
    photo = write_image(tmp_path / "p.jpg", (200, 40, 40), seed=7, size=(90, 70))
    rows = predict(compose_app("predict", tmp_path / "pred", f"ckpt={trained['ckpt']}", f"inputs=[{photo}]",
                               "top_k=3", "num_workers=0"))
    model = load_classifier(trained["ckpt"])
    with torch.no_grad():
        expected = model(eval_transform(model)(load_rgb(photo))[None]).softmax(1)[0]
    assert [t["class"] for t in rows[0]["top"]] == [model.class_names[i] for i in expected.argsort(descending=True)]
    assert rows[0]["top"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-5)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_zoo_checkpoint_exports_with_parity(trained, fmt, tmp_path):
    model = load_classifier(trained["ckpt"])
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = model(images).numpy()
    output = export(trained["ckpt"], fmt, tmp_path / ("m.onnx" if fmt == "onnx" else "m.pt"))
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        (logits,) = session.run(["logits"], {"images": images.numpy()})
    else:
        with torch.no_grad():
            logits = torch.jit.load(str(output))(images).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    meta = json.loads(sidecar_path(output).read_text())
    assert (meta["zoo"], meta["backbone"]) == (trained["zoo"], trained["arch"])
    assert meta["preprocessing"]["interpolation"] == model.hparams.preprocessing["interpolation"]


# -- weights ---------------------------------------------------------------------------------------
def test_torchvision_arch_loads_imagenet_weights_from_the_torch_home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    weights = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT
    reference = torchvision.models.mobilenet_v3_small(weights=None)
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    backbone = create_backbone("mobilenet_v3_small", "imagenet", zoo="torchvision")
    assert backbone.weights_source == "imagenet (mobilenet_v3_small)" and backbone.feature_dim == 1024
    assert torch.equal(backbone.module.features[0][0].weight, reference.features[0][0].weight)
    # The pre-logits layer (576 -> 1024) keeps its weights; only the last Linear is replaced.
    assert torch.equal(backbone.module.classifier[0].weight, reference.classifier[0].weight)
    assert isinstance(backbone.module.classifier[3], torch.nn.Identity)


def test_timm_arch_loads_imagenet_weights_from_the_hugging_face_cache_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    reference = timm.create_model("resnet18", pretrained=False)
    hf_id = reference.pretrained_cfg["hf_hub_id"]  # timm/resnet18.a1_in1k
    repo = tmp_path / "hub" / f"models--{hf_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    from safetensors.torch import save_file

    save_file(reference.state_dict(), str(snapshot / "model.safetensors"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    backbone = create_backbone("resnet18", "imagenet", zoo="timm")
    assert backbone.weights_source == "imagenet (resnet18)" and backbone.feature_dim == 512
    assert torch.equal(backbone.module.conv1.weight, reference.conv1.weight)
    assert backbone.module.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 512)


def test_timm_offline_without_cache_says_where_the_weights_are_looked_for(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.warns(UserWarning, match=r"no ImageNet weights for resnet18 .*Hugging Face cache .*empty_hub.*"
                                         r"TRAINING FROM RANDOM INIT"):
        backbone = create_backbone("resnet18", "auto", zoo="timm")
    assert backbone.weights_source == "none (auto: ImageNet weights unavailable)"


def test_timm_arch_loads_a_state_dict_file(tmp_path):
    reference = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "timm_resnet18.pth"
    torch.save({k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}, path)  # no head
    backbone = create_backbone("resnet18", str(path), zoo="timm")
    assert backbone.weights_source.startswith(f"file {path}")
    assert torch.equal(backbone.module.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


