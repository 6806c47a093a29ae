"""Child processes that end when the process that started them ends, even when it is killed
outright (SIGKILL leaves it no chance to stop them).

On Linux the kernel does it: ``PR_SET_PDEATHSIG`` makes it send a chosen signal to a child
when its parent goes. Two ways to ask for it:

* ``tethered(argv, sig)`` runs ``argv`` (any program: ``redis-server``, ``postgres``) through a
  tiny exec wrapper that sets the signal and then becomes the program (same pid), taking on
  another user's identity first when asked (a change of identity clears the signal).
* ``follow_parent(parent, grace)``, called by a Python child itself (a worker), sets SIGTERM
  and also starts a watch that kills the process if it has not ended ``grace`` seconds after
  its parent went (a drain stuck in a handler that never returns).

The kernel sends the signal when the *thread* that started the child ends, not the process:
start tethered children from a thread that lives as long as they should (the main thread).
Elsewhere than Linux the signal is not available: ``tethered`` returns ``None`` and
``follow_parent`` relies on its watch alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

__all__ = ["STOP_MARGIN", "follow_parent", "supported", "tethered"]

log = logging.getLogger("taskflow.tether")

STOP_MARGIN = 5.0
"""Seconds a worker has, after its drain grace, to hand back its tasks and exit before it is
killed (by ``taskflow dev`` on Ctrl-C, or by its own watch once its parent is gone)."""
PARENT_POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1

# The wrapper runs as the caller (-I -S: the standard library only, no environment), takes
# on the identity the program should have (when given: a change of identity would clear the
# signal, so it comes first), asks for the signal, and becomes the program. Its arguments:
# the pid it expects as its parent, the signal number, uid and gid (-1: unchanged), argv.
# A parent that ended before the signal was set is noticed through getppid().
_EXEC_WRAPPER = f"""\
import ctypes, os, sys
parent, sig, uid, gid = (int(a) for a in sys.argv[1:5])
argv = sys.argv[5:]
program = argv[0]
if os.sep not in program:  # found while this identity can still read the whole interpreter
    for directory in os.get_exec_path():
        if os.access(os.path.join(directory, program), os.X_OK):
            program = os.path.join(directory, program)
            break
prctl = ctypes.CDLL(None, use_errno=True).prctl
if gid >= 0:
    os.setgroups([])
    os.setgid(gid)
if uid >= 0:
    os.setuid(uid)
prctl({_PR_SET_PDEATHSIG}, sig)
if os.getppid() != parent:
    os.kill(os.getpid(), sig)
    sys.exit(128 + sig)
os.execv(program, argv)
"""


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def supported() -> bool:
    """Whether the kernel can signal a child when its parent ends (Linux)."""
    return _prctl() is not None


def tethered(
    argv: Sequence[str], sig: signal.Signals, *, uid: int | None = None, gid: int | None = None
) -> list[str] | None:
    """``argv`` made to receive ``sig`` when the calling thread ends, and to run as ``uid`` /
    ``gid`` (with no supplementary groups) when given: start the result as this process's
    user, without a change of identity. ``None`` where the signal is not supported. The
    program keeps the pid of the process started from the result."""
    if not supported():
        return None
    python = os.path.realpath(sys.executable)
    ids = [str(-1 if uid is None else uid), str(-1 if gid is None else gid)]
    return [python, "-I", "-S", "-c", _EXEC_WRAPPER, str(os.getpid()), str(int(sig)), *ids, *argv]


def follow_parent(parent: int, grace: float) -> None:
    """End this process when ``parent`` ends: SIGTERM at once (a drain), SIGKILL if it still
    runs ``grace`` seconds later. Call it from the main thread at start-up."""
    prctl = _prctl()
    if prctl is not None and prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM)) != 0:
        errno = ctypes.get_errno()
        log.warning("cannot ask the kernel to stop this process with its parent (errno %d)", errno)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        log.warning("parent process %d is gone; stopping", parent)
        with contextlib.suppress(ProcessLookupError):
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        log.error("still running %.0fs after the parent went; killing this process", grace)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()
