"""The ``epidose`` command line: one group, one module per command family; the only place click is used.

Subcommands import their heavy dependencies (torch, pandas) lazily so that ``epidose --help`` and
the service start fast and serving needs no torch.
"""

from __future__ import annotations

import types
from typing import Any

import click

from fhir_mapping.errors import EpidoseError
from plugin.cli import cohort, retrain, train
from plugin.cli.feedback import feedback
from plugin.cli.load import load
from plugin.cli.map import register as register_map
from plugin.cli.models import models
from plugin.cli.sandbox import sandbox
from plugin.cli.serve import serve
from plugin.cli.settings import settings_reference


class FullHelpGroup(click.Group):
    """Lists each command with its whole first sentence, wrapped, instead of click's cut-off "...".

    The root group is also where an :class:`EpidoseError` from any command becomes one line on
    standard error and exit status 1 (click's ``Error: ...``), never a traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EpidoseError as error:
            raise click.ClickException(error.message) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=FullHelpGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="epidose")
def main() -> None:
    """epidose: levetiracetam dose recommendations for BECT, as CDS Hooks cards, learned from FHIR."""


register_map(main)
cohort.register(main)
train.register(main)
retrain.register(main)
for _command in (models, serve, feedback, settings_reference, sandbox, load):
    main.add_command(_command)
for _command in main.commands.values():  # the subgroups (models, feedback) list their commands whole too
    if isinstance(_command, click.Group) and not isinstance(_command, FullHelpGroup):
        _command.format_commands = types.MethodType(FullHelpGroup.format_commands, _command)  # type: ignore[method-assign]
