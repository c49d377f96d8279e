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
from runestone.mcp.gateway import Forwarded, Gate, Gateway

ACTION = Action("mcp__time__get_current_time", {"timezone": "UTC"}, "", agent="mcp")


class _Enrolled:
    """An approvals service whose runtime is enrolled: `check` may ask the control plane."""

    remote = object()


@pytest.fixture
def gateway(policy):
    keeper = Gatekeeper.from_layout(layout(), policy_file=policy)
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
    assert decision.decision == "allow" and decision.request_id  # audited


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


def test_an_approvals_service_that_cannot_be_made_leaves_the_decision_to_a_worker(gateway):
    """As before calls were decided on the loop: an allowed call never needs the service,
    so a broken one (its key unreadable, say) must not turn the call into an error."""
    gate, threads = gateway

    def broken():
        raise OSError("the signing key cannot be read")

    gate.gatekeeper._approvals_factory = broken
    decision = _decide(gate)
    assert threads and threads[0] is not threading.main_thread()
    assert decision.decision == "allow"
