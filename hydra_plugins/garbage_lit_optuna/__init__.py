"""Hydra sweeper plugin: ``hydra/sweeper=garbage_lit_optuna`` (selected by ``hparams_search=optuna``)."""
