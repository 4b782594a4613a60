"""`epidose cohort --end-date`: the follow-up window moves, its length and the children do not change."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from plugin.cli import main


def _encounter_days(folder: Path) -> list[str]:
    lines = (folder / "ndjson" / "Encounter.ndjson").read_text(encoding="utf-8").splitlines()
    return sorted(json.loads(line)["period"]["start"] for line in lines)


def test_end_date_moves_the_window(tmp_path: Path) -> None:
    """With --end-date every visit lies on or before that day and the latest ones come close to it."""
    study, moved = tmp_path / "study", tmp_path / "moved"
    for out, extra in ((study, []), (moved, ["--end-date", "2026-10-31"])):
        result = CliRunner().invoke(main, ["cohort", "--patients", "30", "--seed", "5", "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
    study_days, moved_days = _encounter_days(study), _encounter_days(moved)
    assert study_days[-1] <= "2021-04-29"
    assert moved_days[-1] <= "2026-10-31" and moved_days[-1] >= "2026-01-01"
    assert len(study_days) == len(moved_days)  # same children, same visits, shifted in time
    shift = date(2026, 10, 31) - date(2021, 4, 29)
    assert date.fromisoformat(moved_days[0]) - date.fromisoformat(study_days[0]) == shift
