"""Command line: ``fulcrum run | check | version`` (also ``python -m fulcrum``).

Exit codes: 0 success, 2 invalid configuration (one line per problem on stderr),
1 anything else (e.g. the listen address is taken). ``check`` prints its warnings (what
is valid but will not work as configured, e.g. an open-files limit too low for
limits.max_connections) after its summary on stdout, and still exits 0.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from fulcrum import __version__, core

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fulcrum",
        description="Fulcrum: an HTTP/1.1 load balancer (L7 reverse proxy).",
        epilog="Configuration: YAML file (default: $FULCRUM_CONFIG or ./config.yaml), "
               "overridden by FULCRUM_* environment variables (nested keys joined by __).",
    )
    parser.add_argument("--version", action=_PrintVersion, nargs=0, help="print the version and the core, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in (
        ("run", "load the configuration and serve"),
        ("check", "validate and provision the configuration without binding, like nginx -t"),
    ):
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("--config", "-c", metavar="PATH",
                         help="YAML configuration file (default: $FULCRUM_CONFIG or config.yaml)")
    sub.add_parser("version", help="print the version")
    return parser


class _PrintVersion(argparse.Action):
    """``--version``: argparse's own action would fold the two lines into one."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(_version())
        parser.exit()


def _version() -> str:
    """The version, and which core this process runs (fulcrum/core.py)."""
    return f"fulcrum {__version__}\ncore: {core.kind}"


def _load(path: str | None):
    from fulcrum.config.errors import ConfigError
    from fulcrum.config.load import load_config
    from fulcrum.runtime.provision import provision

    source = path or os.environ.get("FULCRUM_CONFIG") or "config.yaml"
    try:
        config = load_config(path)
        runtime = provision(config, source)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return None, source, None
    return config, source, runtime


def _warnings(config) -> list[str]:
    """What ``run`` would warn about at start, judged by the open-files limit it would raise to."""
    from fulcrum.runtime import fd_budget

    return fd_budget.budget_for(config, fd_budget.prospective_limit()).warnings()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(_version())
        return 0
    if args.command is None:
        _parser().print_help()
        return 0
    config, source, runtime = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    if args.command == "check":
        pools = ", ".join(f"{n} ({len(p.backends)} backends, {p.strategy.name})" for n, p in runtime.pools.items())
        filters = ", ".join(runtime.unrouted.chain.names) or "none"
        workers = f"; workers: {config.worker_count}" if config.worker_count > 1 else ""
        print(f"{source}: configuration is valid; pools: {pools}; routes: {len(config.routes)}; "
              f"filters: {filters}{workers}")
        for line in _warnings(config):
            print(f"{source}: warning: {line}")
        return 0
    from fulcrum.observability.logging import setup_logging

    if config.worker_count > 1:
        from fulcrum.cluster.supervisor import run
    else:
        from fulcrum.shell.app import run

    setup_logging(config.log.format, config.log.level, stream=sys.stdout, levels=config.log.levels)
    notice = core.notice()
    if notice:  # once, at start: the operator did not ask for the slower core
        logging.getLogger("fulcrum").warning(notice)
    try:
        return run(config, source)
    except (OSError, RuntimeError) as exc:
        logging.getLogger("fulcrum").error("cannot start", extra={"fields": {"error": str(exc)}})
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
