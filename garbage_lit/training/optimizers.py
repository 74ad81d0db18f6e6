"""The optimizer, built from the model it trains (as timm's ``create_optimizer_v2`` and torchvision's
``set_weight_decay`` are): its parameters in groups, so a recipe can treat them apart.

* Norm parameters (BatchNorm, LayerNorm, GroupNorm) and biases get no weight decay unless ``norm_bias_decay``: decaying
  them pulls a normalisation towards zero and does not regularise (torchvision's and timm's recipes exempt them).
* ``layer_decay`` (e.g. 0.75): per-stage learning rates, each stage of the backbone at that factor of the stage above it
  (the head at the full rate), so the early, general features move least when the backbone is fine-tuned.

``optim`` configs name the algorithm and its settings (``optim.lr``, ``optim.weight_decay``, ``optim.momentum``); the
fine-tuning callback adds the backbone's groups through the same factory when it unfreezes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from hydra.utils import get_class
from torch import nn

NAME = "name"  # a param group's name ("head", "backbone/stage3/no_decay"): what Lightning's lr monitor logs it as
LR_SCALE = "lr_scale"  # a param group's share of its part's learning rate (per-stage rates)
NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def no_decay_names(module: nn.Module) -> set[str]:
    """Names of ``module``'s norm parameters and biases: the parameters weight decay leaves alone."""
    names = set()
    for prefix, child in module.named_modules():
        for name, _ in child.named_parameters(recurse=False):
            if isinstance(child, NORMS) or name == "bias":
                names.add(f"{prefix}.{name}" if prefix else name)
    return names


class OptimizerFactory:
    """Builds ``algorithm`` (e.g. ``torch.optim.AdamW``) over a model's parameter groups: what ``optim`` configs hold.

    ``lr``, ``weight_decay`` and every other option (``momentum``, ``betas``, ...) go to the algorithm.
    """

    def __init__(self, algorithm: str, lr: float, weight_decay: float = 0.0, norm_bias_decay: bool = False,
                 layer_decay: float | None = None, **options: Any) -> None:
        self.algorithm = get_class(algorithm)
        self.name = self.algorithm.__name__
        self.lr, self.weight_decay, self.options = lr, weight_decay, options
        self.norm_bias_decay, self.layer_decay = norm_bias_decay, layer_decay

    def __call__(self, parts: Sequence[tuple[str, nn.Module, Sequence[nn.Module] | None]]) -> torch.optim.Optimizer:
        """The optimizer over the trainable parameters of ``parts``: (name, module, its stages or None)."""
        groups = [group for name, module, stages in parts for group in self.param_groups(module, name, self.lr,
                                                                                          stages)]
        if not groups:
            raise ValueError("no trainable parameter to optimize (is everything frozen?)")
        return self.algorithm(groups, lr=self.lr, weight_decay=self.weight_decay, **self.options)

    def param_groups(self, module: nn.Module, name: str, lr: float,
                     stages: Sequence[nn.Module] | None = None) -> list[dict[str, Any]]:
        """``module``'s trainable parameters as groups at ``lr``, named for the learning-rate monitor: decayed
        (``name``) and not (``name/no_decay``: norms, biases), and with ``layer_decay`` and ``stages`` (the module's
        stages, input first) one such pair per stage (``name/stage3``), each at ``lr * layer_decay ** (stages above
        it)``."""
        skip = set() if self.norm_bias_decay else no_decay_names(module)
        stage_of = {id(param): index for index, stage in enumerate(stages or []) for param in stage.parameters()} \
            if self.layer_decay else {}
        groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
        for param_name, param in module.named_parameters():
            if param.requires_grad:
                groups.setdefault((stage_of.get(id(param), -1), param_name not in skip), []).append(param)
        built = []
        for (stage, decays), params in sorted(groups.items(), key=lambda item: (-item[0][0], not item[0][1])):
            scale = self.layer_decay ** (len(stages) - 1 - stage) if stage >= 0 else 1.0
            built.append({"params": params, "lr": lr * scale, LR_SCALE: scale,
                          "weight_decay": self.weight_decay if decays else 0.0,
                          NAME: name + (f"/stage{stage}" if stage >= 0 else "") + ("" if decays else "/no_decay")})
        return built
