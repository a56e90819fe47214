"""The c2f command: help that helps, and clear errors when nothing runs."""

import pytest
from typer.testing import CliRunner

from c2f_cli.main import app
from c2f_cli.processes import free_port

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [[], ["up"], ["seed"], ["status"], ["mail"], ["import"], ["rebuild"], ["schedule"], ["config-reference"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
    assert len(result.output.split()) > 20


def test_status_says_what_is_unreachable_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    for service in ("REGISTRATION", "MATCHING", "NOTIFICATIONS", "REPORTING"):
        monkeypatch.setenv(f"C2F_{service}_PORT", str(free_port()))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "unreachable" in result.output


def test_seed_explains_a_missing_data_folder(tmp_path) -> None:
    result = runner.invoke(app, ["seed", "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert "cannot read the partnership" in result.output


def test_mail_with_an_empty_sink(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("C2F_HOME", str(tmp_path))
    result = runner.invoke(app, ["mail"])
    assert result.exit_code == 0
    assert "No mail" in result.output


def test_schedule_says_what_is_unreachable_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2F_MATCHING_PORT", str(free_port()))
    monkeypatch.setenv("C2F_OPERATOR_TOKEN", "x")
    result = runner.invoke(app, ["schedule", "some-event", "--seconds", "1"])
    assert result.exit_code == 1
    assert "Could not schedule" in result.output
