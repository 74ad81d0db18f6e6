"""Keep every DDP process of a Hydra job in that job's folder."""

from __future__ import annotations

from pathlib import Path

from omegaconf import read_write


def share_output_dir_with_ddp_ranks(output_dir: str | Path) -> None:
    """Make Lightning relaunch DDP ranks 1.. with ``hydra.run.dir=<output_dir>``.

    Lightning's launcher passes ``HydraConfig.get().run.dir`` to the processes it starts: the
    launch's own folder. A resumed run continues in an earlier folder, and the other ranks must
    write (and find checkpoints) there too. No effect outside Hydra.
    """
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    run = HydraConfig.get().run
    with read_write(run):
        run.dir = str(Path(output_dir).resolve())
