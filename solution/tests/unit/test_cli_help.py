"""Every command explains itself: help text with an example."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from movies.cli import main


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example: movies " in result.output, f"`movies {command} --help` shows no example"
