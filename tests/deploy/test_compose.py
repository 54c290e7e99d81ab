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


DEFAULT = {"postgres", "migrate", "api", "smtp", "worker", "mailpit"}
SCALE = {"api-pool", "smtp-pool", "worker-pool", "lb"}


def started(compose: dict[str, Any], *, profiles: set[str]) -> set[str]:
    """The services `docker compose up` starts with these profiles on: those without a profile or
    with one of them."""
    return {
        name for name, service in compose["services"].items() if not set(service.get("profiles", [])) or profiles & set(service["profiles"])
    }


def needed(compose: dict[str, Any], name: str) -> set[str]:
    """`name` and everything it depends on, as `docker compose up <name>` starts them."""
    found, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo += list(compose["services"][current].get("depends_on", {}))
    return found


def haproxy(compose: dict[str, Any]) -> str:
    (config,) = (c for c in compose["services"]["lb"]["configs"] if c["target"] == "/usr/local/etc/haproxy/haproxy.cfg")
    content: str = compose["configs"][config["source"]]["content"]
    return content


class TestCompose:
    def test_has_every_service(self, compose: dict[str, Any]) -> None:
        assert started(compose, profiles=set()) == DEFAULT
        assert set(compose["services"]) == DEFAULT | SCALE

    def test_postgres_has_volume_and_healthcheck(self, compose: dict[str, Any]) -> None:
        postgres = compose["services"]["postgres"]
        assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
        assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    def test_services_share_one_image_and_wait_for_their_dependencies(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        assert {services[name]["image"] for name in ("api", "smtp", "worker")} == {"postgate:latest"}
        assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
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
        assert " ".join(compose["services"]["migrate"]["command"]) == "alembic upgrade head"
        dockerfile = (ROOT / "Dockerfile").read_text()
        for path in ("api_service", "smtp_service", "shared", "migrations", "alembic.ini"):
            assert path in dockerfile

    def test_ships_no_account_token(self, compose: dict[str, Any]) -> None:
        text = (ROOT / "docker-compose.yml").read_text()
        assert "change-me" not in text
        for name in ("api", "smtp", "worker"):
            assert compose["services"][name]["environment"]["ACCOUNT_TOKEN"].startswith("${ACCOUNT_TOKEN:?")

    def test_api_and_gateway_share_the_internal_token(self, compose: dict[str, Any]) -> None:
        # One variable for every API and gateway, none written down; empty: ACCOUNT_TOKEN stands in.
        for name in ("api", "smtp", "api-pool", "smtp-pool"):
            assert compose["services"][name]["environment"]["INTERNAL_TOKEN"] == "${INTERNAL_TOKEN:-}"


class TestDockerfile:
    """The image is built from the lock in one stage and run from a slim one, without root."""

    @staticmethod
    def stages() -> list[list[str]]:
        """The Dockerfile's instructions (comments dropped, continuations joined), one list per FROM."""
        text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
        stages: list[list[str]] = []
        for line in (raw.strip() for raw in text.splitlines()):
            if line.upper().startswith("FROM "):
                stages.append([])
            if line and not line.startswith("#") and stages:
                stages[-1].append(line)
        return stages

    def test_builds_from_the_lock_in_a_separate_stage(self) -> None:
        stages = self.stages()
        assert len(stages) >= 2
        builder = " ".join(stages[0])
        assert "uv.lock" in builder
        assert "uv sync --frozen --no-dev" in builder
        assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in builder

    def test_runs_as_a_user_from_the_builders_venv(self) -> None:
        runtime = self.stages()[-1]
        assert runtime[0].endswith(" AS runtime")
        assert any(line.startswith("COPY --from=builder /app/.venv ") for line in runtime)
        assert any(line.startswith("ENV ") and "PATH=/app/.venv/bin:" in line for line in runtime)
        users = [line.split()[1] for line in runtime if line.startswith("USER ")]
        assert users, "the runtime stage must not run as root"
        assert users[-1] not in {"root", "0"}
        assert not any("uv " in line or "pip install" in line for line in runtime)

    def test_uses_the_makefiles_uv(self) -> None:
        (version,) = re.findall(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
        assert f"uv=={version}" in (ROOT / "Dockerfile").read_text()


class TestScaleProfile:
    """`docker compose --profile scale up lb`: replicas of the API, the gateway and the worker behind HAProxy."""

    def test_default_up_does_not_change(self, compose: dict[str, Any]) -> None:
        # Nothing the default stack starts depends on a service of the profile, and the profile's
        # services are not started without it.
        default = started(compose, profiles=set())
        for name in default:
            assert needed(compose, name) <= default, name
        for name in SCALE:
            assert compose["services"][name]["profiles"] == ["scale"]
            assert "deploy" not in compose["services"].get(name.removesuffix("-pool"), {})

    def test_up_lb_starts_the_whole_scaled_stack(self, compose: dict[str, Any]) -> None:
        assert needed(compose, "lb") == {"lb", "api-pool", "smtp-pool", "worker-pool", "migrate", "postgres", "mailpit"}

    def test_replicas(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        assert services["api-pool"]["deploy"]["replicas"] == "${API_REPLICAS:-2}"
        assert services["smtp-pool"]["deploy"]["replicas"] == "${SMTP_REPLICAS:-2}"
        assert services["worker-pool"]["deploy"]["replicas"] == "${WORKER_REPLICAS:-3}"
        # Replicas publish nothing themselves: two of them cannot bind one host port.
        for name in ("api-pool", "smtp-pool", "worker-pool"):
            assert "ports" not in services[name]
            assert services[name]["image"] == "postgate:latest"

    def test_migrations_run_once_before_apis_and_workers(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        assert services["migrate"]["restart"] == "no"
        for name in ("api", "api-pool", "worker-pool"):
            assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        for name, service in services.items():
            if name != "migrate":
                assert "alembic" not in " ".join(service.get("command", [])), name
        assert services["smtp-pool"]["depends_on"]["api-pool"]["condition"] == "service_healthy"
        assert services["lb"]["depends_on"]["api-pool"]["condition"] == "service_healthy"

    def test_replicas_run_the_same_commands_as_the_single_services(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        for name in ("api", "smtp", "worker"):
            assert services[f"{name}-pool"]["command"] == services[name]["command"]
        for variable in ("SMTP_PORT", "SMTP_EXTRA_PORTS", "SMTP_INBOUND_PORT"):
            assert services["smtp-pool"]["environment"][variable] == services["smtp"]["environment"][variable]
        assert services["api-pool"]["environment"]["ACCOUNT_TOKEN"].startswith("${ACCOUNT_TOKEN:?")
        assert services["smtp-pool"]["environment"]["API_URL"] == "http://lb:8000"
        # Behind the balancer every client has its address: no per-IP AUTH lockout of everyone.
        assert services["smtp-pool"]["environment"]["SMTP_IP_AUTH_FAILURES"] == "0"
        assert "SMTP_IP_AUTH_FAILURES" not in services["smtp"]["environment"]

    def test_load_balancer_publishes_the_single_stacks_ports(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        assert services["lb"]["image"].startswith("haproxy:")
        assert set(services["lb"]["ports"]) == set(services["api"]["ports"]) | set(services["smtp"]["ports"])

    def test_load_balancer_routes_http_to_the_apis_and_smtp_to_the_gateways(self, compose: dict[str, Any]) -> None:
        config = haproxy(compose)
        sections: dict[str, list[str]] = {}
        current = ""
        for line in config.splitlines():
            if line and not line.startswith(" "):
                current = line.strip()
                sections[current] = []
            elif line.strip() and not line.strip().startswith("#"):
                sections[current].append(line.strip())
        assert "bind :8000" in sections["frontend api"]
        assert "mode http" in sections["frontend api"]
        assert "default_backend api" in sections["frontend api"]
        assert "option httpchk GET /health" in sections["backend api"]
        assert any(line.startswith("server-template api ") and " api-pool:8000 " in line for line in sections["backend api"])
        smtp_ports = {int(p.split(":")[1]) for p in compose["services"]["smtp"]["ports"]}
        assert {int(line.split(":")[1]) for line in sections["frontend smtp"] if line.startswith("bind ")} == smtp_ports
        assert "mode tcp" in sections["frontend smtp"]
        assert "default_backend smtp" in sections["frontend smtp"]
        assert "mode tcp" in sections["backend smtp"]
        # No port after the service name: each connection keeps its port (25, 587, 2525, 2526).
        (server,) = (line for line in sections["backend smtp"] if line.startswith("server-template smtp "))
        assert server.split()[3] == "smtp-pool"
        # The replicas are found through Docker's DNS and followed as they are scaled.
        assert "nameserver dns 127.0.0.11:53" in sections["resolvers docker"]
        assert "resolvers docker" in server

    def test_api_behind_the_balancer_trusts_its_forwarded_for(self, compose: dict[str, Any]) -> None:
        assert "option forwardfor" in haproxy(compose)
        assert compose["services"]["api-pool"]["environment"]["FORWARDED_ALLOW_IPS"] == "*"
        assert "FORWARDED_ALLOW_IPS" not in compose["services"]["api"]["environment"]


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

    def test_gateway_refuses_to_start_without_a_credential_for_the_api(self) -> None:
        env = {**os.environ, "ACCOUNT_TOKEN": "", "INTERNAL_TOKEN": "", "SMTP_PORT": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "smtp_service"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2
        assert "INTERNAL_TOKEN=" in done.stderr
