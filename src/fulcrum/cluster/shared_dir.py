"""The shared-memory directory of a multi-process Fulcrum, and the removal of the directories
that killed instances left behind.

Each directory holds a lock file (``LOCK_NAME``) that the supervisor and every worker keep
locked, shared (``flock``), for their whole lives. The kernel drops a process's lock when it
dies, in whatever container or PID namespace it ran. So a cleaner that gets the lock
exclusively (without waiting) has proof that no process of that instance is alive, and only
then removes the directory. A PID proves nothing: the processes of an instance in another
container are invisible here, and their PIDs may belong to someone else.

The lock file appears under its name already locked (it is locked under a temporary name and
renamed), so no cleaner can catch a new directory unlocked. A directory without the lock file
(being created, or left by a version before locks) is never removed.
"""
from __future__ import annotations

import fcntl
import glob
import os
import shutil
import tempfile

PREFIX = "fulcrum-"
LOCK_NAME = "owner.lock"


def shared_root() -> str:
    """Where the directories go: /dev/shm (memory) on Linux; elsewhere the temporary
    directory, whose page cache does the same job."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def create(root: str) -> tuple[str, int]:
    """A new directory under ``root`` for this instance, and the fd holding its lock:
    ``(path, fd)``. The lock lasts until the fd is closed (or this process dies)."""
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root)
    staging = os.path.join(path, LOCK_NAME + ".new")
    fd = os.open(staging, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.rename(staging, os.path.join(path, LOCK_NAME))
    except OSError:
        os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path, fd


def hold(path: str) -> int:
    """Take a shared hold on the directory ``path`` (a worker's, for its whole life): the fd.
    OSError naming the directory when it is gone."""
    try:
        fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDONLY)
    except OSError as exc:
        raise OSError(exc.errno, f"shared directory {path}: cannot open its lock: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:  # a cleaner holds it: the directory is being removed
        os.close(fd)
        raise OSError(exc.errno, f"shared directory {path}: being removed ({exc.strerror})") from None
    return fd


def remove_stale(root: str) -> list[str]:
    """Remove the directories under ``root`` whose every process is gone (their lock is free);
    the paths removed."""
    removed = []
    for path in glob.glob(os.path.join(root, PREFIX + "*")):
        try:
            fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDONLY)
        except OSError:
            continue  # no lock file: being created, or not ours to judge
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # held: its instance lives
        try:
            if os.path.exists(path):  # another cleaner may have been first
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        finally:
            os.close(fd)
    return removed
