"""Find where an interrupted run stopped, so ``resume=true`` continues it in its own folder.

Hydra gives every launch a new time-stamped folder. With ``resume=true`` the run looks for the
folder of an earlier launch of the same command instead:

* the current folder itself, when it already holds ``metrics.json`` (a fixed ``hydra.run.dir``,
  or a multirun with a fixed ``hydra.sweep.dir``, where each job gets the same folder again);
* otherwise, for a single run (not a multirun job), the newest other folder made from the same
  ``hydra.run.dir`` pattern (``outputs/${now:...}/${now:...}`` -> ``outputs/*/*``) whose
  ``.hydra/overrides.yaml`` equals this launch's, ignoring ``resume`` and ``ckpt_path``.

``ckpt_path`` names the run (a run folder, or a ``.ckpt`` inside its ``checkpoints/``) directly.
The run continues from its newest checkpoint; a completed run is not trained again (unless
``epochs`` now asks for more than it ran).
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities import rank_zero_only

from garbage_lit.errors import ConfigError
from garbage_lit.records.folder import (
    CHECKPOINT_DIR,
    COMPLETED,
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    POINTER_FILE,
    read_metrics,
    run_status,
    start_attempt,
)

log = logging.getLogger(__name__)

RESUME_KEYS = ("resume", "ckpt_path")


@dataclass(frozen=True)
class ResumePoint:
    """The run folder to continue in and the checkpoint to continue from (None: from scratch)."""

    run_dir: Path
    ckpt_path: Path | None
    status: str | None

    def finished(self, epochs: int) -> bool:
        """True when the run completed at least ``epochs`` epochs (so there is nothing to continue)."""
        if self.status != COMPLETED:
            return False
        return len((read_metrics(self.run_dir) or {}).get("epochs", [])) >= epochs


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The furthest-trained training checkpoint (end-of-epoch or mid-epoch; not the final model), if any.

    Ordered by the training step a checkpoint holds, then by when it was written (a copy made with ``cp -r``
    gives its files the time of the copy); on a tie prefer last.ckpt: written after epochNN.ckpt, same state.
    """
    checkpoints = [p for p in (Path(run_dir) / CHECKPOINT_DIR).glob("*.ckpt") if p.is_file() and p.name != MODEL_FILE]
    return max(checkpoints, key=lambda p: (_global_step(p), p.stat().st_mtime_ns, p.name.startswith("last")),
               default=None)


def _global_step(checkpoint: Path) -> int:
    """The optimizer steps ``checkpoint`` was saved after; -1 when it cannot be read."""
    import torch

    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get("global_step", -1))
    except Exception:  # noqa: BLE001 - any unreadable file ranks last, as the oldest
        return -1


def from_ckpt_path(ckpt_path: str | Path) -> ResumePoint:
    """The resume point named by ``ckpt_path``: a run folder or a checkpoint file."""
    path = Path(ckpt_path).expanduser().absolute()  # not resolve(): last.ckpt may link to the epoch it keeps
    if path.is_dir():
        checkpoint = newest_checkpoint(path)
        if checkpoint is None:
            raise ConfigError(f"ckpt_path={path} holds no checkpoints/*.ckpt; point it at a run folder that "
                              f"saved a checkpoint, or at a .ckpt file")
        return ResumePoint(path, checkpoint, run_status(path))
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
        return ResumePoint(run_dir, path, run_status(run_dir))
    raise ConfigError(f"ckpt_path={path} does not exist; point it at a run folder or a .ckpt file")


def find_previous_run(output_dir: Path, overrides: list[str] | None, siblings: Iterable[Path] = ()) -> Path | None:
    """The folder of the earlier launch of this command (see the module docstring), if any."""
    output_dir = Path(output_dir).resolve()
    if (output_dir / METRICS_FILE).is_file():
        return output_dir
    if overrides is None:
        return None
    wanted = comparable_overrides(overrides)
    matches = [folder.resolve() for folder in siblings
               if folder != output_dir and (folder / METRICS_FILE).is_file()
               and comparable_overrides(_read_overrides(folder)) == wanted]
    return max(matches, key=lambda p: (p / METRICS_FILE).stat().st_mtime_ns, default=None)


def comparable_overrides(overrides: list[str] | None) -> list[str] | None:
    """Overrides without the resume switches, in a stable order."""
    if overrides is None:
        return None
    return sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in RESUME_KEYS)


def _read_overrides(folder: Path) -> list[str] | None:
    try:
        overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return [str(o) for o in overrides] if isinstance(overrides, list) else None


def run_dir_siblings(run_dir_pattern: str, cwd: str | Path = ".") -> list[Path]:
    """Folders that ``run_dir_pattern`` (unresolved, e.g. ``outputs/${now:%Y-%m-%d}/${now:%H}``) could have made.

    Every path part holding an interpolation becomes ``*``; a pattern without one names a single
    folder, so it has no siblings.
    """
    parts = Path(run_dir_pattern).parts
    first = next((i for i, part in enumerate(parts) if "${" in part), None)
    if first is None:
        return []
    root = Path(cwd) / Path(*parts[:first]) if first else Path(cwd)
    return [p for p in root.glob("/".join("*" for _ in parts[first:])) if p.is_dir()]


def _launch_siblings() -> list[Path]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    hydra_cfg = HydraConfig.get()
    pattern = OmegaConf.to_container(hydra_cfg.run, resolve=False)["dir"]
    return run_dir_siblings(str(pattern), hydra_cfg.runtime.cwd)


def launch_overrides() -> list[str] | None:
    """This launch's (or multirun job's) command-line overrides; None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None


def resume_command(run_dir: str | Path, argv: list[str] | None = None) -> str | None:
    """The shell command that continues the run in ``run_dir`` begun by this launch; None outside Hydra.

    A single run: the launch's command line (``argv``, default ``sys.argv[1:]``) plus ``resume=true``. A
    multirun job, or a launch that continued a run elsewhere: the job's own overrides plus
    ``ckpt_path=<run_dir>``, which names the folder. Either starts with ``cd`` to the launch's folder, where
    relative paths (``data.root=data``, ``outputs/``) resolve.
    """
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    run_dir = Path(run_dir).resolve()
    if _is_multirun_job() or run_dir != Path(hydra_cfg.runtime.output_dir).resolve():
        args, switch = list(hydra_cfg.overrides.task), f"ckpt_path={run_dir}"
    else:
        args, switch = list(sys.argv[1:] if argv is None else argv), "resume=true"
    args = [a for a in args if a.split("=", 1)[0].lstrip("+~") not in RESUME_KEYS]
    return f"cd {shlex.quote(hydra_cfg.runtime.cwd)} && python -m garbage_lit.train {shlex.join([*args, switch])}"


def _is_multirun_job() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _check_same_command(run_dir: Path, overrides: list[str] | None) -> None:
    """A fixed folder reused by another command (e.g. sweep arguments reordered) must not be continued."""
    try:
        recorded = (read_metrics(run_dir) or {}).get("overrides")
    except ValueError:
        return
    if recorded is not None and overrides is not None \
            and comparable_overrides(recorded) != comparable_overrides(overrides):
        raise ConfigError(f"resume=true: {run_dir} holds a run of {comparable_overrides(recorded)}, not of this "
                          f"command's {comparable_overrides(overrides)}; give the same arguments in the same "
                          f"order (a sweep's job N is its N-th combination), or start without resume=true")


def resume_point(cfg: DictConfig) -> ResumePoint | None:
    """Where this launch continues (``ckpt_path`` or ``resume=true``); None for a fresh run."""
    if cfg.get("ckpt_path"):
        return from_ckpt_path(cfg.ckpt_path)
    if not cfg.get("resume"):
        return None
    output_dir = Path(cfg.paths.output_dir)
    overrides = launch_overrides()
    previous = find_previous_run(output_dir, None if _is_multirun_job() else overrides, _launch_siblings())
    if previous is None:
        log.warning("resume=true: no earlier launch of this command found beside %s; starting afresh", output_dir)
        return None
    _check_same_command(previous, overrides)
    return ResumePoint(previous, newest_checkpoint(previous), run_status(previous))


def leave_pointer(launch_dir: str | Path, run_dir: Path) -> None:
    """Write ``resumed_in.txt`` naming ``run_dir`` into this launch's own folder (when they differ)."""
    launch_dir = Path(launch_dir).resolve()
    if launch_dir != run_dir.resolve():
        launch_dir.mkdir(parents=True, exist_ok=True)
        (launch_dir / POINTER_FILE).write_text(f"{run_dir.resolve()}\n")


def continue_in(cfg: DictConfig, point: ResumePoint) -> None:
    """Point ``cfg`` (output folder, split) at the resumed run and start its new attempt there
    (:func:`~garbage_lit.records.folder.start_attempt`); leave a note in the launch's own folder."""
    run_dir = point.run_dir.resolve()
    leave_pointer(cfg.paths.output_dir, run_dir)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        manifest = run_dir / MANIFEST_FILE
        if not cfg.data.get("split_manifest") and manifest.is_file():
            cfg.data.split_manifest = str(manifest)  # the same split even if files changed since
    for stale in (run_dir / CHECKPOINT_DIR).glob(".*.tmp"):
        stale.unlink(missing_ok=True)  # left by a kill during a save; never a checkpoint
    if rank_zero_only.rank == 0:  # DDP's other ranks start this launch again, continuing the same attempt
        start_attempt(run_dir)
    log.info("resuming %s from %s", run_dir, point.ckpt_path or "the start (no checkpoint yet)")
