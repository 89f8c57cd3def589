"""The compiled core and the pure-Python one (fulcrum/core.py): which one runs, how a process
says so, and what happens when the compiled core is missing or only partly built. Through real
processes: the choice is made once per process, at its first ``import fulcrum``."""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fulcrum import core
from tests.support.cores import expected_core
from tests.support.processes import PYTHON, ROOT, admin_url, pool_config

PROBE = ("import json, fulcrum.proxy.client, fulcrum.core as c; "
         "print(json.dumps([c.kind, c.loaded_kind(), c.why, c.notice(), fulcrum.proxy.client.__file__]))")


def probe(env: dict, pythonpath: Path | None = None) -> list:
    """kind, loaded_kind(), why, notice() and the client module's file, in a new process."""
    full = {k: v for k, v in os.environ.items() if k != core.NO_EXTENSIONS_ENV}
    full.update(env)
    if pythonpath is not None:
        full["PYTHONPATH"] = str(pythonpath)  # ahead of the editable install's src/
    result = subprocess.run([PYTHON, "-c", PROBE], capture_output=True, text=True, env=full, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def unbuilt(tmp_path) -> Path:
    """A copy of the fulcrum package without its extension modules (an install without a compiler)."""
    shutil.copytree(ROOT / "src" / "fulcrum", tmp_path / "fulcrum",
                    ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    return tmp_path


def test_the_core_in_use_is_the_one_this_run_asked_for():
    for name in core.COMPILED:
        importlib.import_module(name)
    assert (core.kind, core.loaded_kind()) == (expected_core(), expected_core())
    files = {sys.modules[name].__file__.endswith(".py") for name in core.COMPILED}
    assert files == {expected_core() == core.PURE_PYTHON_CORE}


def test_the_built_core_runs_unless_the_switch_is_set():
    kind, loaded, why, notice, file = probe({})
    assert (kind, loaded, why, notice) == ("compiled", "compiled", "", None)
    assert not file.endswith(".py")
    assert probe({core.NO_EXTENSIONS_ENV: "0"})[:2] == ["compiled", "compiled"]


def test_the_switch_forces_the_pure_python_core_without_a_notice():
    kind, loaded, why, notice, file = probe({core.NO_EXTENSIONS_ENV: "1"})
    assert (kind, loaded, why, notice) == ("pure-python", "pure-python", "FULCRUM_NO_EXTENSIONS is set", None)
    assert file == str(ROOT / "src" / "fulcrum" / "proxy" / "client.py")


def test_an_install_without_the_compiled_core_runs_pure_python_and_says_why(unbuilt):
    kind, loaded, why, notice, file = probe({}, unbuilt)
    assert (kind, loaded) == ("pure-python", "pure-python")
    assert why.startswith("the compiled core is not built")
    assert notice.startswith("running the pure-Python core: the compiled core is not built")
    assert "python3-dev" in notice and file == str(unbuilt / "fulcrum" / "proxy" / "client.py")


def test_a_partly_built_core_runs_wholly_pure_python(tmp_path):
    shutil.copytree(ROOT / "src" / "fulcrum", tmp_path / "fulcrum", ignore=shutil.ignore_patterns("__pycache__"))
    last = core.COMPILED[-1]
    folder = tmp_path / Path(*last.split(".")[:-1])
    removed = [p for p in folder.iterdir() if p.name.startswith(last.rpartition(".")[2] + ".") and p.suffix == ".so"]
    assert removed, f"{last} is not built in src/: scripts/setup.sh builds it"
    for path in removed:
        path.unlink()
    kind, loaded, why, notice, _ = probe({}, tmp_path)
    assert (kind, loaded) == ("pure-python", "pure-python")  # never half of each
    assert why == f"the compiled core is only partly built (missing {last})"


def test_a_server_reports_its_core_and_warns_once_when_it_fell_back(fulcrum, backends, unbuilt):
    b1, = backends(1)
    built = fulcrum({"pools": {"web": pool_config(b1)}, "log": {"format": "json"}})
    fallen_back = fulcrum({"pools": {"web": pool_config(b1)}, "log": {"format": "json"}},
                          env={"PYTHONPATH": str(unbuilt), core.NO_EXTENSIONS_ENV: ""})
    for proc, kind in ((built, expected_core()), (fallen_back, "pure-python")):
        assert httpx.get(proc.url + "/", trust_env=False).status_code == 200
        status = httpx.get(admin_url(proc) + "/api/v1/status", trust_env=False).json()
        assert status["core"] == kind
        records = [json.loads(line) for line in list(proc.lines)]
        listening = next(r for r in records if r["event"] == "listening")
        assert listening["core"] == kind
        notices = [r for r in records if r["event"].startswith("running the pure-Python core")]
        assert len(notices) == (1 if proc is fallen_back else 0), notices
        if notices:
            assert notices[0]["level"] == "warning"
