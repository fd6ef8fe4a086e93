from tests.monitoring.conftest import demo_packages  # noqa: F401  (session-scoped packages)
from tests.runtime.conftest import local_runtime  # noqa: F401
