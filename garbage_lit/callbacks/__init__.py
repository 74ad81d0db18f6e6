"""Every Lightning callback of a run, each selected by config (``conf/callbacks/``) or added by ``garbage_lit.train``:
the checkpoint policy, ``metrics.json``, the final test's predictions and pictures, fine-tuning, EMA of the weights,
channels-last, SLURM requeue and a search's pruning."""
