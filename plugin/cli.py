"""The ``epidose`` command line: one group, subcommands contributed by each package.

Subcommands import their heavy dependencies (torch, pandas) lazily so that ``epidose --help`` and
the service start fast and serving needs no torch.
"""

from __future__ import annotations

import click

from fhir_mapping.cli import register as register_mapping
from plugin.commands import register as register_service
from plugin.load import load
from plugin.sandbox import sandbox
from training.cli import register as register_training


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="epidose")
def main() -> None:
    """epidose: levetiracetam dose recommendations for BECT, as CDS Hooks cards, learned from FHIR."""


register_mapping(main)
register_training(main)
register_service(main)
main.add_command(sandbox)
main.add_command(load)

if __name__ == "__main__":
    main()
