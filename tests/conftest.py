"""Shared fixtures. Tests never touch the network and build everything they need."""

from __future__ import annotations

import os
import uuid

import pytest

import rlvr


@pytest.fixture
def unique_id():
    """Fresh env ids / verifier names, unregistered after the test."""
    made: list[tuple[str, str]] = []

    def new(kind: str = "env") -> str:
        token = uuid.uuid4().hex[:8]
        name = f"test{token}/Env-v0" if kind == "env" else f"test-verifier-{token}"
        made.append((kind, name))
        return name

    yield new
    for kind, name in made:
        try:
            (rlvr.unregister_env if kind == "env" else rlvr.unregister_verifier)(name)
        except rlvr.NotRegisteredError:
            pass


@pytest.fixture
def problem():
    return rlvr.Problem(id="p1", prompt="What is 2 + 2?", reference="4")


# CI runs derandomised so a red build is reproducible; locally hypothesis explores.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
