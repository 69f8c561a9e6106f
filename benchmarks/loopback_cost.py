"""What a small write to many stream sockets costs on this host, over TCP loopback and over a Unix socket.

Why it matters: the bundled reference endpoint writes one SSE chunk per stream per engine step, and at
2,048 streams that is ~73k writes a second on one core, read by the client on the other. Over TCP
loopback the sender's ``send`` also runs the receiver's side of the packet (the loopback device delivers it
in the sender's context), so both cores pay the TCP stack for every chunk. This measures it, the same way
for both socket kinds, in one run: N connected pairs, a writer process (CPU 1) sending ``--size`` bytes to
each of them every ``--every-ms``, a reader process (CPU 0) draining them with epoll; CPU time (user +
system, from getrusage) per message on each side, and the TCP / Unix ratio.

    python benchmarks/loopback_cost.py                  # 2,048 sockets, 200 rounds of 200 bytes
    python benchmarks/loopback_cost.py --sockets 256 --rounds 500
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import select
import socket
import time

KINDS = ("tcp", "unix")


def _pairs(kind: str, n: int) -> list[tuple[socket.socket, socket.socket]]:
    """``n`` connected (server side, client side) pairs, TCP_NODELAY on TCP (as both tpsbench sides set)."""
    out = []
    if kind == "unix":
        for _ in range(n):
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            out.append((a, b))
        return out
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    for _ in range(n):
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out.append((server, client))
    listener.close()
    return out


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {cpu})


def measure(kind: str, n: int, rounds: int, size: int, every_s: float) -> tuple[float, float]:
    """CPU seconds per message of the writer and of the reader."""
    pairs = _pairs(kind, n)
    ready_r, ready_w = os.pipe()
    result_r, result_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the reader
        _pin(0)
        for server, _ in pairs:
            server.close()
        poller = select.epoll()
        socks = {}
        for _, client in pairs:
            client.setblocking(False)
            poller.register(client.fileno(), select.EPOLLIN)
            socks[client.fileno()] = client
        need, got = n * rounds * size, 0
        os.write(ready_w, b"r")
        cpu0 = _cpu()
        while got < need:
            for fd, _ in poller.poll():
                with contextlib.suppress(BlockingIOError):
                    got += len(socks[fd].recv(65536))
        os.write(result_w, repr((_cpu() - cpu0) / (n * rounds)).encode())
        os._exit(0)
    _pin(1)
    for _, client in pairs:
        client.close()
    os.read(ready_r, 1)
    payload = b"x" * size
    socks = [server for server, _ in pairs]
    cpu0 = _cpu()
    for _ in range(rounds):
        for s in socks:
            s.send(payload)
        time.sleep(every_s)  # a step's writes, then the rest of the step
    writer = (_cpu() - cpu0) / (n * rounds)
    reader = float(os.read(result_r, 64).decode())
    os.waitpid(pid, 0)
    for s in socks:
        s.close()
    return writer, reader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sockets", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--size", type=int, default=200, help="bytes per write (an SSE chunk is ~200)")
    ap.add_argument("--every-ms", type=float, default=5.0, help="pause between two rounds")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each kind, alternating")
    a = ap.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
    for _ in range(a.repeat):
        for kind in KINDS:
            rows[kind].append(measure(kind, a.sockets, a.rounds, a.size, a.every_ms / 1e3))
    print(f"{a.sockets} sockets, {a.rounds} rounds of {a.size} bytes; CPU per message (user + system)")
    print(f"{'kind':<6}{'writer us':>12}{'reader us':>12}")
    best = {k: (min(w for w, _ in v), min(r for _, r in v)) for k, v in rows.items()}
    for kind in KINDS:
        w, r = best[kind]
        print(f"{kind:<6}{w * 1e6:>12.2f}{r * 1e6:>12.2f}")
    (tw, tr), (uw, ur) = best["tcp"], best["unix"]
    print(f"tcp / unix: writer {tw / uw:.2f}x, reader {tr / ur:.2f}x (best of {a.repeat} each)")


if __name__ == "__main__":
    main()
