"""Every command line the README and docs show: each composes as written (its keys and choices exist), and the
commands that use a model (evaluate, predict, export), audit the data and read a sweep (report) run as written on a
tiny folder in place of the user's path, with no key added."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from garbage_lit.config import CONFIG_DIR

from helpers.data import CLASS_COLOURS, REPO, write_image

TRASHNET_CLASSES = ("cardboard", "glass", "metal", "paper", "plastic", "trash")

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CONFIGS = {"train": "train", "evaluate": "evaluate", "predict": "predict", "export": "export", "audit": "audit"}


def documented_commands() -> list[tuple[str, str]]:
    """(page, command line) for every ``python -m garbage_lit.<command>`` in a bash block, continuations joined."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split(" # ")[0].split("python -m ", 1)
                if len(command) == 2 and command[1].startswith("garbage_lit."):
                    found.append((page.name, " ".join(("python -m " + command[1]).split())))
    return found


def placeholders(tiny: Path, ckpt: Path, sweep: Path) -> dict[str, str]:
    """What stands in for a user's paths and the docs' elisions: a tiny folder, a trained model, a finished sweep."""
    return {"outputs/<run>/checkpoints/model.ckpt": str(ckpt), "<run>/checkpoints/model.ckpt": str(ckpt),
            "runA/checkpoints/model.ckpt": str(ckpt), "runB/checkpoints/model.ckpt": str(ckpt),
            "runs/abl/base/checkpoints/model.ckpt": str(ckpt),
            "runs/abl/base/split_manifest.csv": str(ckpt.parent.parent / "split_manifest.csv"),
            "<run>/split_manifest.csv": str(ckpt.parent.parent / "split_manifest.csv"),
            "multirun/<date>/<time>": str(sweep), "multirun/design-card": str(sweep),
            "multirun/search/search": str(sweep), "multirun/cv": str(sweep), "multirun/ablation-folds": str(sweep),
            "SWEEP_DIR": str(sweep), "<audit folder>/exclude.txt": str(tiny / "exclude.txt"),
            "../shared/data/trashnet": str(tiny), "/path/to/trashnet": str(tiny), "/data/trashnet": str(tiny),
            "/shared/data/trashnet": str(tiny), "data.root=...": f"data.root={tiny}", "ckpt=...": f"ckpt={ckpt}",
            "inputs=[photos/]": f"inputs=[{tiny / 'glass'}]", "inputs=[photo.jpg,/photos]": f"inputs=[{tiny}]",
            "inputs=[photo.jpg]": f"inputs=[{tiny / 'glass' / 'glass0.jpg'}]", " /photos": f" {tiny / 'glass'}",
            " ... ": " ", " $args": "",
            "$BASE ": "", "$COMMON ": ""}


def substituted(command: str, values: dict[str, str]) -> str:
    for placeholder, value in sorted(values.items(), key=lambda item: -len(item[0])):
        command = command.replace(placeholder, value)
    return command


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    """A multirun's overrides as its first job has them (``optim=sgd,adam`` -> ``optim=sgd``)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [f"{o.get_key_element()}={next(o.sweep_string_iterator())}" if o.is_sweep_override()
            else o.input_line for o in parsed]


@pytest.mark.parametrize(("page", "command"), [(page, command) for page, command in documented_commands()
                                               if not command.startswith("python -m garbage_lit.report")])
def test_every_documented_command_composes_as_written(page, command, tmp_path):
    args = shlex.split(substituted(command, placeholders(tmp_path, tmp_path / "model.ckpt", tmp_path)))
    app = args[2].removeprefix("garbage_lit.")
    overrides = [a for a in args[3:] if a not in ("-m", "--cfg", "job", "--") and not a.startswith("/")]
    overrides = first_of_each_sweep([o for o in overrides if "=" in o or o.startswith("~")])
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=CONFIGS[app], overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.job.name and (app != "train" or cfg.model.arch)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny folder data set, a model trained on it and a finished 2-job sweep: what the commands run on."""
    base = tmp_path_factory.mktemp("documented")
    data = base / "data"  # TrashNet's classes (the docs' +data/groups=trashnet maps them), 5 photos each
    for label, name in enumerate(TRASHNET_CLASSES):
        for i in range(5):
            write_image(data / name / f"{name}{i}.jpg", CLASS_COLOURS[label % len(CLASS_COLOURS)], seed=10 * label + i)
    (data / "exclude.txt").write_text("glass/glass0.jpg\n")
    env = {**os.environ, "GARBAGE_LIT_CACHE_DIR": str(base / "cache")}
    sweep = base / "sweep"
    done = subprocess.run([sys.executable, "-m", "garbage_lit.train", "-m", "debug=fast", "data=folder",
                           f"data.root={data}", "data.val_ratio=0.2", "optim=sgd,adam", f"hydra.sweep.dir={sweep}"],
                          cwd=base, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return data, sweep / "0" / "checkpoints" / "model.ckpt", sweep, env


def distinct_runs() -> list[tuple[str, str]]:
    """The documented evaluate, predict, export, audit and report commands, each once as it runs here (pages show
    ``report multirun/<date>/<time>`` and ``report SWEEP_DIR``: the same command on the same sweep)."""
    stand_ins = placeholders(Path("DATA"), Path("CKPT"), Path("SWEEP"))
    runs = {substituted(command, stand_ins): (page, command) for page, command in documented_commands()
            if re.match(r"python -m garbage_lit\.(evaluate|predict|export|audit|report)\b", command)}
    return list(dict.fromkeys(runs.values()))


@pytest.mark.slow
@pytest.mark.parametrize(("page", "command"), distinct_runs())
def test_every_documented_evaluate_predict_export_audit_and_report_runs_as_written(page, command, tiny, tmp_path):
    data, ckpt, sweep, env = tiny
    photo = data / "glass" / "glass1.jpg"  # the docs' photos with odd names, where they name them (cwd-relative)
    (tmp_path / "papier & karton").mkdir()
    (tmp_path / "papier & karton" / "foto 1.jpg").write_bytes(photo.read_bytes())
    (tmp_path / "photos.txt").write_text(f"{photo}\n")
    args = shlex.split(substituted(command, placeholders(data, ckpt, sweep)))
    done = subprocess.run([sys.executable, *args[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, (command, done.stderr[-3000:])
