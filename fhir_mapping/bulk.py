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
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from fhir_mapping.build import PATIENT_KINDS, SHARED_KINDS, build_patient_timeline, patient_of
from fhir_mapping.inputs import Resource, _Collector, _loads, _read_file, _read_path
from fhir_mapping.problems import Problem, ProblemKind
from fhir_mapping.timeline import PatientTimeline

log = logging.getLogger(__name__)

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
    loads: Callable[[str], Any] = _loads  # how a located line is parsed again (as it was parsed first)

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

    def _read(self, entry: Entry, handles: Mapping[int, int]) -> Resource:
        if not isinstance(entry, int):
            return entry
        number, offset, length = _unpack(entry)
        value: Resource = self.loads(os.pread(handles[number], length, offset).decode("utf-8"))
        return value


def _pack(number: int, offset: int, length: int) -> int:
    return (length << (_FILE_BITS + _OFFSET_BITS)) | (offset << _FILE_BITS) | number


def _unpack(entry: int) -> tuple[int, int, int]:
    return entry & (_MAX_FILES - 1), (entry >> _FILE_BITS) & (_MAX_OFFSET - 1), entry >> (_FILE_BITS + _OFFSET_BITS)


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
        self.place(self.line_entry if resource is self.line_value else resource, patient_of(resource))

    def place(self, entry: Entry, pid: str | None) -> None:
        if pid is None:
            self.orphans.append(entry)
        else:
            self.groups.setdefault(pid, []).append(entry)

    def first_sight(self, kind: str, ident: str) -> bool:
        """Whether (kind, id) is seen for the first time (the collector's rule), remembering it."""
        seen = self._seen.setdefault(kind, set())
        if ident in seen:
            return False
        seen.add(ident)
        return True

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
                    self.line_entry = _pack(number, start, len(raw))
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


def _store_loads(text: str) -> Any:
    return json.loads(text)


def index_newest_versions(files: Sequence[Path], version: Callable[[Mapping[str, Any]], Any]) -> PatientIndex:
    """The newest version of every resource in append-only NDJSON files of versions, by patient.

    What ``collect_resources(newest)`` + ``build_timelines`` read when ``newest`` holds, in order of first
    appearance, the version of each (type, id) with the greatest ``version(resource)`` (the later line of
    equal ones), the files read in text mode with the standard parser and lines that do not parse skipped
    (the layout and rules of :class:`training.retrain.resources.ResourceStore`). Only the newest version's place is kept
    while the files are read.
    """
    # (type, id) -> (version, where its line is or the resource, its type and patient when plain)
    newest: dict[tuple[str, str], tuple[Any, Entry, tuple[str, str, str | None] | None]] = {}
    located: list[Path] = []
    for path in files:
        if len(located) >= _MAX_FILES:
            raise ValueError(f"more than {_MAX_FILES} files")
        number = len(located)
        located.append(path)
        with path.open("rb") as handle:
            offset = 0
            for line_number, raw in enumerate(handle, start=1):
                start = offset
                offset += len(raw)
                text = raw.decode("utf-8")
                # Text mode ends lines at "\r" too: such pieces are kept as parsed, not found again by offset.
                pieces = [text] if "\r" not in text else text.replace("\r\n", "\n").replace("\r", "\n").splitlines(keepends=True)
                for piece in pieces:
                    if not piece.strip():
                        continue
                    try:
                        resource = json.loads(piece)
                    except json.JSONDecodeError:
                        log.warning("skipping unreadable line %d of %s", line_number, path.name)
                        continue
                    if not isinstance(resource, dict):
                        continue
                    key = (str(resource.get("resourceType")), str(resource.get("id")))
                    rank = version(resource)
                    held = newest.get(key)
                    if held is not None and not rank >= held[0]:
                        continue
                    kind, ident = resource.get("resourceType"), resource.get("id")
                    # A resource the collector keeps as it is (no Bundle to unwrap, an id to tell repeats by):
                    # its type, id and patient are all that is needed until its timeline is built.
                    plain = (isinstance(kind, str) and kind not in ("", "Bundle", "OperationOutcome")
                             and kind not in SHARED_KINDS and isinstance(ident, str) and bool(ident))
                    if plain and len(pieces) == 1 and start < _MAX_OFFSET:
                        newest[key] = (rank, _pack(number, start, len(raw.rstrip(b"\n"))),
                                       (str(kind), str(ident), patient_of(resource)))
                    else:
                        newest[key] = (rank, resource, None)
    locator = _Locator()
    locator.files = located
    for index, (_, entry, plain_facts) in enumerate(newest.values()):
        if plain_facts is None:
            locator.value(entry, f"[{index}]")
            continue
        kind, ident, pid = plain_facts
        if locator.first_sight(kind, ident) and kind in PATIENT_KINDS:
            locator.place(entry, pid)
    return PatientIndex(located, locator.groups, locator.shared, locator.orphans, locator.problems, loads=_store_loads)
