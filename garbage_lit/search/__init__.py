"""Hyperparameter search with Optuna: the search space, the pruning callback and what a search leaves behind."""
