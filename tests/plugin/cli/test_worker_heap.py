"""A served worker's collector settings: the loaded app frozen out of its view, young collections spaced."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import gc
from plugin import create_app
from plugin.cli.serve import GC_YOUNG_ALLOCATIONS, settle_heap
from plugin.settings import Settings
import tempfile, pathlib
create_app(Settings.from_env({}, auth=False, data_dir=pathlib.Path(tempfile.mkdtemp()), hash_key="k"))
import sys
from fhir_mapping.notes import rules
lazy_before = "fhir_mapping.pk_estimate" in sys.modules or rules.cache_info().currsize
before = gc.get_freeze_count()
settle_heap()
loaded = "fhir_mapping.pk_estimate" in sys.modules and rules.cache_info().currsize == 1
print(before, gc.get_freeze_count(), gc.get_threshold()[0] == GC_YOUNG_ALLOCATIONS, len(gc.get_objects()), bool(lazy_before), loaded)
"""


def test_settle_heap_freezes_the_loaded_app_and_spaces_young_collections() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True)
    before, frozen, spaced, tracked, lazy_before, loaded = done.stdout.split()
    assert int(before) == 0 and int(frozen) > 50_000  # the app's objects, torch's and numpy's among them
    assert spaced == "True"
    assert int(tracked) < 1_000  # what a full collection still walks
    # What a first call loads lazily (the PK estimator with scipy, the note rules) is loaded, then frozen.
    assert lazy_before == "False" and loaded == "True"
