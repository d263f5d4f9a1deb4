"""The lifecycle state machine, driven by hand with a real (sleeping) child to signal."""

from __future__ import annotations

import signal
import subprocess

from km.proxy.supervisor import CLOSING, KILLING, RUNNING, TERMINATING, Supervisor, exit_code_of


def test_exit_codes_as_a_shell_reports_them() -> None:
    assert exit_code_of(0) == 0
    assert exit_code_of(3 << 8) == 3
    assert exit_code_of(signal.SIGKILL) == 128 + 9
    assert exit_code_of(signal.SIGTERM) == 128 + 15


def test_escalation_close_then_term_then_kill() -> None:
    child = subprocess.Popen(["sleep", "30"], process_group=0)
    try:
        sup = Supervisor(child.pid, grace_s=1.0)
        assert sup.phase == RUNNING
        assert sup.client_done(now=100.0) is True
        assert sup.client_done(now=100.1) is False  # once only
        assert (sup.phase, sup.deadline) == (CLOSING, 101.0)
        sup.tick(100.5)
        assert sup.phase == CLOSING and child.poll() is None
        sup.tick(101.0)
        assert sup.phase == TERMINATING
        assert child.wait(5) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()


def test_sigterm_to_km_forwards_and_arms_the_kill_deadline() -> None:
    child = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; echo ready; sleep 30 & wait"],
        process_group=0,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline() == b"ready\n"  # the trap is set
        sup = Supervisor(child.pid, grace_s=0.5)
        sup.got_signal(signal.SIGTERM, now=10.0)
        assert (sup.phase, sup.deadline) == (TERMINATING, 10.5)
        sup.tick(10.5)
        assert sup.phase == KILLING
        assert child.wait(5) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        sup.clean_up_group()
