"""The study's storage (``hparams_search.storage``): a database URL, or ``journal:<file>`` for Optuna's journal file.

A database URL (``sqlite:///...``, ``postgresql+psycopg://...``) goes to Optuna as it is; its driver is checked
up front and its password never shown. ``journal:/shared/path/optuna.journal`` is Optuna's journal file storage
(``JournalStorage(JournalFileBackend(path))``), for a cluster with a shared file system and no database server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from garbage_lit.errors import ConfigError

JOURNAL = "journal:"


def open_storage(storage: str) -> Any:
    """What ``optuna.create_study`` / ``load_study`` take: the URL itself, or the journal file's storage."""
    if not storage.startswith(JOURNAL):
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(journal_path(storage))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def journal_path(storage: str) -> str:
    """``journal:/a/b.journal`` (or ``journal:///a/b.journal``) -> ``/a/b.journal``."""
    path = storage[len(JOURNAL):]
    return path[2:] if path.startswith("///") else path


def check_driver(storage: str, key: str) -> None:
    """Fail in one line, naming the extra to install, when a database URL's driver is missing."""
    if storage.startswith(JOURNAL):
        return
    from sqlalchemy.engine import make_url

    try:
        make_url(storage).get_dialect().import_dbapi()
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{key}={shown(storage)}: its database driver is not installed ({exc}); for PostgreSQL, "
                          f"pip install 'garbage-lit[cluster]' (psycopg) and use "
                          f"postgresql+psycopg://user:password@host:5432/database") from None


def shown(storage: str) -> str:
    """The storage as logs and search.json show it: a database URL without its password."""
    if storage.startswith(JOURNAL):
        return storage
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(storage).render_as_string(hide_password=True)
    except ArgumentError:
        return storage
