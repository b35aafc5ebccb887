#!/usr/bin/env python3
"""UDP echo client for the netns tests.

    udp_client.py HOST PORT SIZE COUNT TIMEOUT [--expect-none] [--sport=N] [--rtt]
    udp_client.py HOST PORT SIZE COUNT TIMEOUT --burst

Sends COUNT datagrams of SIZE random bytes to HOST:PORT, one at a time,
and waits up to TIMEOUT seconds for each to come back unchanged. Prints
"received R/COUNT" and exits 0 if every echo came back identical, 1 if any
is missing, 2 if any came back different (or unexpected data arrived).

With --expect-none it asserts the opposite: nothing at all comes back
within TIMEOUT (exit 0), else exit 1. --sport=N sends from local port N
instead of an ephemeral one. --rtt adds a line before the last one:
"rtt min/avg/max A/B/C ms, bytes out X in Y".

With --burst it first waits for one echo (so the proxy's tunnel for this
source is open), then sends all COUNT datagrams at once, without waiting, in
runs of equal sizes broken by shorter ones (SIZE, SIZE, ..., SIZE/4, 1,
...), so that the proxy batches them, then waits up to TIMEOUT seconds
for all the echoes: exit 0 only if every one came back intact and in the
order sent ("received R/COUNT in order").
"""
import os
import socket
import sys
import time


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    expect_none = "--expect-none" in sys.argv[1:]
    want_rtt = "--rtt" in sys.argv[1:]
    sport = 0
    for a in sys.argv[1:]:
        if a.startswith("--sport="):
            sport = int(a.split("=", 1)[1])
    if len(args) != 5:
        sys.exit(__doc__)
    host, port, size, count, timeout = args[0], int(args[1]), int(args[2]), int(args[3]), float(args[4])
    fam, _, _, _, addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if sport:
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
    s.connect(addr)

    if "--burst" in sys.argv[1:]:
        return burst(s, size, count, timeout)

    if expect_none:
        s.send(os.urandom(size))
        s.settimeout(timeout)
        try:
            data = s.recv(65535)
        except socket.timeout:
            print("received 0/1")
            return 0
        print("received 1/1 (%d bytes) but expected nothing" % len(data))
        return 1

    received, bad = 0, 0
    rtts, bytes_in = [], 0
    for i in range(count):
        payload = os.urandom(size)
        sent_at = time.monotonic()
        s.send(payload)
        deadline = sent_at + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                print("datagram %d (%d bytes): no echo within %.1fs" % (i, size, timeout),
                      file=sys.stderr)
                break
            s.settimeout(left)
            try:
                data = s.recv(65535)
            except socket.timeout:
                continue
            except ConnectionRefusedError:
                print("datagram %d: connection refused" % i, file=sys.stderr)
                break
            bytes_in += len(data)
            if data == payload:
                received += 1
                rtts.append((time.monotonic() - sent_at) * 1000)
                break
            # A late echo of an earlier datagram, or corruption.
            bad += 1
            print("datagram %d: got %d bytes that match nothing sent (want %d)" %
                  (i, len(data), size), file=sys.stderr)
    if want_rtt and rtts:
        print("rtt min/avg/max %.3f/%.3f/%.3f ms, bytes out %d in %d" %
              (min(rtts), sum(rtts) / len(rtts), max(rtts), size * count, bytes_in))
    print("received %d/%d" % (received, count))
    if bad:
        return 2
    return 0 if received == count else 1


def burst_sizes(size, count):
    """Runs of seven full-size datagrams, then a quarter-size and a 1-byte
    one: both end a GSO run, the second also starts a new one."""
    pattern = [size] * 7 + [max(1, size // 4), 1]
    return [pattern[i % len(pattern)] for i in range(count)]


def burst(s, size, count, timeout):
    # room for all the echoes at once, past rmem_max (tests run as root)
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 4 << 20)
    warm = b"warm-up"
    s.send(warm)
    s.settimeout(timeout)
    try:
        if s.recv(65535) != warm:
            print("the warm-up echo came back changed", file=sys.stderr)
            return 2
    except socket.timeout:
        print("no echo of the warm-up datagram within %.1fs" % timeout, file=sys.stderr)
        return 1
    sent = []
    for i, n in enumerate(burst_sizes(size, count)):
        # a sequence number first, so that a reordering shows as such
        payload = i.to_bytes(4, "big")[:n] + os.urandom(max(0, n - 4))
        s.send(payload)
        sent.append(payload)
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            got.append(s.recv(65535))
        except socket.timeout:
            break
    intact = sum(1 for g in got if g in set(sent))
    in_order = got == sent[:len(got)]
    print("received %d/%d%s" % (len(got), count, " in order" if in_order else " out of order"))
    if intact != len(got):
        print("%d echoes match nothing sent" % (len(got) - intact), file=sys.stderr)
        return 2
    return 0 if len(got) == count and in_order else 1


if __name__ == "__main__":
    sys.exit(main())
