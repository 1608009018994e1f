"""Worker processes that die with the process that started them, even when it is SIGKILLed.

Neither kind of radflow worker notices on its own that its parent is gone (measured: after
`kill -9` of a process running ingest's spawn pool, with one decode each, all nine of its
descendants were still alive 20 s later; issue 18 saw them 40 minutes after `make test`):
- a `ProcessPoolExecutor` worker waits on its call queue, whose write end it holds itself
  (a pickled `multiprocessing.Queue` carries both ends), so it never reads end-of-file;
- a forkserver child inherits the write end of the forkserver's "alive" pipe, so the
  forkserver, which exits at end-of-file on that pipe, waits for its own children;
- the resource tracker exits at end-of-file on its pipe, whose write end every one of
  these processes inherited: it outlives them all, and ends once they are gone.

`die_with_parent` makes a child end with its parent in two ways:
- Linux `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel kills the child when its parent
  ends, even while the child is stuck in C code holding the GIL (a hanging codec). The
  signal comes when the *thread* that started the child ends, so it is asked for only
  when the child was started from a main thread (a forkserver is single-threaded; pools
  from `process_pool` started on the main thread, see there);
- a daemon thread that waits on multiprocessing's parent sentinel (a pipe the parent
  holds open for its life) and exits the process when it closes: any platform, any
  thread of the parent, as long as the child runs Python now and then.

A command run with `subprocess.run` does not notice either (measured: the `dvc` command of
a build-dataset SIGKILLed mid-run ran on for 2.4 s, on a loaded machine longer, against the
rerun's own); `run_tied` gives it the same parent-death signal.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from pipelines.errors import MisusedApi

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
ORPHANED_EXIT_CODE = 1


def process_pool(workers: int, start_method: str) -> ProcessPoolExecutor:
    """A process pool whose workers end when this process ends, SIGKILL included.

    Each worker starts in a `submit` (or `map`), from the thread that calls it. Create the
    pool and submit to it on the stage's main thread (the `radflow` command's, or the
    Airflow task process's): then the kernel also kills the workers when this process
    dies. A pool created on another thread gets only the parent-sentinel watch (see the
    module docstring): with the kernel's signal its workers would die with that thread.

    Args:
        workers: the number of worker processes.
        start_method: "spawn" or "forkserver" ("fork" would copy this process's threads,
            sockets and database connections into the workers).

    Raises:
        MisusedApi: `workers` is below 1 or `start_method` is not one of those two.
    """
    if workers < 1:
        raise MisusedApi(f"a process pool needs at least 1 worker, got {workers}")
    if start_method not in ("spawn", "forkserver"):
        raise MisusedApi(f"start method must be 'spawn' or 'forkserver', got {start_method!r}")
    on_main_thread = threading.current_thread() is threading.main_thread()
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(start_method),
                               initializer=die_with_parent, initargs=(on_main_thread,))


def die_with_parent(kernel_signal: bool = True) -> None:
    """Make this multiprocessing child end when the process that started it ends.

    Call it first thing in the child: as a pool's `initializer`, or at the top of a
    `Process` target. If the parent is already gone, the child exits here at once.

    Args:
        kernel_signal: also ask Linux for SIGKILL at the parent's death; only when the
            thread of the parent that started this child lives as long as the child.

    Raises:
        MisusedApi: this process was not started by multiprocessing.
        OSError: the kernel refused the parent-death signal.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        raise MisusedApi(f"die_with_parent() called in process {os.getpid()}, "
                         "which multiprocessing did not start")
    _release_inherited_forkserver()
    if kernel_signal and sys.platform == "linux":
        _kill_me_when_parent_dies()
    # The parent may have died before the kernel was asked: then no signal will come. Its
    # sentinel is closed by then. (os.getppid() cannot tell: a forkserver child's OS parent
    # is the forkserver, and its sentinel is the requesting process's.)
    if not parent.is_alive():
        os._exit(ORPHANED_EXIT_CODE)
    threading.Thread(target=_exit_after, args=(parent,), name="radflow-parent-watch",
                     daemon=True).start()


def run_tied(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run(argv, **kwargs)`, its child killed by the kernel if this process ends first.

    The parent-death signal follows the thread that started the child, and `subprocess.run`
    holds that thread until the child ends: only the death of this process can send it.

    Raises:
        Whatever `subprocess.run` raises.
    """
    return subprocess.run(list(argv), preexec_fn=_tied_to(os.getpid()), **kwargs)


def _tied_to(parent: int) -> Callable[[], None] | None:
    """A `preexec_fn` that asks for SIGKILL at the parent's death (None off Linux).

    The C function is looked up here, in the parent: between fork and exec the child only
    calls it. If the parent died before the request, the child exits at once.
    """
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def request() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG, SIGKILL) failed")
        if os.getppid() != parent:
            os._exit(ORPHANED_EXIT_CODE)

    return request


def _kill_me_when_parent_dies() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG, SIGKILL) failed in process {os.getpid()}: "
                             f"{os.strerror(errno)}")


def _release_inherited_forkserver() -> None:
    """Close the forkserver "alive" pipe a forkserver child inherits (None elsewhere).

    While any process holds its write end the forkserver stays up, and with it this child's
    parent-death signal would never come. Without it, a later forkserver request from this
    process starts a forkserver of its own.
    """
    from multiprocessing import forkserver

    server = forkserver._forkserver  # type: ignore[attr-defined]
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        os.close(fd)
        setattr(server, "_forkserver_alive_fd", None)  # noqa: B010 - private, untyped


def _exit_after(parent: BaseProcess) -> None:
    parent.join()
    os._exit(ORPHANED_EXIT_CODE)
