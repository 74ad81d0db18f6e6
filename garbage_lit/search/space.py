"""The search space: Hydra's sweep syntax (``choice``, ``range``, ``interval``, ``tag(log, ...)``) as distributions.

    lr: tag(log, interval(1e-4, 1e-1))      -> FloatDistribution(1e-4, 1e-1, log=True)
    epochs: int(interval(5, 30))            -> IntDistribution(5, 30)
    batch_size: choice(16, 32, 64)          -> CategoricalDistribution((16, 32, 64))
    epochs: range(5, 31, 5)                 -> IntDistribution(5, 30, step=5)

The same strings work in ``hparams_search.params`` and as sweep overrides on the command line
(``model.label_smoothing='interval(0, 0.2)'``); a plain value (``lr=0.01``) fixes the key instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import Trial

from garbage_lit.errors import ConfigError


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override (``key=choice(...)`` etc.)."""
    key, sweep = override.get_key_element(), override.value()
    log = "log" in getattr(sweep, "tags", set())
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(tuple(sweep.list))
    if isinstance(sweep, RangeSweep):
        if sweep.stop <= sweep.start or not all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
            raise ConfigError(f"search space {key}={override.input_line.split('=', 1)[-1]}: range() needs integers "
                              f"start < stop, e.g. {key}='range(5, 31, 5)' (stop excluded)")
        last = sweep.start + (sweep.stop - 1 - sweep.start) // sweep.step * sweep.step
        return IntDistribution(sweep.start, last, log=log, step=sweep.step)
    if isinstance(sweep, IntervalSweep):
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    raise ConfigError(f"search space {key}: {override.input_line!r} is not choice(...), range(...), interval(...) "
                      f"or tag(log, interval(...))")


def parse_space(params: Mapping[str, Any], arguments: list[str],
                prefix: str = "hparams_search.params.") -> tuple[dict[str, BaseDistribution], list[str]]:
    """The search space from ``params`` (key -> sweep string) and the command line; return it and the fixed overrides.

    A command-line sweep override adds (or replaces) a dimension, written as ``key=...`` or
    ``<prefix>key=...``; a plain command-line value for a searched key fixes it. Every other plain
    override is passed to each trial unchanged.
    """
    parser = OverridesParser.create()
    space = {key: distribution(parser.parse_override(f"{key}={value}")) for key, value in params.items()
             if value is not None}
    fixed = []
    for override in parser.parse_overrides(arguments):
        key = override.get_key_element().removeprefix(prefix)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            space.pop(key, None)
            fixed.append(override.input_line)
    return space, fixed



def override_value(value: Any) -> str:
    """A sampled value as Hydra override text (floats in full precision)."""
    return repr(value) if isinstance(value, float) else str(value)


def suggest(trial: Trial, name: str, dist: BaseDistribution) -> Any:
    """Sample ``name`` from ``dist`` through the trial's public ``suggest_*`` API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
