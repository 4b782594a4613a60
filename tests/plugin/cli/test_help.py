"""Every command and option of `epidose` explains itself in --help, and the command list is not cut short."""

from __future__ import annotations

import click
from click.testing import CliRunner

from plugin.cli import main


def _commands(group: click.Group, prefix: str = "epidose") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix} {name}")
    return found


def test_every_command_and_option_has_help() -> None:
    missing = []
    for path, command in _commands(main):
        if not (command.help or command.short_help):
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not param.help:
                missing.append(f"{path} {param.opts[0]}")
    assert not missing, f"no help text: {missing}"


def test_the_command_list_shows_whole_sentences() -> None:
    for args in ([], ["models"], ["feedback"]):
        output = CliRunner().invoke(main, [*args, "--help"], terminal_width=80).output
        assert "..." not in output.split("Commands:", 1)[1], output


def test_train_defaults_to_the_configuration_the_service_serves() -> None:
    from training.default_model import DEFAULT_CONFIG

    option = next(p for p in main.commands["train"].params if p.name == "config_name")
    assert option.default == DEFAULT_CONFIG == "conservative_light"
    assert all(name in (option.help or "") for name in ("conservative_light", "conservative_ae", "conservative", "paper",
                                                        "double", "bc", "forest"))
