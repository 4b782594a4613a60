"""Property tests: no request body, however malformed, makes the service answer 500."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.plugin.fixtures import container_paths, draft_bundle, hook_request, lev_order, patient_resources

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
PATHS = ["/cds-services/epidose-patient-view", "/cds-services/epidose-order-sign",
         "/cds-services/epidose-order-select", "/cds-services/epidose-patient-view/feedback"]
CHECK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid(hook: str) -> dict[str, Any]:
    body = hook_request(hook, patient_resources(n_extra_observations=2))
    if hook != "patient-view":
        body["context"]["draftOrders"] = draft_bundle(lev_order("d1", "p1", 500, date.today()))
    return body


@CHECK
@given(body=json_values, path=st.sampled_from(PATHS))
def test_arbitrary_json_never_gives_500(client: FlaskClient, body: Any, path: str) -> None:
    """Any JSON document posted to a hook or feedback endpoint gets a non-5xx answer."""
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code < 500, response.get_data(as_text=True)


@CHECK
@given(data=st.data(), hook=st.sampled_from(["patient-view", "order-sign", "order-select"]))
def test_mutated_valid_requests_never_give_500(client: FlaskClient, data: st.DataObject, hook: str) -> None:
    """A valid request with one element replaced or deleted anywhere gets a non-5xx answer."""
    body = _valid(hook)
    for _ in range(data.draw(st.integers(1, 3))):
        containers = container_paths(body)
        target_path = data.draw(st.sampled_from(containers))
        target: Any = body
        for step in target_path:
            target = target[step]
        key = data.draw(st.sampled_from(list(target.keys()) if isinstance(target, dict) else list(range(len(target)))))
        if data.draw(st.booleans()):
            target[key] = data.draw(json_values)
        elif isinstance(target, dict):
            del target[key]
        else:
            target.pop(key)
    path = {"patient-view": PATHS[0], "order-sign": PATHS[1], "order-select": PATHS[2]}[hook]
    response = client.post(path, data=json.dumps(copy.deepcopy(body)), content_type="application/json")
    assert response.status_code < 500, response.get_data(as_text=True)
