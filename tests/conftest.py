import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))

import harness  # noqa: E402


@pytest.fixture(scope="session")
def agent():
    """Path to the gitops-agent binary (GITOPS_AGENT_BIN)."""
    p = harness.agent_bin()
    if not p.exists():
        pytest.fail(f"agent binary {p} not found; build it (cargo build) or set GITOPS_AGENT_BIN")
    return p


def pytest_report_header(config):
    return [f"agent: {harness.agent_bin()}  ansible bin dir: {harness.ansible_bin_dir()}"
            + ("  [ORACLE-ONLY: agent side is a second ansible run]" if harness.oracle_only() else "")]
