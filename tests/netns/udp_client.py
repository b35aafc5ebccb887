#!/usr/bin/env python3
"""UDP echo client for the netns tests.

    udp_client.py HOST PORT SIZE COUNT TIMEOUT [--expect-none] [--sport=N] [--rtt]

Sends COUNT datagrams of SIZE random bytes to HOST:PORT, one at a time,
and waits up to TIMEOUT seconds for each to come back unchanged. Prints
"received R/COUNT" and exits 0 if every echo came back identical, 1 if any
is missing, 2 if any came back different (or unexpected data arrived).

With --expect-none it asserts the opposite: nothing at all comes back
within TIMEOUT (exit 0), else exit 1. --sport=N sends from local port N
instead of an ephemeral one. --rtt adds a line before the last one:
"rtt min/avg/max A/B/C ms, bytes out X in Y".
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


if __name__ == "__main__":
    sys.exit(main())
