"""Hydra launcher plugin: ``hydra/launcher=slurm`` (conf/hydra/launcher/slurm.yaml names its class)."""
