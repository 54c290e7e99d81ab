"""docker-compose.yml cannot be run here (no Docker engine), so it is checked by parsing."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


class TestCompose:
    def test_has_every_service(self, compose: dict[str, Any]) -> None:
        assert set(compose["services"]) == {"postgres", "api", "smtp", "worker", "mailpit"}

    def test_postgres_has_volume_and_healthcheck(self, compose: dict[str, Any]) -> None:
        postgres = compose["services"]["postgres"]
        assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
        assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    def test_services_share_one_image_and_wait_for_their_dependencies(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        assert {services[name]["image"] for name in ("api", "smtp", "worker")} == {"postgate:latest"}
        assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services["smtp"]["depends_on"]["api"]["condition"] == "service_healthy"
        assert services["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
        assert "/health" in " ".join(services["api"]["healthcheck"]["test"])

    def test_ports(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        assert "8000:8000" in services["api"]["ports"]
        assert {"25:25", "587:587", "2525:2525", "2526:2526"} <= set(services["smtp"]["ports"])
        assert services["smtp"]["environment"]["SMTP_INBOUND_PORT"] == "2526"
        assert "8025:8025" in services["mailpit"]["ports"]

    def test_api_and_gateway_agree_on_the_inbound_domain(self, compose: dict[str, Any]) -> None:
        for name in ("api", "smtp", "worker"):
            assert compose["services"][name]["environment"]["INBOUND_DOMAIN"] == "${INBOUND_DOMAIN:-inbound.localhost}"

    def test_relay_is_the_mail_sink(self, compose: dict[str, Any]) -> None:
        for name in ("api", "smtp", "worker"):
            assert compose["services"][name]["environment"]["OUTBOUND_RELAY"] == "smtp://mailpit:1025"

    def test_confirmation_links_open_the_published_api(self, compose: dict[str, Any]) -> None:
        # SENDER_AUTO_CONFIRM stays off: a new signature's link arrives in Mailpit and must open the API.
        environment = compose["services"]["api"]["environment"]
        assert "SENDER_AUTO_CONFIRM" not in environment
        assert environment["PUBLIC_URL"].endswith("localhost:8000}")
        assert "8000:8000" in compose["services"]["api"]["ports"]

    def test_every_command_exists_in_the_code(self, compose: dict[str, Any]) -> None:
        for name in ("api", "smtp", "worker"):
            command = " ".join(compose["services"][name]["command"])
            for module in re.findall(r"python -m ([\w.]+)", command):
                assert importlib.util.find_spec(module + ".__main__") is not None, (name, module)
        assert "alembic upgrade head" in " ".join(compose["services"]["api"]["command"])
        dockerfile = (ROOT / "Dockerfile").read_text()
        for path in ("api_service", "smtp_service", "shared", "migrations", "alembic.ini"):
            assert path in dockerfile

    def test_ships_no_account_token(self, compose: dict[str, Any]) -> None:
        text = (ROOT / "docker-compose.yml").read_text()
        assert "change-me" not in text
        for name in ("api", "smtp", "worker"):
            assert compose["services"][name]["environment"]["ACCOUNT_TOKEN"].startswith("${ACCOUNT_TOKEN:?")


class TestWeakAccountToken:
    @pytest.mark.parametrize("token", ["", "change-me-account-token", "short"])
    def test_api_refuses_to_start_and_suggests_a_token(self, token: str) -> None:
        env = {**os.environ, "ACCOUNT_TOKEN": token, "API_PORT": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "api_service"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2
        assert "refusing to start" in done.stderr
        suggested = re.search(r"ACCOUNT_TOKEN=([0-9a-f]{40})", done.stderr)
        assert suggested is not None

    def test_return_path_listener_refuses_the_default_token(self) -> None:
        env = {**os.environ, "ACCOUNT_TOKEN": "change-me-account-token", "SMTP_INBOUND_PORT": "1", "SMTP_PORT": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "smtp_service"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2
        assert "refusing to start" in done.stderr
