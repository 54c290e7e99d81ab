"""The `postgate` command as an operator runs it (a subprocess on the test database)."""

from __future__ import annotations

import pytest

from tests.e2e.test_tokens import postgate_command

pytestmark = pytest.mark.slow  # each run of the command is a fresh interpreter importing the app (seconds)


class TestAdminCommand:
    @pytest.mark.parametrize("args", [["bogus"], ["tokens", "create", "--name", "x"]])
    def test_a_wrong_command_prints_usage_and_exits_non_zero(self, database_url: str, args: list[str]) -> None:
        done = postgate_command(database_url, *args)
        assert done.returncode == 2
        assert "usage: postgate" in done.stderr
        assert "API" not in done.stdout  # the services did not start

    def test_tokens_of_a_missing_server_say_so(self, database_url: str) -> None:
        done = postgate_command(database_url, "tokens", "create", "--server", "999999", "--name", "ci")
        assert done.returncode == 1
        assert "Server 999999 was not found" in done.stderr

    def test_users_list_and_audit_export_run(self, database_url: str) -> None:
        assert postgate_command(database_url, "users", "list").stdout.startswith("USER")
        exported = postgate_command(database_url, "audit", "--since", "2020-01-01", "--format", "csv")
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.startswith("id,occurred_at")
