"""``epidose map``: JSON on stdout, problems on stderr, exit status by how usable the input was."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import click
from click.testing import CliRunner

from fhir_mapping.features import FEATURE_SPEC
from plugin.cli.map import register
from tests.fhir_mapping import factory as f


def cli() -> click.Group:
    @click.group()
    def root() -> None:
        """Test root."""

    register(root)
    return root


def write_bundle(path: Path, resources: list[dict]) -> Path:
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}))
    return path


def test_map_prints_timelines_and_states(tmp_path: Path) -> None:
    """Clean input prints timelines and per-visit states with the spec's names, and exits 0."""
    source = write_bundle(tmp_path / "b.json", f.history(visits=2))
    result = CliRunner().invoke(cli(), ["map", str(source), "--as-of", "2020-06-01"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["feature_spec"]["names"] == list(FEATURE_SPEC.names)
    assert [v["date"] for v in document["timelines"][0]["visits"]] == ["2020-01-06", "2020-04-06"]
    assert len(document["states"][0]["visits"][0]["values"]) == FEATURE_SPEC.dimension
    assert document["problems"] == []


def test_map_names_resource_and_path_of_unusable_parts(tmp_path: Path) -> None:
    """A weight in an unknown unit: JSON still printed, the problem on stderr with resource and path, exit 1."""
    resources = [f.patient(), f.encounter("e0", date(2021, 1, 4)), f.quantity("w9", "weight", date(2021, 1, 4), 4.0, "stone", eid="e0")]
    result = CliRunner().invoke(cli(), ["map", str(write_bundle(tmp_path / "b.json", resources))])
    assert result.exit_code == 1
    assert "Observation/w9 valueQuantity.code" in result.stderr
    assert json.loads(result.stdout)["problems"][0]["kind"] == "unknown-unit"


def test_map_fails_clearly_on_unusable_input(tmp_path: Path) -> None:
    """Input that is not FHIR exits 2 naming the file."""
    bad = tmp_path / "notes.json"
    bad.write_text("this is not json")
    result = CliRunner().invoke(cli(), ["map", str(bad)])
    assert result.exit_code == 2
    assert "notes.json" in result.stderr and "malformed" in result.stderr


def test_map_selects_a_patient(tmp_path: Path) -> None:
    """--patient maps one of several patients; without it all are mapped."""
    source = write_bundle(tmp_path / "b.json", f.history("a", visits=2) + f.history("b", visits=1))
    both = json.loads(CliRunner().invoke(cli(), ["map", str(source)]).stdout)
    assert [t["patient_id"] for t in both["timelines"]] == ["a", "b"]
    one = json.loads(CliRunner().invoke(cli(), ["map", str(source), "--patient", "b", "--indent", "0"]).stdout)
    assert [t["patient_id"] for t in one["timelines"]] == ["b"]
