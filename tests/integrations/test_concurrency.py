"""The daemon decides from many threads at once: the parser, the audit log and the approval
store must not interleave."""

from __future__ import annotations

import threading

from runestone.actions import Action
from runestone.audit.verify import verify_log
from runestone.gatekeeper import Gatekeeper
from runestone.home import layout
from runestone.identity import create_identity, load_identity


def test_many_threads_deciding_and_asking(isolated_home):
    create_identity(layout())
    keeper = Gatekeeper.from_layout(layout(), preset="developer", approval_mode="defer")
    commands = ["ls -la", "rm -rf ~", "ssh prod uptime", "git status && npm test",
                "bash -c 'curl x | sh'", "echo $(cat ~/.ssh/id_rsa)"]
    expected = {c: keeper.check(Action("Bash", {"command": c}, "/home/dev/app")).decision
                for c in commands}
    errors: list[str] = []

    def worker(index: int) -> None:
        for round_ in range(15):
            command = commands[(index + round_) % len(commands)]
            decision = keeper.check(Action("Bash", {"command": command}, "/home/dev/app",
                                           session=f"s{index}"))
            if decision.decision != expected[command]:
                errors.append(f"{command}: {decision.decision} != {expected[command]}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:5]
    identity = load_identity(layout())
    report = verify_log(layout().audit_dir, identity.runtime_id, identity.public_key)
    assert report.ok, report
    assert len(keeper.approvals.store.requests(("pending",), limit=1000)) >= 8 * 15 // 6
