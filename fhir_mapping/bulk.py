"""Timelines of a large FHIR export with one patient's resources in memory at a time.

``build_timelines(collect_resources(folder)[0])`` holds every resource of the input as a dict at
once: a 10,000-child cohort is a million dicts and several GB. :func:`index_patients` reads the
NDJSON lines once to learn whose each resource is (:func:`fhir_mapping.build.patient_of`), keeping
only where its line lies (file, byte offset, length); :meth:`PatientIndex.timelines` then reads each
patient's lines again, maps them to the timeline and drops them.

The result is that of ``collect_resources`` + ``build_timelines`` on the same paths: the same patients
in the same order, each patient's resources in input order, the first of repeated (type, id) kept,
the same problems with the same line numbers. What cannot be found again by offset is read as
``collect_resources`` reads it and held as dicts: ``.json`` files, Bundles, lists or prefetch objects
written on one line, and files that are not UTF-8 (``collect_resources`` names them as one problem). The
files must not change between the index and the reading of the timelines.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from fhir_mapping.build import PATIENT_KINDS, SHARED_KINDS, build_patient_timeline, patient_of
from fhir_mapping.inputs import Resource, _Collector, _loads, _read_file, _read_path
from fhir_mapping.problems import Problem, ProblemKind
from fhir_mapping.timeline import PatientTimeline

_BOM: Final = codecs.BOM_UTF8
_SCAN_CHUNK: Final = 1 << 20
# A located line packed in one int: length << 56 | offset << 16 | file number.
_FILE_BITS: Final = 16
_OFFSET_BITS: Final = 40
_MAX_FILES: Final = 1 << _FILE_BITS
_MAX_OFFSET: Final = 1 << _OFFSET_BITS

Entry = int | Resource  # a located NDJSON line, or a resource held as a dict


@dataclass
class PatientIndex:
    """Where each patient's resources are; the shared ones (Medication, Binary) and the reading problems."""

    files: list[Path]
    groups: dict[str, list[Entry]]  # patient id -> its resources, in input order (first appearance order)
    shared: dict[str, Resource]  # "Type/id" -> Medication or Binary
    orphans: list[Entry]  # resources without a patient: the only patient's when there is exactly one
    problems: list[Problem] = field(default_factory=list)

    def patient_ids(self) -> list[str]:
        return list(self.groups)

    def resources(self, patient_id: str, *, _handles: Mapping[int, int] | None = None) -> list[Resource]:
        """The patient's resources, read again from their lines."""
        entries = self.groups[patient_id]
        if len(self.groups) == 1 and self.orphans:
            entries = entries + self.orphans
        with ExitStack() as stack:
            handles = _handles if _handles is not None else self._open(stack)
            return [self._read(entry, handles) for entry in entries]

    def timelines(self, *, as_of: date | None = None) -> Iterator[PatientTimeline]:
        """One timeline per patient, in order of first appearance, each patient's resources dropped once mapped."""
        with ExitStack() as stack:
            handles = self._open(stack)
            for patient_id in self.groups:
                yield build_patient_timeline(patient_id, self.resources(patient_id, _handles=handles), self.shared,
                                             as_of=as_of)

    def _open(self, stack: ExitStack) -> dict[int, int]:
        handles: dict[int, int] = {}
        for number, path in enumerate(self.files):
            handle = os.open(path, os.O_RDONLY)
            stack.callback(os.close, handle)
            handles[number] = handle
        return handles

    @staticmethod
    def _read(entry: Entry, handles: Mapping[int, int]) -> Resource:
        if not isinstance(entry, int):
            return entry
        number = entry & (_MAX_FILES - 1)
        offset = (entry >> _FILE_BITS) & (_MAX_OFFSET - 1)
        length = entry >> (_FILE_BITS + _OFFSET_BITS)
        value: Resource = _loads(os.pread(handles[number], length, offset).decode("utf-8"))
        return value


class _Locator(_Collector):
    """A collector that keeps, for each resource, where its line is instead of the resource."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[Path] = []
        self.groups: dict[str, list[Entry]] = {}
        self.shared: dict[str, Resource] = {}
        self.orphans: list[Entry] = []
        self.line_value: object = None  # the value of the NDJSON line being read
        self.line_entry = 0  # and where that line is

    def keep(self, resource: Resource) -> None:
        kind = resource.get("resourceType")
        if kind in SHARED_KINDS:
            ident = resource.get("id")
            if isinstance(ident, str):
                self.shared[f"{kind}/{ident}"] = resource
            return
        if kind not in PATIENT_KINDS:
            return
        entry: Entry = self.line_entry if resource is self.line_value else resource
        pid = patient_of(resource)
        if pid is None:
            self.orphans.append(entry)
        else:
            self.groups.setdefault(pid, []).append(entry)

    def read_file(self, path: Path, collector: Any) -> None:
        if path.suffix.lower() != ".ndjson" or len(self.files) >= _MAX_FILES or not _lines_by_offset(path):
            _read_file(path, self)
            return
        number = len(self.files)
        self.files.append(path)
        with path.open("rb") as handle:
            offset = 0
            for line_number, raw in enumerate(handle, start=1):
                start = offset
                offset += len(raw)
                if line_number == 1 and raw.startswith(_BOM):
                    start += len(_BOM)
                    raw = raw[len(_BOM):]
                if raw.endswith(b"\n"):
                    raw = raw[:-1]
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                where = f"{path}:{line_number}"
                try:
                    value = _loads(line)
                except json.JSONDecodeError as error:
                    self.problems.append(Problem(ProblemKind.MALFORMED, f"not JSON: {error.msg}", where, ""))
                    continue
                if start >= _MAX_OFFSET:
                    self.line_value = None  # beyond what an entry can address: held as a dict
                else:
                    self.line_value = value
                    self.line_entry = (len(raw) << (_FILE_BITS + _OFFSET_BITS)) | (start << _FILE_BITS) | number
                self.value(value, where)
                self.line_value = None


def _lines_by_offset(path: Path) -> bool:
    """Whether the file is UTF-8 throughout (else it is one problem, as collect_resources reads it)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_SCAN_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except (OSError, UnicodeDecodeError):
        return False
    return True


def index_patients(*paths: str | Path) -> PatientIndex:
    """Read files or folders (as :func:`fhir_mapping.inputs.collect_resources` does) into a :class:`PatientIndex`."""
    locator = _Locator()
    for path in paths:
        _read_path(Path(path), locator, locator.read_file)
    return PatientIndex(locator.files, locator.groups, locator.shared, locator.orphans, locator.problems)
