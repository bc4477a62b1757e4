"""Fixtures of the rate tests: one tiny study built once per session, copied per test that writes."""

from __future__ import annotations

import shutil

import pytest
from rate_helpers import small_config

from foleygen.rate.study import create_study


@pytest.fixture(scope="session")
def built_study(tmp_path_factory):
    """The path of a study built once (tests that write copy it first)."""
    root = tmp_path_factory.mktemp("rate_sources")
    study = root / "study"
    assert create_study(study, small_config(root), log=lambda _: None) == 0
    return study


@pytest.fixture
def study(built_study, tmp_path):
    """A private copy of the shared study (its database may be written)."""
    dest = tmp_path / "study"
    shutil.copytree(built_study, dest)
    return dest
