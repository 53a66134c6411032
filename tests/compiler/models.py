"""Transitional re-export: the model zoo moved to tests/support/models.py; import `from tests.support import models`."""
from tests.support.models import *  # noqa: F401,F403
