"""``python -m plugin.cli``: the ``epidose`` command."""

from plugin.cli import main

main()
