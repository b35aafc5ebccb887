#!/usr/bin/env python3
"""Per-hop times of the round trips captured by bench/rtt_hops.sh.

    rtt_hops.py TARGET.PORT PROXY.PORT CLIENT_TUN CLIENT_VETH SERVER_TUN TARGET_VETH

Each file is tcpdump -tt output of one device. For every ping seen on the
client's TUN, the first matching packet after it on each later hop gives
the hop's time; the medians and 90th percentiles are printed. The outer
QUIC packets are told from ACK-only ones by size (over 100 bytes).
"""
import bisect
import sys


def stamps(path, want):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and want(line):
                try:
                    out.append(float(parts[0]))
                except ValueError:
                    pass
    return out


def outer_len(line):
    tail = line.rsplit("length", 1)
    try:
        return int(tail[1].strip()) if len(tail) == 2 else 0
    except ValueError:
        return 0


def after(arr, t):
    i = bisect.bisect_right(arr, t)
    return arr[i] if i < len(arr) else None


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    target, proxy, ctun, cveth, stun, tveth = sys.argv[1:]
    to_t, from_t = "> %s:" % target, "%s >" % target
    to_p, from_p = "> %s:" % proxy, "%s >" % proxy
    a = stamps(ctun, lambda l: to_t in l)
    j = stamps(ctun, lambda l: from_t in l)
    b = stamps(cveth, lambda l: to_p in l and outer_len(l) > 100)
    i = stamps(cveth, lambda l: from_p in l and outer_len(l) > 100)
    d = stamps(stun, lambda l: to_t in l)
    g = stamps(stun, lambda l: from_t in l)
    e = stamps(tveth, lambda l: to_t in l)
    f = stamps(tveth, lambda l: from_t in l)
    rows = []
    for t0 in a:
        hop = [t0]
        for arr in (b, d, e, f, g, i, j):
            nxt = after(arr, hop[-1])
            if nxt is None:
                break
            hop.append(nxt)
        if len(hop) == 8 and hop[-1] - t0 < 0.05:
            rows.append(hop)
    if not rows:
        sys.exit("rtt_hops: no complete round trip in the captures")
    names = ["client: TUN -> QUIC (masq connect)", "veth + server: QUIC -> TUN (masq server)",
             "server kernel: NAT, forward to target", "target: echo (udpprobe serve)",
             "server kernel: back into the TUN", "server: TUN -> QUIC (masq server)",
             "veth + client: QUIC -> TUN (masq connect)"]
    print("%d round trips, hop times in microseconds:" % len(rows))
    print("  %-42s %8s %8s" % ("hop", "median", "p90"))
    for k, name in enumerate(names):
        v = sorted((r[k + 1] - r[k]) * 1e6 for r in rows)
        print("  %-42s %8.1f %8.1f" % (name, v[len(v) // 2], v[int(0.9 * (len(v) - 1))]))
    v = sorted((r[7] - r[0]) * 1e6 for r in rows)
    print("  %-42s %8.1f %8.1f" % ("TUN to TUN, in all", v[len(v) // 2], v[int(0.9 * (len(v) - 1))]))


if __name__ == "__main__":
    main()
