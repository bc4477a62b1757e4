"""Fixtures of the media tests; the helpers themselves live in tests/media_factory.py (importable by name)."""

from __future__ import annotations

import pytest
from media_factory import Made, make_media


@pytest.fixture
def media(tmp_path):
    """Factory: ``media("name.mp4", fps=..., ...)`` -> :class:`Made` in a fresh temporary directory."""

    def factory(name: str = "v.mp4", **kwargs) -> Made:
        return make_media(tmp_path / name, **kwargs)

    return factory
