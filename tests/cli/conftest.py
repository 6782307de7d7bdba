"""Fixtures of the command tests: a tiny trained head (``mixrep mix``) and one torch thread
(the console commands run small tensors)."""

from tests.console.conftest import one_thread  # noqa: F401  (fixtures)
from tests.inference.conftest import tiny_head  # noqa: F401
