"""Helpers shared by the tests: tiny generated datasets, the fast training config, sweeps run as a user would."""

from garbage_lit.records.folder import TEST_ACC, TEST_RECALL

__all__ = ["TEST_ACC", "TEST_RECALL"]
