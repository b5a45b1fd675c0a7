"""Schema-driven fuzzing: Schemathesis generates requests from the app's own OpenAPI (valid
and invalid bodies, parameters, headers) for every operation; none may produce a 5xx."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error

from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import running

EXAMPLES = 40  # per operation and mode


@pytest.mark.parametrize("unknown_category", ["unknown", "reject"])
def test_no_input_causes_a_server_error(
    settings_for: Callable[..., Settings], unknown_category: str
) -> None:
    statuses: Counter[int] = Counter()
    app_settings = settings_for(max_batch_size=50, unknown_category=unknown_category)
    with running(app_settings) as client:
        # The lifespan of `client` loaded the model; Schemathesis calls the same app.
        schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/predict", "/predict/batch", "/admin/reload"}
        for operation in operations:
            for mode in schemathesis.GenerationMode:

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                    database=None,
                )
                def no_server_error(case: schemathesis.Case) -> None:
                    response = case.call_and_validate(checks=[not_a_server_error])
                    statuses[response.status_code] += 1

                try:
                    no_server_error()
                except Unsatisfiable:
                    # nothing invalid to generate (an operation without parameters or body)
                    assert mode is schemathesis.GenerationMode.NEGATIVE
    assert statuses[200] > 0 and statuses[422] > 0, statuses
