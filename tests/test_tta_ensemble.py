"""Test-time flip averaging, test resolution and ensembles: the same numbers in the run's final test, evaluate,
predict and the export."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from garbage_lit.data import GarbageDataModule
from garbage_lit.data.images import load_rgb
from garbage_lit.evaluate import evaluate
from garbage_lit.export import export, sidecar_path
from garbage_lit.models.inference import averaged_log_probabilities
from garbage_lit.models.loading import eval_transform, load_classifier, load_for_inference
from garbage_lit.predict import predict
from garbage_lit.train import train

from helpers import TEST_ACC
from helpers.config import compose_app, compose_fast_cfg
from helpers.data import make_folder_dataset


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Two tiny fine-tuned models of 3 colour classes: ``plain``, and ``tta`` (flip-averaged, tested at 40 px of a
    32 px training crop)."""
    base = tmp_path_factory.mktemp("tta")
    data = make_folder_dataset(base / "data")
    common = ("data=folder", f"data.root={data}", "epochs=2", "lr=0.0003", "model.freeze_backbone=false")
    found = {"data": data}
    for name, extra in (("plain", ()), ("tta", ("model.flip_tta=true", "data.eval_image_size=40"))):
        found[name] = train(compose_fast_cfg(base, *common, *extra, output_dir=base / name))
        found[name]["ckpt"] = base / name / found[name]["checkpoint"]
    return found


def _flip_mean(ckpt: Path, files: list[Path], image_size: int | None = None) -> torch.Tensor:
    """The mean of the class probabilities of the images and of their mirror images, computed by hand."""
    model = load_classifier(ckpt)
    images = torch.stack([eval_transform(load_for_inference(ckpt, image_size=image_size))(load_rgb(f)) for f in files])
    with torch.no_grad():
        return (model(images).softmax(dim=1) + model(images.flip(3)).softmax(dim=1)) / 2


def _predicted(rows: list[dict], class_names: list[str]) -> torch.Tensor:
    """predict's rows (top_k = every class) as a probability matrix in class order."""
    return torch.tensor([[next(t["probability"] for t in row["top"] if t["class"] == name) for name in class_names]
                         for row in rows])


def test_flip_averaging_is_the_mean_of_the_two_passes():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(5))
    images = torch.rand(2, 3, 8, 8)
    expected = (model(images).softmax(dim=1) + model(images.flip(3)).softmax(dim=1)) / 2
    torch.testing.assert_close(averaged_log_probabilities([model], images, flip=True).exp(), expected)
    torch.testing.assert_close(averaged_log_probabilities([model], images).exp(), model(images).softmax(dim=1))
    assert not torch.allclose(expected, model(images).softmax(dim=1))  # the mirror image does change the answer


def test_a_flip_averaged_run_at_a_larger_test_size_reports_what_evaluate_predict_and_the_export_give(runs, tmp_path):
    run, data = runs["tta"], runs["data"]
    model = load_classifier(run["ckpt"])
    assert model.hparams.flip_tta and model.hparams.preprocessing["image_size"] == 40
    assert model.hparams.preprocessing["resize_size"] == 45  # the training margin, 36/32, kept at 40 px
    with (run["ckpt"].parents[1] / "test_predictions.csv").open() as handle:
        tested = {row["file"]: float(row["probability"]) for row in csv.DictReader(handle)}
    files = [data / f for f in tested]
    expected = _flip_mean(run["ckpt"], files)
    np.testing.assert_allclose(list(tested.values()), expected.max(dim=1).values.numpy(), atol=2e-6)

    report = evaluate(compose_app("evaluate", tmp_path / "eval", f"ckpt={run['ckpt']}", "data=folder",
                                  f"data.root={data}", "split=test"))
    assert report[TEST_ACC] == pytest.approx(run[TEST_ACC], abs=1e-6)
    assert report["inference"]["flip_tta"] and report["inference"]["image_size"] == 40
    rows = predict(compose_app("predict", tmp_path / "pred", f"ckpt={run['ckpt']}",
                               f"inputs=[{','.join(map(str, files))}]", "top_k=3", "num_workers=0"))
    torch.testing.assert_close(_predicted(rows, model.class_names), expected, rtol=0, atol=2e-6)

    import onnxruntime

    onnx_file = export(run["ckpt"], "onnx", tmp_path / "m.onnx")
    meta = json.loads(sidecar_path(onnx_file).read_text())
    assert meta["averaged"]["horizontal_flip"] and meta["input"]["shape"] == ["batch", 3, 40, 40]
    assert meta["preprocessing"]["resize_size"] == 45
    images = torch.stack([eval_transform(model)(load_rgb(f)) for f in files])
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (scores,) = session.run(["logits"], {"images": images.numpy()})
    torch.testing.assert_close(torch.from_numpy(scores).softmax(dim=1), expected, rtol=0, atol=1e-5)


def test_evaluate_and_predict_take_another_flip_and_test_size_than_the_checkpoints(runs, tmp_path):
    run, data = runs["plain"], runs["data"]
    files = sorted((data / "glass").glob("*.jpg"))[:3]
    inputs = f"inputs=[{','.join(map(str, files))}]"
    rows = predict(compose_app("predict", tmp_path / "pred", f"ckpt={run['ckpt']}", inputs, "top_k=3",
                               "num_workers=0", "flip_tta=true", "image_size=48"))
    expected = _flip_mean(run["ckpt"], files, image_size=48)
    torch.testing.assert_close(_predicted(rows, load_classifier(run["ckpt"]).class_names), expected, rtol=0, atol=2e-6)
    report = evaluate(compose_app("evaluate", tmp_path / "eval", f"ckpt={run['ckpt']}", "data=folder",
                                  f"data.root={data}", "split=test", "image_size=48", "resize_size=50"))
    assert report["inference"] == {**report["inference"], "image_size": 48, "resize_size": 50, "flip_tta": False}


def test_an_ensemble_of_a_checkpoint_with_itself_is_the_checkpoint(runs, tmp_path):
    run, data = runs["tta"], runs["data"]
    args = ("data=folder", f"data.root={data}", "split=all")
    alone = evaluate(compose_app("evaluate", tmp_path / "one", f"ckpt={run['ckpt']}", *args))
    twice = evaluate(compose_app("evaluate", tmp_path / "two", f"ckpt=[{run['ckpt']},{run['ckpt']}]", *args))
    assert twice["all/acc"] == alone["all/acc"] and twice["confusion_matrix"] == alone["confusion_matrix"]
    assert twice["checkpoint"] == [str(run["ckpt"])] * 2
    files = sorted(data.rglob("*.jpg"))
    one, two = (predict(compose_app("predict", tmp_path / f"p{n}", f"ckpt=[{','.join([str(run['ckpt'])] * n)}]",
                                    f"inputs=[{data}]", "top_k=3", "num_workers=0")) for n in (1, 2))
    names = load_classifier(run["ckpt"]).class_names
    assert [Path(row["file"]) for row in one] == files
    torch.testing.assert_close(_predicted(two, names), _predicted(one, names), rtol=0, atol=1e-6)


def test_an_ensemble_averages_its_models_probabilities_and_refuses_models_used_differently(runs, tmp_path):
    plain, tta, data = runs["plain"]["ckpt"], runs["tta"]["ckpt"], runs["data"]
    with pytest.raises(ValueError, match=r"ckpt=.*tta.* cannot be averaged with ckpt=.*plain.*: image_size 32 there, "
                                         r"40 here; resize_size 36 there, 45 here; flip_tta False there, True here"):
        load_for_inference([plain, tta])
    files = sorted((data / "paper").glob("*.jpg"))[:4]
    inputs = f"inputs=[{','.join(map(str, files))}]"
    rows = predict(compose_app("predict", tmp_path / "pred", f"ckpt=[{plain},{tta}]", inputs, "top_k=3",
                               "num_workers=0", "flip_tta=true", "image_size=40"))
    expected = (_flip_mean(plain, files, image_size=40) + _flip_mean(tta, files, image_size=40)) / 2
    torch.testing.assert_close(_predicted(rows, load_classifier(plain).class_names), expected, rtol=0, atol=2e-6)


def test_flip_averaging_with_the_feature_cache_is_refused_and_off_by_default(make_cfg, folder_dataset, tmp_path,
                                                                             caplog):
    common = ("data=folder", f"data.root={folder_dataset}", "model.flip_tta=true")
    with pytest.raises(ValueError, match=r"cache.features=true cannot be used here: model\.flip_tta averages"):
        train(make_cfg(*common, "cache.features=true", output_dir=tmp_path / "cached"))
    caplog.set_level(logging.INFO, logger="garbage_lit.features.datamodule")
    train(make_cfg(*common, output_dir=tmp_path / "run"))
    assert "feature cache off (cache.features=auto is off: model.flip_tta averages each evaluated image" in caplog.text


def test_a_larger_test_size_crops_the_evaluated_splits_only_and_keys_the_caches_so(folder_dataset):
    datamodule = GarbageDataModule(folder_dataset, image_size=32, resize_size=36, eval_image_size=40, batch_size=4,
                                   rotation_degrees=0)
    datamodule.setup("fit")
    # The training split keeps the training crop even unaugmented (as the feature cache asks for it), the others not.
    assert datamodule.dataset("train", train=False)[0][0].shape == (3, 32, 32)
    assert datamodule.dataset("test", train=False)[0][0].shape == (3, 40, 40)
    assert datamodule.transform_settings("train", train=False)["image_size"] == 32
    assert datamodule.transform_settings("test", train=False)["resize_size"] == 45
    assert datamodule.preprocessing()["image_size"] == 40  # what the saved model is used at
