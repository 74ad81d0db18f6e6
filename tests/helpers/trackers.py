"""The experiment trackers as a person reads them back: the MLflow tracking server started by
scripts/mlflow_local_server.sh, and the W&B runs a job left offline (read from their `.wandb` files)."""

from __future__ import annotations

import json
import os
import struct
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.system import missing

REQUIRE_MLFLOW = "GARBAGE_LIT_REQUIRE_MLFLOW"
MLFLOW_URI = os.environ.get("GARBAGE_LIT_MLFLOW_URI", "http://127.0.0.1:5000")


def mlflow_server() -> str:
    """The URL of the running MLflow tracking server; skip without one, unless GARBAGE_LIT_REQUIRE_MLFLOW=1 (CI)."""
    try:
        with urllib.request.urlopen(f"{MLFLOW_URI}/health", timeout=5) as response:
            if response.status == 200:
                return MLFLOW_URI
    except OSError:
        pass
    missing(f"no MLflow tracking server answers at {MLFLOW_URI} (start one: scripts/mlflow_local_server.sh start)",
            REQUIRE_MLFLOW)


@dataclass
class OfflineRun:
    """What a W&B offline run recorded: as `wandb sync` would upload it."""

    name: str = ""
    group: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per wandb.log call
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # type, name, metadata, files
    exit_code: int | None = None  # None: the run was never finished

    def values(self, key: str) -> list[Any]:
        """The logged values of ``key``, in order."""
        return [row[key] for row in self.history if key in row]


def wandb_offline_runs(folder: Path) -> list[OfflineRun]:
    """Every W&B offline run under ``folder`` (``.../wandb/offline-run-*/run-*.wandb``), oldest first."""
    return [_read_run(path) for path in sorted(folder.glob("**/wandb/offline-run-*/run-*.wandb"))]


def _read_run(path: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2

    run = OfflineRun()
    for raw in _log_records(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group = record.run.display_name, record.run.run_group
            run.config.update(_items(record.run.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "artifact":
            run.artifacts.append({"type": record.artifact.type, "name": record.artifact.name,
                                  "metadata": json.loads(record.artifact.metadata or "{}"),
                                  "files": [entry.path for entry in record.artifact.manifest.contents]})
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def _items(items) -> dict[str, Any]:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def _log_records(data: bytes):
    """The records of a W&B transaction log: a 7-byte W&B header, then LevelDB's log format (32 KiB blocks of
    records with a 7-byte header: checksum, length, type full/first/middle/last; a block's tail under 7 bytes is
    padding)."""
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1), f"not a W&B transaction log: {data[:7]!r}"
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:  # zero fill: the end of what was written
            return
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
