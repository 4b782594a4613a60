"""Each input that once made the service answer 500, now a 400 (or a 412 / card) that does not echo the input."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient

from plugin.jsonbody import MAX_DEPTH, MAX_STRING_CHARS, JsonBodyError, nesting_depth, parse_json
from tests.plugin.fixtures import draft_bundle, hook_request, lev_order, patient_resources

PATIENT_VIEW = "/cds-services/epidose-patient-view"
ORDER_SIGN = "/cds-services/epidose-order-sign"
ORDER_SELECT = "/cds-services/epidose-order-select"
FEEDBACK = "/cds-services/epidose-patient-view/feedback"
MARK = "PLACEHOLDER-7f3a"


def _post(client: FlaskClient, path: str, body: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, data=data, content_type="application/json")


def _bad_request(response: Any, *, not_echoing: str | None = None) -> dict[str, Any]:
    assert response.status_code == 400, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    if not_echoing is not None:
        assert not_echoing not in response.get_data(as_text=True)
    return outcome  # type: ignore[no-any-return]


def _order_request(**order_changes: Any) -> dict[str, Any]:
    order = lev_order("d1", "p1", 500, date.today())
    order.update(order_changes)
    body = hook_request("order-sign", patient_resources())
    body["context"]["draftOrders"] = draft_bundle(order)
    return body


def _served_card(client: FlaskClient) -> str:
    response = _post(client, PATIENT_VIEW, hook_request("patient-view", patient_resources()))
    assert response.status_code == 200
    return str(response.get_json()["cards"][0]["uuid"])


def _with_raw_surrogate(body: dict[str, Any]) -> bytes:
    """The body with MARK replaced by the bytes ED A0 80 (a UTF-16 surrogate encoded as if UTF-8)."""
    return json.dumps(body).encode().replace(MARK.encode(), b"\xed\xa0\x80")


def _with_escaped_surrogate(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode().replace(MARK.encode(), b"\\ud800")


SURROGATE_FORMS = {"escaped": _with_escaped_surrogate, "raw bytes": _with_raw_surrogate}


@pytest.mark.parametrize("form", SURROGATE_FORMS)
def test_surrogate_in_patient_id_is_400(client: FlaskClient, form: str) -> None:
    body = hook_request("patient-view", patient_resources(), patient=MARK)
    _bad_request(_post(client, PATIENT_VIEW, SURROGATE_FORMS[form](body)))


@pytest.mark.parametrize("form", SURROGATE_FORMS)
def test_surrogate_in_hook_instance_is_400(client: FlaskClient, form: str) -> None:
    body = hook_request("patient-view", patient_resources())
    body["hookInstance"] = MARK
    _bad_request(_post(client, PATIENT_VIEW, SURROGATE_FORMS[form](body)))


@pytest.mark.parametrize("form", SURROGATE_FORMS)
def test_surrogate_in_draft_order_id_is_400(client: FlaskClient, form: str) -> None:
    _bad_request(_post(client, ORDER_SIGN, SURROGATE_FORMS[form](_order_request(id=MARK))))


@pytest.mark.parametrize("form", SURROGATE_FORMS)
def test_surrogate_in_feedback_card_is_400(client: FlaskClient, form: str) -> None:
    body = {"feedback": [{"card": MARK, "outcome": "accepted"}]}
    _bad_request(_post(client, FEEDBACK, SURROGATE_FORMS[form](body)))


@pytest.mark.parametrize("form", SURROGATE_FORMS)
def test_surrogate_in_user_comment_is_400(client: FlaskClient, form: str) -> None:
    card = _served_card(client)
    body = {"feedback": [{"card": card, "outcome": "overridden", "overrideReason": {"userComment": MARK}}]}
    _bad_request(_post(client, FEEDBACK, SURROGATE_FORMS[form](body)))


def test_valid_surrogate_pair_is_accepted(client: FlaskClient) -> None:
    """An emoji escaped as a UTF-16 pair is valid Unicode: the request is served."""
    body = hook_request("patient-view", patient_resources())
    body["context"]["userId"] = MARK
    data = json.dumps(body).encode().replace(MARK.encode(), b"Practitioner/\\ud83d\\ude00")
    assert _post(client, PATIENT_VIEW, data).status_code == 200


def test_nesting_a_thousand_deep_is_400(client: FlaskClient) -> None:
    data = b'{"hook": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    outcome = _bad_request(_post(client, PATIENT_VIEW, data))
    assert "nests deeper" in outcome["issue"][0]["diagnostics"]


def test_nesting_nine_hundred_deep_inside_a_prefetch_resource_is_400(client: FlaskClient) -> None:
    body = hook_request("patient-view", patient_resources())
    body["prefetch"]["patient"]["extension"] = MARK
    deep = "[" * 900 + "]" * 900
    _bad_request(_post(client, PATIENT_VIEW, json.dumps(body).replace(f'"{MARK}"', deep).encode()))


def test_huge_integer_in_observation_value_is_400(client: FlaskClient) -> None:
    prefetch = patient_resources()
    prefetch["weight"]["entry"][0]["resource"]["valueQuantity"]["value"] = MARK
    body = json.dumps(hook_request("patient-view", prefetch)).replace(f'"{MARK}"', "1" + "0" * 309)
    outcome = _bad_request(_post(client, PATIENT_VIEW, body.encode()))
    assert "outside" in outcome["issue"][0]["diagnostics"]


def test_float_overflowing_to_infinity_is_400(client: FlaskClient) -> None:
    prefetch = patient_resources()
    prefetch["weight"]["entry"][0]["resource"]["valueQuantity"]["value"] = MARK
    body = json.dumps(hook_request("patient-view", prefetch)).replace(f'"{MARK}"', "1e309")
    _bad_request(_post(client, PATIENT_VIEW, body.encode()))


def test_huge_integer_in_timing_frequency_is_400(client: FlaskClient) -> None:
    body = _order_request()
    body["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = MARK
    _bad_request(_post(client, ORDER_SIGN, json.dumps(body).replace(f'"{MARK}"', "9" * 400).encode()))


def test_largest_accepted_frequency_is_not_an_error(client: FlaskClient) -> None:
    """A frequency at the number bound is absurd but parseable: the mapping must not fail on it."""
    body = _order_request()
    body["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 10**15
    assert _post(client, ORDER_SIGN, body).status_code < 500


def test_selections_not_a_list_is_400(client: FlaskClient) -> None:
    body = hook_request("order-select", patient_resources())
    body["context"]["draftOrders"] = draft_bundle(lev_order("d1", "p1", 500, date.today()))
    for selections in (7, "MedicationRequest/d1", {"a": 1}, [3]):
        body["context"]["selections"] = selections
        outcome = _bad_request(_post(client, ORDER_SELECT, body))
        assert "selections" in outcome["issue"][0]["diagnostics"]


def test_access_token_outside_latin1_is_400(client: FlaskClient) -> None:
    body = hook_request("patient-view", None, fhirServer="http://127.0.0.1:9/fhir",
                        fhirAuthorization={"access_token": "tök€n-Ω", "token_type": "Bearer"})
    _bad_request(_post(client, PATIENT_VIEW, body), not_echoing="tök€n")


def test_unparseable_fhir_server_url_is_400(client: FlaskClient) -> None:
    body = hook_request("patient-view", None, fhirServer="http://[::1")
    outcome = _bad_request(_post(client, PATIENT_VIEW, body))
    assert "fhirServer" in outcome["issue"][0]["diagnostics"]


def test_validation_error_does_not_echo_the_input(client: FlaskClient) -> None:
    """A patient id of the wrong type, or too long, is named as a field, never repeated."""
    secret = "child-" + "4711" * 60
    body = hook_request("patient-view", patient_resources(), patient=secret)
    outcome = _bad_request(_post(client, PATIENT_VIEW, body), not_echoing="4711")
    assert "context.patientId" in outcome["issue"][0]["diagnostics"]
    body = hook_request("patient-view", patient_resources())
    body["context"]["patientId"] = 4711
    body["prefetch"] = {"child-4711-key": {"resourceType": 7}}
    _bad_request(_post(client, PATIENT_VIEW, body), not_echoing="4711")


def test_draft_orders_without_type_are_accepted(client: FlaskClient) -> None:
    """The CDS Hooks sandbox sends a draftOrders Bundle without type: served, not refused."""
    body = hook_request("order-sign", patient_resources())
    body["context"]["draftOrders"] = draft_bundle(lev_order("d1", "p1", 500, date.today()), sandbox=True)
    assert "type" not in body["context"]["draftOrders"]
    assert _post(client, ORDER_SIGN, body).status_code == 200


def test_strings_are_not_coerced(client: FlaskClient) -> None:
    """The specification's strings stay strings: a number for hookInstance or outcome is refused."""
    body = hook_request("patient-view", patient_resources())
    body["hookInstance"] = 12345
    _bad_request(_post(client, PATIENT_VIEW, body))
    _bad_request(_post(client, FEEDBACK, {"feedback": [{"card": _served_card(client), "outcome": 1}]}))


def test_parser_bounds() -> None:
    """The parser's own rules, each able to fail on its own."""
    assert nesting_depth('{"a": "[[[[", "b": [[{}]]}') == 4
    assert parse_json(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(JsonBodyError):
        parse_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    for bad in (b"NaN", b"[Infinity]", b"[1e309]", b"[-1e16]", b"[" + b"1" * 17 + b"]", b'"\\udc00"',
                b'"\\ud800\\u0041"', b'["\xff"]', b"{", b'"' + b"x" * (MAX_STRING_CHARS + 1) + b'"'):
        with pytest.raises(JsonBodyError):
            parse_json(bad)
    assert parse_json(b'"' + b"x" * MAX_STRING_CHARS + b'"') == "x" * MAX_STRING_CHARS
