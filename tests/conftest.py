"""Shared fixtures of the unit tests."""

import sys

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: tiny models gain nothing from more, and a shared CPU stalls them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def suite_imports(monkeypatch):
    """Collecting a suite in this process imports its conftest.py and adds its directory to sys.path:
    both are put back afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "conftest", raising=False)
