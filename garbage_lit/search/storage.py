"""The study's storage URL (``hparams_search.storage``): its database driver checked up front, its password hidden."""

from __future__ import annotations

from garbage_lit.config import ConfigError


def check_driver(url: str, key: str) -> None:
    """Fail in one line, naming the extra to install, when the URL's database driver is missing."""
    from sqlalchemy.engine import make_url

    try:
        make_url(url).get_dialect().import_dbapi()
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{key}={shown(url)}: its database driver is not installed ({exc}); for PostgreSQL, "
                          f"pip install 'garbage-lit[cluster]' (psycopg) and use "
                          f"postgresql+psycopg://user:password@host:5432/database") from None


def shown(url: str) -> str:
    """The URL as logs and search.json show it: without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
