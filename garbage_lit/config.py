"""The training config's helpers: the resolvers it uses, and the checks that stop a bad run before it starts.

Hydra itself rejects an unknown group value (and lists the options) and an unknown key; for the
latter :func:`unknown_key_hint` adds the keys that do exist and the closest spelling.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from garbage_lit.errors import ConfigError

SAMPLE_DATA = Path(__file__).parent / "sample_data" / "trashnet_mini"


def _config_dir() -> str:
    """The folder of the Hydra configs: the installed ``garbage_lit.conf``, or ``conf/`` of a source checkout.

    Installs map the repository's ``conf/`` to ``garbage_lit.conf``. ``python -m garbage_lit.train`` run from a
    checkout's root imports the checkout's own ``garbage_lit/`` (the current folder comes first on ``sys.path``),
    which has no ``conf`` beside it: its configs are then the checkout's ``conf/``.
    """
    spec = importlib.util.find_spec("garbage_lit.conf")
    if spec is not None and spec.submodule_search_locations:
        return str(Path(next(iter(spec.submodule_search_locations))).resolve())
    checkout = Path(__file__).resolve().parent.parent / "conf"
    if (checkout / "train.yaml").is_file():
        return str(checkout)
    raise ImportError(f"garbage_lit's configs are missing: neither the package garbage_lit.conf nor {checkout} "
                      f"exists; reinstall with `pip install .` (or `pip install -e .` from a checkout)")


# Every app's ``@hydra.main(config_path=CONFIG_DIR, ...)`` and ``initialize_config_dir(CONFIG_DIR)``.
CONFIG_DIR = _config_dir()


# Keys that were renamed: old -> new. A command line with an old key is refused with its new name.
RENAMED_KEYS = {
    "feature_cache": "cache.features",
    "feature_cache_views": "cache.feature_views",
    "data.feature_cache": "cache.features",
    "data.image_cache": "cache.images",
    "data.scan_cache": "cache.scan",
    "data.cache_dir": "cache.dir",
    "paths.cache_dir": "cache.dir",
    "data.eval_test": "data.test_every_epoch",
    "hparams_search.torch_threads": "threads",
    "model.backbone": "model.arch",
}

# key -> (accepts the value, description of the allowed values)
RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "lr": (lambda v: _number(v) and v > 0, "a number > 0, e.g. lr=0.003"),
    "batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1, e.g. batch_size=32"),
    "epochs": (lambda v: _integer(v) and v >= 1, "an integer >= 1, e.g. epochs=10"),
    "seed": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "optim.lr": (lambda v: _number(v) and v > 0, "a number > 0 (it follows the top-level lr by default)"),
    "optim.weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "optim.momentum": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "data.test_ratio": (lambda v: _number(v) and 0 < v < 1, "a number strictly between 0 and 1, e.g. 0.2"),
    "data.val_ratio": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1); 0 disables validation"),
    "data.image_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1 (pixels)"),
    "data.resize_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1 (pixels)"),
    "data.num_workers": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "cache.features": (lambda v: v in (True, False, "auto"), "true, false or auto"),
    "cache.feature_views": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "data.groups": (lambda v: isinstance(v, (str, DictConfig)),
                    "a YAML (class: bin) or CSV (class,bin) file, a {class: bin} mapping, or null for no bins"),
    "trainer.num_nodes": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "callbacks.mid_epoch_checkpoint.every_n_train_steps": (
        lambda v: _integer(v) and v >= 1, "an integer >= 1 (with callbacks.mid_epoch_checkpoint.train_time_interval="
                                          "null), or callbacks.mid_epoch_checkpoint=null to disable"),
}


def _number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _integer(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` listing every value in ``cfg`` outside its allowed range."""
    problems = []
    for key, (accepts, allowed) in RULES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not accepts(value):
            problems.append(f"{key}={value!r} is not allowed: {key} must be {allowed}")
    if problems:
        raise ConfigError("; ".join(problems))


def unknown_key_hint(overrides: Sequence[str], config_name: str = "train") -> str | None:
    """For the first override naming a key the config lacks: the keys that exist and the closest one.

    Composes the config twice: once to learn its groups, once with the command's group choices (``model=timm``,
    ``experiment=finetune``), which decide the keys there are; every other override's key is looked up in that.
    """
    from hydra import compose, initialize_config_dir

    assignments = [o for o in overrides if "=" in o and not o.startswith(("-", "+", "~", "hydra."))]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        groups = set(compose(config_name=config_name, return_hydra_config=True).hydra.runtime.choices)
        choices = [o for o in assignments if o.split("=", 1)[0] in groups]
        try:
            cfg = compose(config_name=config_name, overrides=choices)
        except Exception:  # noqa: BLE001 - a refused group choice: Hydra's own message lists the options
            return None
    for override in assignments:
        key, _, value = override.partition("=")
        if key in RENAMED_KEYS:
            return (f"'{key}' was renamed: it is now '{RENAMED_KEYS[key]}'. Write {RENAMED_KEYS[key]}={value} "
                    f"instead (docs/configuration_and_sweeps.md lists the keys).")
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if key in groups or not isinstance(node, DictConfig) or leaf in node.keys():  # keys(): ??? values too
            continue
        allowed = sorted(str(k) for k in node.keys())
        close = difflib.get_close_matches(leaf, allowed, n=3)
        return (f"'{key}' is not a config key"
                + (f"; did you mean {' or '.join(repr(f'{parent}.{c}' if parent else c) for c in close)}?"
                   if close else ".")
                + f" Keys under {parent or 'the top level'}: {', '.join(allowed)}."
                + f" (To add a new key on purpose, write +{override}.)")
    return None
