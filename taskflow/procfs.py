"""What Linux's ``/proc`` tells about a process."""

from __future__ import annotations


class RssUnavailable(RuntimeError):
    """``/proc`` has no resident set size for the process (gone, a zombie, or not Linux)."""


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size in bytes of process ``pid`` (this process when None), from the
    ``VmRSS`` line of ``/proc/PID/status``; :class:`RssUnavailable` when there is none."""
    name = "self" if pid is None else str(pid)
    what = "this process" if pid is None else f"process {pid}"
    try:
        with open(f"/proc/{name}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # the kernel writes it in kB
    except (FileNotFoundError, ProcessLookupError):
        raise RssUnavailable(f"{what} is gone (or this is not Linux: no /proc)") from None
    # A zombie keeps its status file but has no memory left to report.
    raise RssUnavailable(f"no VmRSS for {what} (it has exited)")
