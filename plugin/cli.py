"""The ``epidose`` command line: one group, subcommands contributed by each package.

Subcommands import their heavy dependencies (torch, pandas) lazily so that ``epidose --help`` and
the service start fast and serving needs no torch.
"""

from __future__ import annotations

import types

import click

from fhir_mapping.cli import register as register_mapping
from plugin.commands import register as register_service
from plugin.load import load
from plugin.sandbox import sandbox
from training.cli import register as register_training


class FullHelpGroup(click.Group):
    """Lists each command with its whole first sentence, wrapped, instead of click's cut-off "..."."""

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


register_mapping(main)
register_training(main)
register_service(main)
main.add_command(sandbox)
main.add_command(load)
for _command in main.commands.values():  # the subgroups (models, feedback) list their commands whole too
    if isinstance(_command, click.Group) and not isinstance(_command, FullHelpGroup):
        _command.format_commands = types.MethodType(FullHelpGroup.format_commands, _command)  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
