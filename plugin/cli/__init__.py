"""The ``epidose`` command line: one group, one module per command family; the only place click is used.

Subcommands import their heavy dependencies (torch, scikit-learn) lazily so that ``epidose --help`` and
the service start fast and serving needs no torch.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Final

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

# The one table from errors to what a command prints and its exit status; the first matching row wins.
# Classes are named, not imported, so `epidose --help` does not pay for the modules that define them.
# The line printed is click's "Error: <what>: <message>"; the usage errors click finds itself exit 2.
CLI_ERRORS: Final = (
    ("fhir_mapping.problems:MappingError", 2, "unusable FHIR input"),  # as `epidose map` exits for it
    ("fhir_mapping.errors:InputError", 1, "input"),
    ("training.settings_base:SettingsError", 1, "configuration"),
    ("training.database:DatabaseUnavailable", 1, "database"),
    ("training.retrain.errors:FhirError", 1, "FHIR server"),
    ("training.inference:ArtifactError", 1, "model folder"),
    ("training.artifact.check:ModelCheckError", 1, "model folder refused"),
    ("training.artifact.registry:RegistryError", 1, "model registry"),
    ("training.retrain.scheduler:SchedulerAlreadyRunning", 1, "scheduler"),
    ("plugin.load:LoadError", 1, "load"),
    ("plugin.sandbox:SandboxError", 1, "sandbox"),
    ("fhir_mapping.errors:EpidoseError", 1, ""),
    ("builtins:OSError", 1, ""),  # a path that cannot be read or written, a port refused: not a bug
)


class CommandError(click.ClickException):
    """An error of the table above, as click prints it (one line on standard error)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def cli_error(error: BaseException) -> CommandError | None:
    """The line and exit status for ``error`` by :data:`CLI_ERRORS`; None for an error that is a bug."""
    for name, exit_code, what in CLI_ERRORS:
        module, _, attribute = name.partition(":")
        if module not in sys.modules:  # an error of a module never imported cannot have been raised
            continue
        kind = getattr(sys.modules[module], attribute)
        if isinstance(error, kind):
            message = getattr(error, "message", None) or _os_message(error) or str(error)
            return CommandError(f"{what}: {message}" if what else message, exit_code)
    return None


def _os_message(error: BaseException) -> str | None:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return None  # an OSError raised with a message of its own (FileNotFoundError("no data at …")) shows it


class FullHelpGroup(click.Group):
    """Lists each command with its whole first sentence, wrapped, instead of click's cut-off "...".

    The root group is also where an error of :data:`CLI_ERRORS` from any command becomes one line on
    standard error and its exit status, never a traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except (EpidoseError, OSError) as error:
            mapped = cli_error(error)
            if mapped is None:
                raise
            raise mapped from None

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
