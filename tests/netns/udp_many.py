#!/usr/bin/env python3
"""Many concurrent UDP flows through one forwarder, for the netns tests.

    udp_many.py HOST PORT SOCKETS COUNT SIZE TIMEOUT [--burst]

Opens SOCKETS sockets (so SOCKETS distinct source ports, i.e. SOCKETS
tunnels), and has each send COUNT datagrams of SIZE bytes, every payload
unique (it names its socket and sequence number). By default they go in
COUNT rounds: every socket sends one, then all echoes of that round must
arrive before the next. With --burst every socket sends all COUNT at
once. Each echo must come back to the socket that sent it, unchanged.
All of it must be done within TIMEOUT seconds.

Prints "ok: N/N echoes on SOCKETS sockets in T s" and exits 0, or says
what is missing or wrong and exits 1.

    udp_many.py --echo PORT

is the other end: a UDP echo server on PORT (IPv4 and IPv6) like
udp_echo.py, but with a 4 MiB receive buffer so that a burst of
hundreds of datagrams from hundreds of tunnels is not dropped by the
echo server's own socket before it can answer.
"""
import os
import selectors
import socket
import sys
import time


def payload(i, seq, size):
    head = b"%d:%d:" % (i, seq)
    return (head + os.urandom(max(0, size - len(head))))[:max(size, len(head))]


def echo(port):
    sel = selectors.DefaultSelector()
    for fam, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        for opt in (33, socket.SO_RCVBUF):  # SO_RCVBUFFORCE (root), else capped
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
                break
            except OSError:
                pass
        s.bind((host, port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            while True:
                try:
                    data, peer = key.fileobj.recvfrom(65535)
                except BlockingIOError:
                    break
                key.fileobj.sendto(data, peer)


def main():
    if sys.argv[1:2] == ["--echo"]:
        return echo(int(sys.argv[2]))
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    burst = "--burst" in sys.argv[1:]
    if len(args) != 6:
        sys.exit(__doc__)
    host, port = args[0], int(args[1])
    nsock, count, size, timeout = int(args[2]), int(args[3]), int(args[4]), float(args[5])
    fam, _, _, _, addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]

    sel = selectors.DefaultSelector()
    socks = []
    for i in range(nsock):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect(addr)
        sel.register(s, selectors.EVENT_READ, i)
        socks.append(s)
    ports = {s.getsockname()[1] for s in socks}
    assert len(ports) == nsock, "source ports are not distinct"

    start = time.monotonic()
    deadline = start + timeout
    expected = {}  # (socket index, payload) -> sequence number
    got = 0
    errors = []

    def send(i, seq):
        p = payload(i, seq, size)
        expected[(i, p)] = seq
        socks[i].send(p)

    def collect(until_empty):
        nonlocal got
        while expected if until_empty else False:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, _ in sel.select(min(left, 0.5)):
                i = key.data
                while True:
                    try:
                        data = key.fileobj.recv(65535)
                    except BlockingIOError:
                        break
                    except ConnectionRefusedError:
                        errors.append("socket %d: connection refused" % i)
                        break
                    if (i, data) in expected:
                        del expected[(i, data)]
                        got += 1
                    else:
                        errors.append("socket %d got %d bytes it did not send (%r...)" %
                                      (i, len(data), data[:12]))
            if errors:
                return False
        return True

    rounds = [list(range(count))] if burst else [[seq] for seq in range(count)]
    ok = True
    for seqs in rounds:
        for i in range(nsock):
            for seq in seqs:
                send(i, seq)
        if not collect(True):
            ok = False
            break
    elapsed = time.monotonic() - start
    total = nsock * count
    if ok and not errors and got == total:
        print("ok: %d/%d echoes on %d sockets in %.2f s" % (got, total, nsock, elapsed))
        return 0
    for e in errors[:10]:
        print(e)
    missing = sorted(expected.items(), key=lambda kv: (kv[0][0], kv[1]))
    print("FAIL: %d/%d echoes after %.2f s; %d missing, e.g. %s" %
          (got, total, elapsed, len(missing),
           ", ".join("socket %d seq %d" % (k[0], seq) for k, seq in missing[:8])))
    return 1


if __name__ == "__main__":
    sys.exit(main())
