"""Fixtures for the end-to-end suites: the session's demo model packages, the local runtime, and
module-scoped variants for suites that share one expensive stack (a supervisor, a Celery worker,
a Prometheus) across their tests. Committed rows of a module are flushed after it; every process
started here is stopped at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection
from django.test.utils import setup_databases, teardown_databases

from deployments.runtime.local import LocalRuntime
from tests.monitoring.conftest import demo_packages  # noqa: F401  (session-scoped packages)
from tests.runtime.conftest import (  # noqa: F401  (local_runtime is a fixture)
    FAST_SUPERVISOR_ARGS,
    SupervisedRuntime,
    local_runtime,
)
from tests.serving.test_review_serving import (  # noqa: F401  (module-scoped fixtures)
    reviewable,
    reviewable_model,
    rows,
)
from tests.support.prometheus import prometheus_module_factory  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def module_committed_db(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Database access for a whole module, in autocommit (as `transactional_db`, so a worker
    process sees the rows), for tests that share rows across the module. The tests using it
    take no `db` mark; the database is flushed after the module, as a transactional test's is."""
    with django_db_blocker.unblock():
        created = None
        if connection.settings_dict["NAME"] != connection.creation._get_test_db_name():
            # pytest-django creates the test database only when some collected test asks for
            # `db` or the django_db mark; a module sharing committed rows asks for neither.
            created = setup_databases(verbosity=0, interactive=False, aliases={DEFAULT_DB_ALIAS})
        try:
            yield
        finally:
            call_command("flush", verbosity=0, interactive=False)
            if created is not None:
                teardown_databases(created, verbosity=0)


@pytest.fixture(scope="module")
def module_local_runtime(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SupervisedRuntime]]:
    """`local_runtime` for a whole module: `module_local_runtime(serving_command=...,
    progress_deadline_s=..., **supervisor_args)` -> SupervisedRuntime with its supervisor
    running; every supervisor and child it started is stopped after the module."""
    made: list[SupervisedRuntime] = []

    def factory(
        *,
        serving_command: list[str] | None = None,
        progress_deadline_s: float = 60.0,
        **supervisor_args: Any,
    ) -> SupervisedRuntime:
        state_dir = tmp_path_factory.mktemp("runtime-state")
        kwargs: dict[str, Any] = {"progress_deadline_s": progress_deadline_s}
        if serving_command is not None:
            kwargs["serving_command"] = serving_command
        runtime = LocalRuntime(state_dir, **kwargs)
        supervised = SupervisedRuntime(
            state_dir, runtime, {**FAST_SUPERVISOR_ARGS, **supervisor_args}
        )
        made.append(supervised)
        return supervised.start()

    yield factory
    for supervised in made:
        supervised.teardown()
