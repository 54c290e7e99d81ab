"""The migrations and the models agree (`alembic check`), and every revision goes down again."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from api_service.devtools.embedded_db import drop_database, ensure_database, migrate, with_database

ROOT = Path(__file__).resolve().parent.parent


def config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


def test_models_match_migrations(database_url: str) -> None:
    command.check(config(database_url))


def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    url = with_database(database_url, f"{make_url(database_url).database}_mig")
    ensure_database(url)
    try:
        migrate(url)
        command.downgrade(config(url), "base")
        migrate(url)
        command.check(config(url))
    finally:
        drop_database(url)
