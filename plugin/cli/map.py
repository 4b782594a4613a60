"""Mapping commands of the ``epidose`` CLI (``epidose map``): the integrator's debugging tool."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from fhir_mapping.problems import MappingError, Problem, ProblemKind

# Problems that make the input unusable as a whole (exit 2) rather than partly unusable (exit 1).
FATAL_KINDS = frozenset({ProblemKind.MALFORMED})


def map_to_json(sources: tuple[object, ...], *, as_of: date | None = None, patient: str | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """The ``epidose map`` document for FHIR input, and every problem met (input and timelines)."""
    # Imported here so that other epidose commands (and --help) do not pay for numpy and the mapping.
    from fhir_mapping.build import build_timeline, build_timelines
    from fhir_mapping.features import FEATURE_SPEC, state_matrix
    from fhir_mapping.inputs import collect_resources
    from fhir_mapping.timeline import PatientTimeline

    resources, problems = collect_resources(*sources)
    timelines: list[PatientTimeline]
    if patient is not None:
        timelines = [build_timeline(resources, patient, as_of=as_of)]
    else:
        timelines = build_timelines(resources, as_of=as_of)
    states = []
    all_problems = list(problems)
    for timeline in timelines:
        values, observed = state_matrix(timeline)
        states.append({
            "patient_id": timeline.patient_id,
            "visits": [
                {
                    "date": visit.date.isoformat(),
                    "values": [None if v != v else float(v) for v in row.tolist()],
                    "observed": mask.tolist(),
                }
                for visit, row, mask in zip(timeline.visits, values, observed, strict=True)
            ],
        })
        all_problems.extend(timeline.problems)
    document: dict[str, Any] = {
        "feature_spec": {"version": FEATURE_SPEC.version, "names": list(FEATURE_SPEC.names)},
        "timelines": [t.to_json() for t in timelines],
        "states": states,
    }
    drafts = _draft_orders(sources)
    if drafts is not None:
        document["draft_orders"] = drafts
    document["problems"] = [p.to_json() for p in all_problems]
    return document, all_problems


def _draft_orders(sources: tuple[object, ...]) -> list[dict[str, Any]] | None:
    """The levetiracetam draft orders of CDS Hooks requests among the sources, read like any order."""
    from fhir_mapping.inputs import draft_orders
    from fhir_mapping.medication import is_levetiracetam, normalise_medication_request

    found: list[dict[str, Any]] | None = None
    for source in sources:
        request: object = source
        if isinstance(source, (str, Path)) and str(source).endswith(".json") and Path(source).is_file():
            try:
                request = json.loads(Path(source).read_text(encoding="utf-8-sig"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # already reported by collect_resources
        if not (isinstance(request, dict) and isinstance(request.get("hook"), str) and isinstance(request.get("context"), dict)):
            continue
        found = found or []
        orders, _ = draft_orders(request["context"])
        for order in orders:
            if order.get("resourceType") != "MedicationRequest" or not is_levetiracetam(order):
                continue
            read = normalise_medication_request(order)
            entry: dict[str, Any] = {"source": f"MedicationRequest/{order.get('id', '')}"}
            if isinstance(read, list):
                entry["problems"] = [p.to_json() for p in read]
            else:
                entry.update(mg_per_day=read.mg_per_day, formulation=read.formulation, doses_per_day=read.doses_per_day, product_code=read.product_code)
            found.append(entry)
    return found


def register(group: click.Group) -> None:
    """Attach the mapping subcommands to the root group."""

    @group.command("map")
    @click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
    @click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Decision date: ignore later data; the last visit is on this day.")
    @click.option("--patient", default=None, help="Map only this Patient id.")
    @click.option("--indent", type=int, default=2, show_default=True, help="JSON indentation (0: one line).")
    def map_command(files: tuple[str, ...], as_of: Any, patient: str | None, indent: int) -> None:
        """Print the patient timelines and state vectors (JSON) for FHIR R4 FILES.

        FILES are .json (a resource, a Bundle, a CDS Hooks prefetch object or a whole hook request,
        whose levetiracetam draftOrders are read too), .ndjson, or Bulk Data folders. Each visit's
        ``provenance`` says where each seizure, examination and assessment item came from (code,
        questionnaire, condition, encounter or text, with the resource). Exit status: 0 all input used; 1 some input could not be used (each problem is
        printed on stderr with its resource and path); 2 the input is unusable.
        """
        day = as_of.date() if as_of is not None else None
        try:
            document, problems = map_to_json(tuple(files), as_of=day, patient=patient)
        except MappingError as error:
            for problem in error.problems:
                click.echo(f"epidose map: {problem}", err=True)
            sys.exit(2)
        click.echo(json.dumps(document, indent=indent or None, ensure_ascii=False))
        for problem in problems:
            click.echo(f"epidose map: {problem}", err=True)
        if not any(t["visits"] for t in document["timelines"]) or any(p.kind in FATAL_KINDS for p in problems):
            click.echo("epidose map: unusable input: no visit could be mapped" if not problems else "epidose map: unusable input", err=True)
            sys.exit(2)
        if problems:
            sys.exit(1)
