"""Clinical acceptance: every hand-written chart, posted to the real service, gets the expected decision.

Each chart in ``charts/`` is a CDS Hooks request (patient-view, order-select or order-sign) with an
``expect`` block written by a clinician (see README.md). The service is the real Flask app serving the
real embedded default model (``conftest.py``). What is checked, per chart (CONTRACT §1 of the project):

- the number of cards (one, or none for patients out of scope and orders that are not levetiracetam);
- ``extension["org.epidose.decision"]``: the action (measured against the dose the child takes), the
  current and draft mg/day, the recommended mg/day range, the problems named and the rules that fired;
  a change larger than one labelled step (every 2 weeks) comes with titration steps in the detail;
- the summary (< 140 characters) opens with the action in words on patient-view, with the draft on
  order hooks; the detail opens with at most 5 lines before its first heading (a narrow sidebar); the facts the chart's expectation cites appear in the summary or detail; words that
  must not appear (e.g. "taper" for a child who takes nothing) do not;
- no suggested levetiracetam order exceeds the label maximum computed by hand for the chart, and each
  is in the expected form (oral solution at ≤ 20 kg; tablets above when the dose is whole tablets); ``isRecommended`` only when ``source == "model"``;
  an update keeps the draft's other fields; no suggestion repeats the draft's dose; a created order
  that replaces an active levetiracetam order also stops it.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhir_mapping.medication import is_levetiracetam, normalise_medication_request
from tests.clinical import charts_source
from tests.clinical.chart import CHART_DAY

pytestmark = [pytest.mark.slow, pytest.mark.clinical]

CHARTS_DIR = Path(__file__).parent / "charts"
CHART_FILES = sorted(CHARTS_DIR.glob("*.json"))
DECISION_KEY = "org.epidose.decision"
ACTIONS = ("start", "raise", "keep", "lower", "taper", "none", "no-recommendation")
SOURCES = ("model", "guidance", "none")
PROBLEM_KINDS = ("missing", "unreadable", "other-patient", "implausible")
# CONTRACT §1: the patient-view summary starts with the action in words.
ACTION_WORDS = {
    "start": "start levetiracetam", "raise": "raise levetiracetam", "keep": "keep levetiracetam",
    "lower": "lower levetiracetam", "taper": "taper levetiracetam", "none": "no levetiracetam needed",
    "no-recommendation": "levetiracetam: cannot recommend",
}
SUMMARY_MAX_CHARS = 139  # CDS Hooks 2.0 §Card Attributes: "<140 characters"
SIDEBAR_LINES = 5  # the detail opens with at most 5 lines for a narrow sidebar; the rest under a heading
ENDED_STATUSES = ("stopped", "completed", "cancelled", "entered-in-error")
# Fields of a draft order an update suggestion has no reason to change (it changes dose and product).
KEPT_DRAFT_FIELDS = ("subject", "authoredOn", "category", "requester", "encounter", "intent")
EARLIEST_SHIFTED_YEAR = 1900  # dates before it are written as data problems (birthDate 0001-01-01): kept
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
MG_TOLERANCE = 1e-6
PROJECT_SYSTEM = "https://epidose.org/fhir/CodeSystem/epidose"  # fhir_mapping.codes: the project's follow-up report codes
TABLET_GRAIN_MG = 250.0  # every tablet strength (250, 500, 750, 1000 mg) is a multiple of 250 mg


def shift_dates(value: Any, days: int) -> Any:
    """Every ISO date (or dateTime) from year 1900 on, moved by ``days``: CHART_DAY becomes the test's today."""
    if isinstance(value, dict):
        return {k: shift_dates(v, days) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_dates(v, days) for v in value]
    if isinstance(value, str):
        match = _DATE.match(value)
        if match and int(match.group(1)) >= EARLIEST_SHIFTED_YEAR:
            try:
                moved = date(int(match.group(1)), int(match.group(2)), int(match.group(3))) + timedelta(days=days)
            except ValueError:
                return value
            return moved.isoformat() + value[10:]
    return value


def load_chart(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The hook request (dated as of today) and the expectation of one chart file."""
    chart = json.loads(path.read_text(encoding="utf-8"))
    expect = chart.pop("expect")
    return shift_dates(chart, (date.today() - CHART_DAY).days), expect


def as_set(value: str | list[str]) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def as_list(value: Any) -> list[Any]:
    """A repeating element as a list: the sandbox sends ``category`` as one object, R4 wants an array."""
    return value if isinstance(value, list) else [value]


def levetiracetam_orders(card: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(suggestion, action, resource) for every levetiracetam MedicationRequest a card's suggestions write."""
    found = []
    for suggestion in card.get("suggestions") or []:
        for action in suggestion.get("actions") or []:
            resource = action.get("resource")
            if isinstance(resource, dict) and resource.get("resourceType") == "MedicationRequest" \
                    and is_levetiracetam(resource):
                found.append((suggestion, action, resource))
    return found


def whole_tablet_dose(mg_per_day: float) -> bool:
    """Twice daily in whole tablets of 250/500/750/1000 mg (shared/domain.md §2 whole-tablet ladders)."""
    per_dose = mg_per_day / 2
    return per_dose > 0 and abs(per_dose / TABLET_GRAIN_MG - round(per_dose / TABLET_GRAIN_MG)) < 1e-9


def active_lev_orders(request: dict[str, Any]) -> list[str]:
    bundle = request["prefetch"].get("medications") or {}
    return [entry["resource"]["id"] for entry in bundle.get("entry") or []
            if entry["resource"].get("status") == "active" and is_levetiracetam(entry["resource"])]


@pytest.mark.parametrize("path", CHART_FILES, ids=[p.stem for p in CHART_FILES])
def test_chart(path: Path, clinical_client: FlaskClient) -> None:
    request, expect = load_chart(path)
    response = clinical_client.post(f"/cds-services/epidose-{request['hook']}", json=request)
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.get_data(as_text=True)[:500]}"
    check_cards(request, expect, response.get_json()["cards"])


def without_project_observations(request: dict[str, Any]) -> dict[str, Any]:
    """The same chart as an EHR that never heard of epidose holds it: every Observation coded in the
    project's own CodeSystem (the follow-up seizure report) removed; Conditions, encounter reasons and
    notes remain."""
    stripped = json.loads(json.dumps(request))
    for bundle in (stripped.get("prefetch") or {}).values():
        if isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle":
            bundle["entry"] = [entry for entry in bundle.get("entry") or []
                               if not (entry["resource"].get("resourceType") == "Observation"
                                       and any(coding.get("system") == PROJECT_SYSTEM
                                               for coding in entry["resource"].get("code", {}).get("coding", [])))]
    return stripped


@pytest.mark.parametrize("path", CHART_FILES, ids=[p.stem for p in CHART_FILES])
def test_chart_on_ehr_data_alone(path: Path, clinical_client: FlaskClient) -> None:
    """Without the project's seizure reports the chart's Conditions, encounter reasons and notes still lead
    to the clinician's decision: the same action, doses, bounds, forms, problems and rules. (The ``cites``
    quote what the coded report holds, such as its counts, and are not asked of this variant.)"""
    request, expect = load_chart(path)
    stripped = without_project_observations(request)
    assert stripped != request or not _has_project_observations(request)
    response = clinical_client.post(f"/cds-services/epidose-{request['hook']}", json=stripped)
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.get_data(as_text=True)[:500]}"
    check_cards(stripped, {key: value for key, value in expect.items() if key != "cites"}, response.get_json()["cards"])


def _has_project_observations(request: dict[str, Any]) -> bool:
    return PROJECT_SYSTEM in json.dumps(request.get("prefetch") or {})


def check_cards(request: dict[str, Any], expect: dict[str, Any], cards: list[dict[str, Any]]) -> None:
    """Every check of one chart's answer (module docstring); raises AssertionError naming all that is wrong."""
    faults: list[str] = []

    def check(ok: object, message: str) -> None:
        if not ok:
            faults.append(message)

    if expect["cards"] == "none":
        assert cards == [], f"expected no card ({expect['why']}); got: {[c.get('summary') for c in cards]}"
        return
    assert len(cards) == 1, f"expected one card, got {len(cards)}: {[c.get('summary') for c in cards]}"
    card = cards[0]
    summary, detail = card.get("summary", ""), card.get("detail", "")
    shown = f"summary: {summary!r}"
    check(len(summary) <= SUMMARY_MAX_CHARS, f"summary longer than 139 characters: {shown}")

    decision = (card.get("extension") or {}).get(DECISION_KEY)
    assert isinstance(decision, dict), f"the card carries no extension {DECISION_KEY!r}; {shown}"
    action = decision.get("action")
    check(action in ACTIONS and decision.get("source") in SOURCES,
          f"decision out of the contract: {decision}")
    check(action in as_set(expect["action"]),
          f"action {action!r}, expected {expect['action']!r} ({expect['why']}); {shown}")

    # The reason in one line: the action first (patient-view), the draft first (order hooks).
    if request["hook"] == "patient-view":
        words = ACTION_WORDS.get(str(action), str(action))
        check(summary.lower().startswith(words), f"summary does not open with {words!r}; {shown}")
    else:
        check(summary.lower().startswith("draft"), f"an order-hook summary must lead with the draft; {shown}")
    head = []
    for line in detail.splitlines():
        if line.lstrip().startswith("#"):
            break
        if line.strip():
            head.append(line)
    check(len(head) <= SIDEBAR_LINES,
          f"the detail opens with {len(head)} lines before its first heading (at most 5)")
    text = f"{summary}\n{detail}".lower()
    missing = [cite for cite in expect.get("cites", []) if cite.lower() not in text]
    check(not missing, f"the card does not cite {missing}; {shown}")
    present = [word for word in expect.get("absent", []) if word.lower() in text]
    check(not present, f"the card says {present}, which it must not; {shown}")
    if "indicator" in expect:
        check(card.get("indicator") in as_set(expect["indicator"]),
              f"indicator {card.get('indicator')!r}; {shown}")

    # The decision's numbers: what the child takes, the draft, the recommendation.
    for field in ("current_mg_per_day", "draft_mg_per_day"):
        if field in expect:
            got = decision.get(field)
            wanted = expect[field]
            ok = (got is None or got == 0) if wanted == 0 else (got is not None and abs(got - wanted) < 0.5)
            check(ok, f"{field} {got!r}, expected {wanted!r} (counted from the order in effect); {decision}")
    recommended = decision.get("recommended_mg_per_day")
    maximum = expect.get("max_mg_per_day")
    if maximum is None or action == "no-recommendation":
        check(recommended is None or recommended == 0,
              f"a dose is recommended without the data for it: {decision}")
    if recommended is not None and maximum is not None:
        check(recommended <= maximum + MG_TOLERANCE,
              f"recommended {recommended} mg/day > maximum {maximum:.0f}")
    bounds = expect.get("recommended")
    if bounds and recommended is not None:
        check(bounds.get("min", 0) - MG_TOLERANCE <= recommended <= bounds.get("max", 1e9) + MG_TOLERANCE,
              f"recommended {recommended} mg/day outside {bounds} ({expect['why']})")

    current, step = decision.get("current_mg_per_day"), expect.get("step_mg_per_day")
    if step is not None and recommended is not None and current and abs(recommended - current) > step + MG_TOLERANCE:
        check("step" in detail.lower(),
              f"{current:g} → {recommended:g} mg/day is more than one labelled step ({step:g} mg/day per 2 weeks) "
              "and the detail gives no titration steps")

    problems = decision.get("problems") or []
    check(all(p.get("kind") in PROBLEM_KINDS for p in problems),
          f"problem kinds out of the contract: {problems}")
    for wanted_problem in expect.get("problems", []):
        matches = [p for p in problems
                   if wanted_problem["item"].lower() in f"{p.get('item', '')} {p.get('detail', '')}".lower()
                   and wanted_problem.get("kind", p.get("kind")) == p.get("kind")]
        check(matches, f"no problem {wanted_problem} named; problems: {problems}")
    rules = [str(r) for r in decision.get("rules") or []]
    for prefix in expect.get("rules", []):
        check(any(r.startswith(prefix) for r in rules), f"no rule {prefix}* named; rules: {rules}")

    # Suggestions: within the label, in the right form, recommended only when the model is.
    if any(s.get("isRecommended") for s in card.get("suggestions") or []):
        check(decision.get("source") == "model", f"isRecommended while source is {decision.get('source')!r}")
    draft = None
    if "draftOrders" in request["context"]:
        draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    stopped_ids = active_lev_orders(request)
    for suggestion, action_item, resource in levetiracetam_orders(card):
        if resource.get("status") in ENDED_STATUSES or action_item.get("type") == "delete":
            continue
        read = normalise_medication_request(resource)
        if isinstance(read, list):
            check(False, f"a suggested order's dose cannot be read: {[p.message for p in read]}")
            continue
        mg, form = read.mg_per_day, read.formulation
        if maximum is None:
            check(False, f"a dose ({mg:g} mg/day) is suggested without the data for it ({expect['why']})")
        else:
            check(mg <= maximum + MG_TOLERANCE, f"suggested {mg:g} mg/day exceeds the maximum {maximum:.0f} mg/day")
        if expect.get("form") == "solution":
            check(form == "solution",
                  f"suggested {mg:g} mg/day as {form!r}: oral solution expected at ≤ 20 kg")
        elif expect.get("form") == "tablet" and whole_tablet_dose(mg):
            check(form in ("tablet", "xr-tablet"),
                  f"suggested {mg:g} mg/day as {form!r}: whole tablets expected")
        if draft is not None:
            check(abs(mg - expect.get("draft_mg_per_day", -1)) > MG_TOLERANCE,
                  "a suggestion repeats the draft's dose")
            if action_item.get("type") == "update":
                changed = [f for f in KEPT_DRAFT_FIELDS if f in draft and as_list(resource.get(f)) != as_list(draft[f])]
                check(not changed, f"the update drops or changes the draft's {changed}")
                supply = (draft.get("dispenseRequest") or {}).get("expectedSupplyDuration")
                if supply is not None:
                    check((resource.get("dispenseRequest") or {}).get("expectedSupplyDuration") == supply,
                          "the update drops the draft's supply duration")
        elif action_item.get("type") == "create" and stopped_ids:
            stops = {a.get("resource", {}).get("id") for a in suggestion.get("actions") or []
                     if a.get("type") == "update" and a.get("resource", {}).get("status") in ENDED_STATUSES}
            stops |= {str(a.get("resourceId", "")).rsplit("/", 1)[-1] for a in suggestion.get("actions") or []
                      if a.get("type") == "delete"}
            check(set(stopped_ids) <= stops,
                  f"accepting the suggestion would leave two active levetiracetam orders (does not stop {stopped_ids})")
    assert not faults, "\n".join(faults)


def test_chart_files_match_their_source() -> None:
    """The JSON files are what charts_source writes (regenerate with python -m tests.clinical.charts_source)."""
    on_disk = {p.stem for p in CHART_FILES}
    assert on_disk == set(charts_source.CHARTS), "charts/ and charts_source.CHARTS list different charts"
    stale = [name for name in charts_source.CHARTS
             if (CHARTS_DIR / f"{name}.json").read_text(encoding="utf-8") != charts_source.render(name)]
    assert not stale, f"edited by hand or not regenerated: {stale}"
    assert charts_source.README.read_text(encoding="utf-8") == charts_source.readme_text(), "README table is stale"


def test_suite_covers_the_situations() -> None:
    """At least 32 charts, every hook, every expected action, and the data-problem kinds."""
    expects = [json.loads(p.read_text(encoding="utf-8")) for p in CHART_FILES]
    assert len(expects) >= 32
    assert {e["hook"] for e in expects} == {"patient-view", "order-select", "order-sign"}
    actions: set[str] = set()
    for e in expects:
        actions |= as_set(e["expect"]["action"]) if e["expect"]["cards"] == "one" else set()
    assert actions == set(ACTIONS)
    kinds = {p.get("kind") for e in expects for p in e["expect"].get("problems", [])}
    assert {"missing", "other-patient", "implausible"} <= kinds
    for e in expects:
        assert e["expect"]["why"] and e["expect"]["cards"] in ("one", "none")
        assert as_set(e["expect"].get("action", [])) <= set(ACTIONS)


def test_charts_hold_the_shapes_real_ehrs_send() -> None:
    """Units, products, statuses and codes the suite promises (README) are all present in some chart."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in CHART_FILES)
    promised = ['"[lb_av]"', '"umol/L"', '"mg/dL"', '"ug/mL"', '"mg/L"', '"#med"', '"{tbl}"', '"code": "mL"',
                '"code": "mg"', '"stopped"', '"completed"', '"active"', '"refuted"', '"{pill}"',
                *(f'"code": "{code}"' for code in ("311288", "311289", "311290", "387003", "403884", "807832",
                                                    "44145005", "84757009", "128613002", "91175000", "703151001",
                                                    "G40.009", "R56.9", "29463-7", "8302-2", "2160-0", "30471-7",
                                                    "vital-signs", "seizure-count-since-last-visit", "11506-3"))]
    absent = [shape for shape in promised if shape not in text]
    assert not absent, f"no chart holds {absent}"
