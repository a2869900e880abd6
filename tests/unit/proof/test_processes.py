"""Which processes a component's memory and CPU are summed over (real processes, /proc)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tools.proof.processes import group_cpu_seconds, members

# A leader that starts a child in a session of its own (as PostgreSQL's postmaster does),
# prints the child's pid, then waits.
LEADER = """
import subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-c", "import time; sum(range(3_000_000)); time.sleep(60)"],
    start_new_session=True,
)
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def leader_and_child() -> Iterator[tuple[int, int]]:
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    try:
        yield leader.pid, child
    finally:
        subprocess.run(["kill", str(child)], check=False)
        leader.kill()
        leader.wait()


def test_a_descendant_in_a_session_of_its_own_counts_with_its_component(
    leader_and_child: tuple[int, int],
) -> None:
    leader, child = leader_and_child
    found = members({"postgres": leader})
    assert found[leader] == "postgres"
    assert found[child] == "postgres"


def test_cpu_seconds_only_grow(leader_and_child: tuple[int, int]) -> None:
    leader, _ = leader_and_child
    first = group_cpu_seconds({"postgres": leader})["postgres"]
    time.sleep(0.3)
    assert group_cpu_seconds({"postgres": leader})["postgres"] >= first > 0.0
