"""Export a trained checkpoint as a standalone ONNX or TorchScript model with a preprocessing sidecar.

    python -m garbage_lit.export ckpt=outputs/<run>/checkpoints/model.ckpt format=onnx

The model maps a float32 batch ``images`` (N, 3, H, W), RGB, already preprocessed, to ``logits``
(N, num_classes); ``softmax(logits / temperature)`` gives probabilities (``temperature`` null: divide by 1).
With flip averaging (the checkpoint's ``model.flip_tta`` or ``flip_tta=true``) or several checkpoints (an
ensemble), the graph itself runs each model on the images and their mirror images and its ``logits`` are the log
of the averaged class probabilities (an ensemble's models each calibrated by their own temperature first).
``<model file>.json`` records the preprocessing (resize, center crop, mean, std), what the graph averages, the
temperature fitted on the validation split, the class names and where the model came from.
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

from garbage_lit.config import CONFIG_DIR
from garbage_lit.errors import ConfigError
from garbage_lit.models.inference import Ensemble, averaged_log_probabilities
from garbage_lit.models.loading import checkpoint_paths, load_for_inference, preprocessing_of
from garbage_lit.models.resolvers import register_resolvers
from garbage_lit.records.atomic import write_json_atomic
from garbage_lit.run.commands import cli as command_line
from garbage_lit.run.commands import one_line_errors
from garbage_lit.run.launch import start_command

log = logging.getLogger(__name__)

register_resolvers()

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
# Adds the extra's packages to the garbage-lit already installed (wheel, clone or editable), from any folder.
ONNX_INSTALL = "pip install 'garbage-lit[export]'"
INPUT_NAME = "images"
OUTPUT_NAME = "logits"


class ImageClassifier(nn.Module):
    """Each model's backbone + head only (no Lightning, no metrics): images in, logits out; with the flip or several
    models, the log of the class probabilities averaged over them (:mod:`garbage_lit.models.inference`)."""

    def __init__(self, model: Ensemble) -> None:
        super().__init__()
        self.networks = nn.ModuleList(nn.Sequential(member.backbone, member.head) for member in model.models)
        self.flip = bool(model.hparams.flip_tta)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if len(self.networks) == 1 and not self.flip:
            return self.networks[0](images)
        return averaged_log_probabilities(list(self.networks), images, self.flip)


def export(ckpt: str | Path | list[str | Path], fmt: str, output: str | Path, opset: int = 17,
           flip_tta: bool | None = None, image_size: int | None = None, resize_size: int | None = None) -> Path:
    """Write the model of ``ckpt`` (or the ensemble of several) to ``output`` in ``fmt`` and its sidecar JSON beside
    it; return the model path. ``flip_tta``, ``image_size``, ``resize_size``: as in
    :func:`~garbage_lit.models.loading.load_for_inference` (None: the checkpoint's)."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx" and importlib.util.find_spec("onnx") is None:
        raise ConfigError(f"format=onnx needs the onnx package: {ONNX_INSTALL} (or format=torchscript)")
    model = load_for_inference(ckpt, flip_tta, image_size, resize_size)
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


def sidecar(model: Ensemble, fmt: str, output: Path, ckpt: str | Path | list[str | Path],
            pre: dict) -> dict[str, Any]:
    """Everything a user of the exported file needs besides the file itself."""
    size = pre["image_size"]
    paths = checkpoint_paths(ckpt)
    averaged = model.hparams.flip_tta or len(paths) > 1
    members = [member.hparams for member in model.models]
    return {
        "format": fmt,
        "model_file": output.name,
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, size, size], "dtype": "float32",
                  "layout": "NCHW, RGB channels"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(model.class_names)],
                   "meaning": ("log of the class probabilities averaged in the graph (see averaged)" if averaged
                               else "unnormalised class scores")
                              + "; softmax(logits / temperature) over dim 1 gives calibrated probabilities "
                                "(temperature null: plain softmax)"},
        "averaged": {"horizontal_flip": bool(model.hparams.flip_tta), "models": len(paths),
                     "where": "inside the graph: give it the preprocessed images only"},
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
        "backbone": members[0].arch if len(members) == 1 else [member.arch for member in members],
        "zoo": members[0].zoo if len(members) == 1 else [member.zoo for member in members],
        "checkpoint": _one_or_list([str(path.resolve()) for path in paths]),
        "checkpoint_sha256": _one_or_list([hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]),
        "torch_version": torch.__version__,
    }


def _one_or_list(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        start_command(cfg)
        output = cfg.output or Path(cfg.paths.output_dir) / f"model{FORMATS.get(cfg.format, '')}"
        print(export(cfg.ckpt, cfg.format, output, cfg.opset, cfg.flip_tta, cfg.image_size, cfg.resize_size))


def cli() -> None:
    """The command line (``garbage-lit-export``, ``python -m garbage_lit.export``)."""
    command_line(main, "export")


if __name__ == "__main__":
    cli()
