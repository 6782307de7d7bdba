"""The console tests' helpers serve the graph tests too: one torch thread, small processors."""

from tests.console.conftest import one_thread, small_processors  # noqa: F401  (fixtures)
