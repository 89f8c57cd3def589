# Strategy registry: built-in names, dotted paths to user classes, and one-line
# errors for unknown names, failed imports and classes that are not strategies.
from __future__ import annotations

import sys
import textwrap

import pytest

from fulcrum.balancing.base import Strategy
from fulcrum.balancing.registry import BUILTIN, resolve

USER_MODULE = "fulcrum_test_user_strategies"


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """An importable module holding a user strategy, a non-strategy and a broken sibling."""
    (tmp_path / f"{USER_MODULE}.py").write_text(textwrap.dedent("""
        from fulcrum.balancing.base import Strategy

        class FirstUp(Strategy):
            name = "first_up"

            def pick(self, request):
                return next((b for b in self.backends if b.available), None)

        class Outer:
            class Inner(FirstUp):
                pass

        class NotAStrategy:
            pass
    """))
    (tmp_path / f"{USER_MODULE}_broken.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in (USER_MODULE, f"{USER_MODULE}_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return USER_MODULE


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in BUILTIN])
def test_builtin_names(name):
    cls = resolve(name)
    assert issubclass(cls, Strategy) and cls is not Strategy
    assert cls.name == name


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("fulcrum.balancing.round_robin:RoundRobin", id="colon"),
        pytest.param("fulcrum.balancing.round_robin.RoundRobin", id="dots"),
    ],
)
def test_builtin_by_dotted_path(path):
    assert resolve(path) is resolve("round_robin")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("{m}:FirstUp", "FirstUp", id="colon"),
        pytest.param("{m}.FirstUp", "FirstUp", id="dots"),
        pytest.param("{m}:Outer.Inner", "Inner", id="nested-class"),
    ],
)
def test_user_dotted_path(user_module, backends_factory, request_, path, expected):
    cls = resolve(path.format(m=user_module))
    assert cls.__name__ == expected
    backends = backends_factory(2)
    backends[0].available = False
    assert cls(backends).pick(request_) is backends[1]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param(
            "foo",
            "unknown strategy 'foo' (built in: round_robin, weighted_round_robin, least_connections, "
            "random, power_of_two, peak_ewma, consistent_hash; or a dotted path module:Class)",
            id="unknown-name",
        ),
        pytest.param("", "unknown strategy ''", id="empty"),
        pytest.param(
            "no_such_module_xyz:Thing",
            "strategy 'no_such_module_xyz:Thing': cannot import module 'no_such_module_xyz' "
            "(ModuleNotFoundError: No module named 'no_such_module_xyz')",
            id="missing-module",
        ),
        pytest.param(
            "{m}_broken:Thing",
            "cannot import module '{m}_broken' (RuntimeError: boom at import)",
            id="module-raises",
        ),
        pytest.param(
            "{m}:Missing",
            "strategy '{m}:Missing': module '{m}' has no attribute 'Missing'",
            id="missing-class",
        ),
        pytest.param("{m}:NotAStrategy", "is not a Strategy subclass", id="not-a-strategy"),
        pytest.param("fulcrum.balancing.registry:resolve", "is not a Strategy subclass", id="a-function"),
        pytest.param("fulcrum.balancing.base:Strategy", "is not a Strategy subclass", id="the-base-class"),
        pytest.param(":RoundRobin", "expected a dotted path module:Class", id="no-module"),
        pytest.param("fulcrum.balancing.round_robin:", "expected a dotted path", id="no-class"),
    ],
)
def test_errors(user_module, name, message):
    name = name.format(m=user_module)
    with pytest.raises(ValueError) as err:
        resolve(name)
    text = str(err.value)
    assert message.format(m=user_module) in text
    assert "\n" not in text
