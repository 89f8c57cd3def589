# SharedBucketTable: BucketTable's decisions from buckets in a file shared by processes. Real
# files in a tmp dir and real processes: one bucket across tables and processes, a SIGKILLed
# lock holder blocks nobody, bounded memory (eviction, idle expiry), corrupt slots clamped, and
# Resources naming each filter's table after its place in the config.
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.config.model import Config
from fulcrum.filters.builder import FilterBuilder
from fulcrum.filters.rate_limit import RateLimit
from fulcrum.filters.resources import Resources
from fulcrum.filters.shared_buckets import _SLOT, SharedBucketTable, key_tag, table_bytes
from fulcrum.filters.token_bucket import BucketTable

T0 = 1000.0
SRC = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "src")


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "buckets")


@pytest.fixture
def open_table(path):
    """Opens tables (on ``path`` unless told) and closes them after the test."""
    tables = []

    def make(*args, at=path, **kwargs):
        table = SharedBucketTable(at, *args, **kwargs)
        tables.append(table)
        return table

    yield make
    for table in tables:
        table.close()


def allowed(table, tries: int, now: float, key: str = "c") -> list[bool]:
    return [table.take(key, now).allowed for _ in range(tries)]


def slot_offset(table: SharedBucketTable, key: str, way: int = 0) -> int:
    return (key_tag(key) & (table.groups - 1)) * 8 * 24 + way * 24


# --- the same decisions as BucketTable --------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 1000.0),
    burst=st.integers(1, 50),
    steps=st.lists(st.tuples(st.sampled_from("abc"), st.floats(0.0, 2.0), st.integers(1, 10)),
                   min_size=1, max_size=40),
)
def test_decisions_are_bucket_tables(rate, burst, steps):
    local = BucketTable(rate, float(burst), max_keys=1000)
    with tempfile.TemporaryDirectory() as tmp:
        shared = SharedBucketTable(os.path.join(tmp, "b"), rate, float(burst), max_keys=1000)
        try:
            now = T0
            for key, gap, tries in steps:
                now += gap
                for _ in range(tries):
                    assert shared.take(key, now) == local.take(key, now)
        finally:
            shared.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"rate": 0.0}, "rate must be > 0", id="zero-rate"),
        pytest.param({"rate": float("nan")}, "rate must be > 0", id="nan-rate"),
        pytest.param({"burst": 0.5}, "burst must be >= 1", id="burst-below-one"),
        pytest.param({"max_keys": 0}, "max_keys must be >= 1", id="no-keys"),
        pytest.param({"idle_after": 1.0}, r"idle_after must be >= burst / rate = 2 s", id="idle-before-full"),
    ],
)
def test_bad_parameters(path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SharedBucketTable(path, **{"rate": 1.0, "burst": 2.0, **kwargs})


@pytest.mark.parametrize(
    ("max_keys", "groups"),
    [
        pytest.param(1, 1, id="one-key"),
        pytest.param(4, 1, id="one-group"),       # two slots per key asked for
        pytest.param(5, 2, id="two-groups"),
        pytest.param(100_000, 32_768, id="default"),
    ],
)
def test_size_is_a_power_of_two_groups_of_eight(open_table, path, max_keys, groups):
    table = open_table(1.0, 2.0, max_keys=max_keys)
    assert table.groups == groups
    assert os.path.getsize(path) == table_bytes(max_keys) == groups * 8 * 24


def test_clock_stepping_back_refills_nothing(open_table):
    table = open_table(10.0, 20.0)
    allowed(table, 20, T0)
    assert allowed(table, 1, T0 - 5.0) == [False]
    assert allowed(table, 2, T0 + 0.1) == [True, False]  # the later stamp was kept


# --- one bucket across tables and processes ---------------------------------------------------


def test_two_tables_on_one_file_share_a_bucket(open_table):
    a, b = open_table(0.001, 5.0), open_table(0.001, 5.0)
    assert [a.take("c", T0).allowed, b.take("c", T0).allowed, a.take("c", T0).allowed,
            b.take("c", T0).allowed, a.take("c", T0).allowed] == [True] * 5
    assert allowed(b, 2, T0) + allowed(a, 2, T0) == [False] * 4
    assert b.take("c", T0).remaining == 0
    assert len(a) == len(b) == 1


TAKER = """
import sys, time
sys.path.insert(0, {src!r})
from fulcrum.filters.shared_buckets import SharedBucketTable
table = SharedBucketTable({path!r}, 0.001, 50.0, max_keys=64)
print("ready", flush=True)
sys.stdin.readline()
print(sum(table.take("c", time.monotonic()).allowed for _ in range(200)), flush=True)
"""


def test_two_processes_share_one_allowance(path):
    children = [subprocess.Popen([sys.executable, "-c", TAKER.format(src=SRC, path=path)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(2)]
    for child in children:
        assert child.stdout.readline() == "ready\n"
    for child in children:  # both are ready: let them race
        child.stdin.write("go\n")
        child.stdin.flush()
    counts = [int(child.communicate()[0]) for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert sum(counts) == 50


LOCKER = """
import fcntl, os, sys, time
fd = os.open({path!r}, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, {group})
print("locked", flush=True)
time.sleep(600)
"""


def test_a_lock_holder_killed_blocks_nobody(open_table, path):
    table = open_table(1.0, 2.0, max_keys=64)
    group = key_tag("c") & (table.groups - 1)
    child = subprocess.Popen([sys.executable, "-c", LOCKER.format(path=path, group=group)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "locked\n"
        fd = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(OSError):  # the child really holds the group's lock
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, group)
            child.send_signal(signal.SIGKILL)
            child.wait()
            # Checked without blocking, so a lock that outlived its holder fails the test, not hangs it.
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, group)
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, group)
        finally:
            os.close(fd)  # (drops this process's locks on the file: none are held by now)
        assert child.returncode == -signal.SIGKILL
        assert table.take("c", T0).allowed
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# --- bounded memory ------------------------------------------------------------------------


def fill_one_group(table, last_at: float) -> None:
    """k0 (spent) at T0, k1..k7 a little later, then a ninth key at ``last_at``."""
    assert allowed(table, 2, T0, key="k0") == [True, True]
    for i in range(1, 8):
        table.take(f"k{i}", T0 + 0.01 * i)
    assert len(table) == 8
    table.take("k8", last_at)


def test_ninth_key_evicts_the_oldest_which_comes_back_full(open_table):
    table = open_table(1.0, 2.0, max_keys=4)
    assert table.groups == 1
    fill_one_group(table, T0 + 0.5)
    assert (table.evicted_total, table.expired_total) == (1, 0)
    assert len(table) == 8
    decision = table.take("k0", T0 + 0.5)  # the documented price: its spent bucket is forgotten
    assert (decision.allowed, decision.remaining) == (True, 1)
    assert table.evicted_total == 2
    assert allowed(table, 1, T0 + 0.5, key="k8") == [True]  # k8 kept its bucket (one token left)
    assert allowed(table, 1, T0 + 0.5, key="k8") == [False]


@pytest.mark.parametrize(
    ("idle_after", "later", "expired"),
    [
        pytest.param(None, 1.9, 0, id="not-yet-full-evicted"),
        pytest.param(None, 2.0, 1, id="full-expired"),
        pytest.param(5.0, 4.0, 0, id="longer-idle-after-evicted"),
        pytest.param(5.0, 5.0, 1, id="longer-idle-after-expired"),
    ],
)
def test_idle_oldest_slot_counts_as_expired(open_table, idle_after, later, expired):
    table = open_table(1.0, 2.0, max_keys=4, idle_after=idle_after)
    fill_one_group(table, T0 + later)
    assert (table.expired_total, table.evicted_total) == (expired, 1 - expired)


def test_other_processes_counters_are_not_ours(open_table):
    a, b = open_table(1.0, 2.0, max_keys=4), open_table(1.0, 2.0, max_keys=4)
    fill_one_group(a, T0 + 0.5)
    b.take("k9", T0 + 0.5)
    assert (a.evicted_total, b.evicted_total) == (1, 1)


# --- robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "first"),
    [
        pytest.param(1e9, True, id="huge"),
        pytest.param(float("inf"), True, id="infinite"),
        pytest.param(float("nan"), False, id="nan"),
        pytest.param(-5.0, False, id="negative"),
    ],
)
def test_corrupt_tokens_are_clamped(open_table, path, tokens, first):
    table = open_table(0.001, 5.0, max_keys=64)
    with open(path, "r+b") as file:
        file.seek(slot_offset(table, "c", way=3))
        file.write(_SLOT.pack(key_tag("c"), tokens, T0))
    decision = table.take("c", T0)
    assert decision.allowed is first
    assert 0 <= decision.remaining <= 5
    assert sum(allowed(table, 10, T0)) == (4 if first else 0)


@pytest.mark.parametrize("stamp", [float("nan"), float("inf")], ids=["nan", "infinite"])
def test_corrupt_stamp_does_not_lock_a_client_out(open_table, path, stamp):
    table = open_table(1.0, 2.0, max_keys=64)
    with open(path, "r+b") as file:
        file.seek(slot_offset(table, "c"))
        file.write(_SLOT.pack(key_tag("c"), 0.0, stamp))
    assert allowed(table, 1, T0) == [False]
    assert allowed(table, 2, T0 + 1.0) == [True, False]  # refilling from T0, not from ``stamp``


def test_file_of_another_size_is_refused(open_table, path):
    open_table(1.0, 2.0, max_keys=4).close()
    with pytest.raises(ValueError, match=f"{path}: file is 192 bytes, expected 384"):
        SharedBucketTable(path, 1.0, 2.0, max_keys=8)


def test_close_is_idempotent_and_repr_names_the_file(open_table, path):
    table = open_table(1.0, 2.0, max_keys=4)
    assert repr(table) == f"SharedBucketTable(path={path!r}, rate=1.0, burst=2.0, max_keys=4, groups=1)"
    table.close()
    table.close()
    assert len(table) == 0


# --- Resources and the builder: one file per filter, the same in every worker -------------------


def resources_building(shared_dir, key):
    resources = Resources(shared_dir=shared_dir)
    resources.building = key
    return resources


def test_same_filter_key_same_file(tmp_path):
    key = ("rate_limit", RateLimit, '{"burst":2}')
    one, two = resources_building(str(tmp_path), key), resources_building(str(tmp_path), key)
    a, b = one.bucket_table(1.0, 2.0, 64), two.bucket_table(1.0, 2.0, 64)
    try:
        assert a.path == b.path
        assert os.path.basename(a.path).startswith("ratelimit-") and len(os.path.basename(a.path)) == 26
        assert allowed(a, 2, T0) == [True, True]
        assert allowed(b, 1, T0) == [False]
    finally:
        one.close()
        two.close()
    assert one.tables == [] and a._mem is None


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(("routes[0].rate_limit", RateLimit, '{"burst":2}'), id="another-place"),
        pytest.param(("rate_limit", RateLimit, '{"burst":3}'), id="other-settings"),
        pytest.param(("rate_limit", BucketTable, '{"burst":2}'), id="another-class"),
    ],
)
def test_different_filter_key_different_file(tmp_path, other):
    one = resources_building(str(tmp_path), ("rate_limit", RateLimit, '{"burst":2}'))
    two = resources_building(str(tmp_path), other)
    try:
        a, b = one.bucket_table(1.0, 2.0, 64), two.bucket_table(1.0, 2.0, 64)
        assert a.path != b.path
        allowed(a, 2, T0)
        assert allowed(b, 1, T0) == [True]
    finally:
        one.close()
        two.close()


def test_without_shared_dir_the_table_is_this_process_own():
    resources = Resources()
    assert type(resources.bucket_table(1.0, 2.0, 64)) is BucketTable
    assert resources.tables == []


def test_shared_table_needs_to_know_which_filter_it_is_for(tmp_path):
    with pytest.raises(RuntimeError, match="building"):
        Resources(shared_dir=str(tmp_path)).bucket_table(1.0, 2.0, 64)


def test_workers_building_one_config_share_each_rate_limit(tmp_path):
    config = Config.model_validate({
        "pools": {"web": {"backends": [{"url": "http://127.0.0.1:9001"}]}},
        "rate_limit": {"requests_per_second": 5, "burst": 50},
        "routes": [{"pool": "web"}, {"pool": "web", "rate_limit": {"burst": 3}}],
    })
    workers = []
    for _ in range(2):
        resources, problems = Resources(shared_dir=str(tmp_path)), []
        builder = FilterBuilder(config, resources, "edge.yaml", problems)
        chains = [builder.chain(None, "")] + [builder.chain(r, f"routes[{i}].") for i, r in enumerate(config.routes)]
        assert problems == [] and resources.building is None
        workers.append(([next(f for f in c.filters if type(f) is RateLimit).table for c in chains], resources))
    try:
        (glob, shared_route, own_route), _ = workers[0]
        assert glob is shared_route and glob.path != own_route.path
        assert [t.path for t in workers[0][0]] == [t.path for t in workers[1][0]]
        assert len(os.listdir(tmp_path)) == 2
    finally:
        for _, resources in workers:
            resources.close()
