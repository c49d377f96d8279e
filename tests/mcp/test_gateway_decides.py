"""Where the gateway makes a call's decision: on its event loop when nothing else is in
flight and no control plane can be asked, else in a worker thread, so that other calls,
answers and cancellations keep moving while one is decided."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runestone.actions import Action
from runestone.gatekeeper import Gatekeeper
from runestone.home import layout
from runestone.identity import create_identity
from runestone.mcp.gateway import Forwarded, Gate, Gateway

ACTION = Action("mcp__time__get_current_time", {"timezone": "UTC"}, "", agent="mcp")


class _Enrolled:
    """An approvals service whose runtime is enrolled: `check` may ask the control plane."""

    remote = object()


@pytest.fixture
def gateway(isolated_home):
    create_identity(layout())
    keeper = Gatekeeper.from_layout(layout(), preset="default")
    threads: list[threading.Thread] = []
    check = keeper.check

    def recording_check(*args, **kwargs):
        threads.append(threading.current_thread())
        return check(*args, **kwargs)

    keeper.check = recording_check  # type: ignore[method-assign]
    gate = Gateway(None, gatekeeper=keeper)  # type: ignore[arg-type]
    gate.gates[1] = Gate(modern=False)  # the call being decided
    return gate, threads


def _decide(gate: Gateway):
    return asyncio.run(gate._decide(ACTION))


def test_a_lone_call_is_decided_on_the_event_loop(gateway):
    gate, threads = gateway
    decision = _decide(gate)
    assert threads == [threading.main_thread()]
    assert decision.request_id  # audited: its entries are on disk


def test_a_call_beside_another_in_flight_is_decided_in_a_worker(gateway):
    gate, threads = gateway
    gate.forwarded[7] = Forwarded("tools/call", False)
    _decide(gate)
    gate.forwarded.clear()
    gate.gates[2] = Gate(modern=False)
    _decide(gate)
    assert len(threads) == 2
    assert threading.main_thread() not in threads


def test_an_enrolled_runtime_decides_in_a_worker(gateway):
    """Its `check` may ask the control plane over the network: never on the loop. (Only
    where `check` runs is looked at here: an enrolled `check` is tested in tests/remote.)"""
    gate, threads = gateway
    gate.gatekeeper.approvals = _Enrolled()
    gate.gatekeeper.check = lambda *args, **kwargs: threads.append(threading.current_thread())
    _decide(gate)
    assert threads and threads[0] is not threading.main_thread()
