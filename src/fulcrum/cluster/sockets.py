# The listening sockets of a multi-process Fulcrum: one per worker on the same address, each
# with SO_REUSEPORT, so the kernel spreads new connections over the workers (by a hash of
# the 4-tuple) without a shared accept queue that every worker would wake up for.
#
# The supervisor binds them and keeps them while their workers serve; each worker serves the
# one it was handed. A worker that dies therefore closes nothing: connections queued on its
# socket wait there for its replacement instead of being reset.
#
# A worker that cannot start must not keep a place in the group, or the kernel would go on
# hashing a share of the new connections into a queue nobody accepts from. The supervisor
# closes that slot's socket (its queued connections are reset: a quick error, not a hang) and
# gives the next try a new member, bound but not listening: a socket joins the group only
# when it listens, which the worker does once it serves (asyncio's create_server).
from __future__ import annotations

import socket


def bind_group(host: str, port: int, count: int, backlog: int = 4096) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` (port 0: one free port for all of them).

    OSError (with the address in the message) when the address is taken — also by another
    SO_REUSEPORT group, such as a second Fulcrum started by mistake, which the kernel would
    otherwise let share the port and silently take half of the connections."""
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    try:
        if port != 0:
            _check_free(family, addr)
        sockets = [_listener(family, addr, backlog)]
        addr = (addr[0], sockets[0].getsockname()[1], *addr[2:])  # port 0 resolved once
        sockets += [_listener(family, addr, backlog) for _ in range(count - 1)]
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sockets


def bind_member(family: int, addr: tuple) -> socket.socket:
    """A new socket for the group on ``addr`` (a member's ``getsockname()``), bound but not
    listening: it takes no connection until its worker listens on it."""
    try:
        return _listener(family, addr, backlog=None)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot rejoin the listeners on {addr[0]}:{addr[1]}: {exc.strerror}") from None


def _check_free(family: int, addr: tuple) -> None:
    # Without SO_REUSEPORT this bind fails while anyone listens on the address.
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        probe.bind(addr)
    finally:
        probe.close()


def _listener(family: int, addr: tuple, backlog: int | None) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets
        sock.bind(addr)
        if backlog is not None:
            sock.listen(backlog)  # queue connections from now on, even before a worker serves them
    except OSError:
        sock.close()
        raise
    return sock
