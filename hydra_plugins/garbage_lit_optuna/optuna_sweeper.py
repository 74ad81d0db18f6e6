"""The Hydra glue of garbage-lit's Optuna search; the search itself is :mod:`garbage_lit.search.study`.

Hydra finds sweepers in the ``hydra_plugins`` namespace package; importing this module registers
``hydra/sweeper=garbage_lit_optuna``. Optuna is imported only when a search runs. (No ``from __future__
import annotations`` here: Hydra executes plugin modules outside ``sys.modules``, where dataclasses
cannot resolve string annotations.)
"""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class GarbageLitOptunaSweeperConf:
    """The sweeper's own config: which top-level key of the task config holds the search settings."""

    _target_: str = "hydra_plugins.garbage_lit_optuna.optuna_sweeper.GarbageLitOptunaSweeper"
    settings_key: str = "hparams_search"


ConfigStore.instance().store(group="hydra/sweeper", name="garbage_lit_optuna", node=GarbageLitOptunaSweeperConf,
                             provider="garbage_lit")


class GarbageLitOptunaSweeper(Sweeper):
    """Runs an Optuna study whose trials are Hydra jobs (see :class:`garbage_lit.search.study.Search`)."""

    def __init__(self, settings_key: str = "hparams_search") -> None:
        self.settings_key = settings_key
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep the context and build the configured launcher (basic: in-process trials)."""
        self.config, self.hydra_context = config, hydra_context
        HydraConfig.instance().set_config(config)  # ${hydra:sweep.dir} in hparams_search.storage resolves here too
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        """Run (or continue) the study; return it."""
        from garbage_lit.search.study import Search

        return Search(self.config, self.launcher, self.hydra_context.config_loader, arguments,
                      self.settings_key).run()
