"""The shared directory's lock, with real files and flock in one process (locks taken through
separate opens conflict as between processes): a directory is removed only when nothing holds
its lock, whatever PID its name carries. Through real supervisors: tests/cluster/test_workers.py.
"""
from __future__ import annotations

import os

import pytest

from fulcrum.cluster import shared_dir


def renamed(path: str, pid: int) -> str:
    """``path`` under a name carrying ``pid`` instead of ours."""
    new = os.path.join(os.path.dirname(path), f"{shared_dir.PREFIX}{pid}-{os.path.basename(path)}")
    os.rename(path, new)
    return new


def unused_pid() -> int:
    return next(pid for pid in range(4_194_303, 1, -1) if not os.path.exists(f"/proc/{pid}"))


def test_a_held_directory_is_kept_and_a_released_one_removed(tmp_path):
    live, live_fd = shared_dir.create(str(tmp_path))
    dead, dead_fd = shared_dir.create(str(tmp_path))
    os.close(dead_fd)  # its instance was killed: the kernel dropped the lock
    try:
        assert shared_dir.remove_stale(str(tmp_path)) == [dead]
        assert os.path.isdir(live) and not os.path.exists(dead)
    finally:
        os.close(live_fd)
    assert shared_dir.remove_stale(str(tmp_path)) == [live]


@pytest.mark.parametrize("pid", [
    pytest.param(unused_pid(), id="pid-unknown-here"),   # an instance in another PID namespace
    pytest.param(os.getpid(), id="pid-alive-here"),      # a PID reused by someone else
])
def test_the_pid_in_the_name_decides_nothing(tmp_path, pid):
    held, fd = shared_dir.create(str(tmp_path))
    released, released_fd = shared_dir.create(str(tmp_path))
    os.close(released_fd)
    held, released = renamed(held, pid), renamed(released, pid)
    try:
        assert shared_dir.remove_stale(str(tmp_path)) == [released]
        assert os.path.isdir(held)
    finally:
        os.close(fd)


def test_a_workers_hold_keeps_the_directory_after_its_supervisor_is_gone(tmp_path):
    path, supervisor = shared_dir.create(str(tmp_path))
    worker = shared_dir.hold(path)
    os.close(supervisor)  # killed; its worker still drains
    try:
        assert shared_dir.remove_stale(str(tmp_path)) == []
    finally:
        os.close(worker)
    assert shared_dir.remove_stale(str(tmp_path)) == [path]


def test_a_directory_without_its_lock_file_is_not_judged(tmp_path):
    # Being created (the lock file is renamed into place already locked), or another program's.
    (tmp_path / f"{shared_dir.PREFIX}1-x").mkdir()
    assert shared_dir.remove_stale(str(tmp_path)) == []
    assert (tmp_path / f"{shared_dir.PREFIX}1-x").is_dir()


def test_hold_names_a_directory_that_is_gone(tmp_path):
    with pytest.raises(OSError, match=f"shared directory {tmp_path}/gone: cannot open its lock"):
        shared_dir.hold(str(tmp_path / "gone"))
