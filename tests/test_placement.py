"""Core placement of the simulator and the client when tpsbench starts the reference endpoint."""

from __future__ import annotations

import doctest
import os

from tpsbench.load import placement
from tpsbench.load.placement import plan_cores


def test_the_simulator_gets_a_core_of_its_own_when_there_are_two() -> None:
    assert plan_cores([0, 1, 2, 3], workers=3) == placement.Placement(
        (3,), (0, 1, 2), "simulator on CPU 3, 3 client workers on CPU 0,1,2"
    )
    two = plan_cores([0, 1], workers=2)
    assert two.simulator == (1,) and two.client == (0,) and "2 workers share 1 core" in two.reason
    alone = plan_cores([5])
    assert alone.simulator is None and alone.client is None and not alone.as_dict()["pinned"]
    assert doctest.testmod(placement).failed == 0


def test_applied_pins_this_process_and_restores_its_affinity() -> None:
    before = os.sched_getaffinity(0)
    plan = plan_cores(before)
    with plan.applied():
        assert placement.current() is plan
        if plan.client:
            assert os.sched_getaffinity(0) == set(plan.client)
    assert placement.current() is None and os.sched_getaffinity(0) == before
