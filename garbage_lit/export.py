"""Export a trained checkpoint as a standalone ONNX or TorchScript model with a preprocessing sidecar.

    python -m garbage_lit.export ckpt=outputs/<run>/checkpoints/last.ckpt format=onnx

The model maps a float32 batch ``images`` (N, 3, H, W), RGB, already preprocessed, to ``logits``
(N, num_classes); ``softmax(logits / temperature)`` gives probabilities. ``<model file>.json`` records the
preprocessing (resize, center crop, mean, std), the class names, the temperature fitted on the validation split
(``null``: none was, divide by 1) and where the model came from.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch import nn

from garbage_lit.checkpoints import load_classifier, preprocessing_of
from garbage_lit.config import CONFIG_DIR, register_resolvers
from garbage_lit.models.classifier import GarbageClassifier
from garbage_lit.run.folder import write_json_atomic

log = logging.getLogger(__name__)

register_resolvers()

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
# Adds the extra's packages to the garbage-lit already installed (wheel, clone or editable), from any folder.
ONNX_INSTALL = "pip install 'garbage-lit[export]'"
INPUT_NAME = "images"
OUTPUT_NAME = "logits"


class ImageClassifier(nn.Module):
    """Backbone + head only: images in, logits out (no Lightning, no metrics)."""

    def __init__(self, model: GarbageClassifier) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def export(ckpt: str | Path, fmt: str, output: str | Path, opset: int = 17) -> Path:
    """Write the model of ``ckpt`` to ``output`` in ``fmt`` and its sidecar JSON beside it; return the model path."""
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx" and importlib.util.find_spec("onnx") is None:
        raise ImportError(f"format=onnx needs the onnx package: {ONNX_INSTALL} (or format=torchscript)")
    model = load_classifier(ckpt)
    pre = preprocessing_of(model)
    network = ImageClassifier(model).eval()
    example = torch.zeros(2, 3, pre["image_size"], pre["image_size"])
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if fmt == "onnx":
            # The TorchScript-based exporter: no onnxscript dependency, dynamic batch size.
            torch.onnx.export(network, (example,), str(output), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        else:
            # The parity test compares outputs, so the tracer's own re-run check is skipped.
            torch.jit.trace(network, example, check_trace=False).save(str(output))
    write_json_atomic(sidecar_path(output), sidecar(model, fmt, output, ckpt, pre))
    log.info("exported %s to %s (preprocessing in %s)", ckpt, output, sidecar_path(output))
    return output


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".json")


def sidecar(model: GarbageClassifier, fmt: str, output: Path, ckpt: str | Path, pre: dict) -> dict[str, Any]:
    """Everything a user of the exported file needs besides the file itself."""
    size = pre["image_size"]
    return {
        "format": fmt,
        "model_file": output.name,
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, size, size], "dtype": "float32",
                  "layout": "NCHW, RGB channels"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(model.class_names)],
                   "meaning": "unnormalised class scores; softmax(logits / temperature) over dim 1 gives calibrated "
                              "probabilities (temperature null: plain softmax)"},
        "temperature": model.temperature,
        "preprocessing": {
            **pre,
            "steps": ["decode to 8-bit RGB (apply EXIF orientation; composite transparency on white)",
                      f"resize so the shorter side is {pre['resize_size']} px ({pre['interpolation']}, antialiased)",
                      f"center crop {size} x {size}",
                      "scale pixel values to [0, 1] (divide by 255)",
                      "normalize each channel: (x - mean) / std"],
        },
        "class_names": model.class_names,
        "backbone": model.hparams.arch,
        "zoo": model.hparams.zoo,
        "checkpoint": str(Path(ckpt).resolve()),
        "checkpoint_sha256": hashlib.sha256(Path(ckpt).read_bytes()).hexdigest(),
        "torch_version": torch.__version__,
    }


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    output = cfg.output or Path(cfg.paths.output_dir) / f"model{FORMATS.get(cfg.format, '')}"
    print(export(cfg.ckpt, cfg.format, output, cfg.opset))


if __name__ == "__main__":
    main()
