#!/usr/bin/env python3
"""SOCKS5 client checks for test_socks.sh. PROXY is the local SOCKS port
on 127.0.0.1; SOCKS_USER / SOCKS_PASS in the environment make it
authenticate (RFC 1929).

  socks_client.py PROXY reply HOST PORT
      CONNECT and print the reply code in hex; after a success, send a
      byte and print what the target did within 5 s: data, eof or reset
  socks_client.py PROXY raw HEX [HEX...]
      send the bytes (one write per argument, 0.2 s apart), print the hex
      of everything that came back and "closed" once the proxy closed
      (5 s bound, else "open")
  socks_client.py PROXY many N HOST PORT [--hold]
      N concurrent CONNECTs to an echo target, each sending 1 KiB and
      checking the echo; with --hold every connection stays open until
      all N have their echo (they are all open at once)
  socks_client.py PROXY stall HOST PORT MIB PID...
      upload up to MIB MiB to a target that never reads, until a write
      blocks for 3 s; print the bytes accepted and the VmRSS of each PID
      before and after
  socks_client.py PROXY udp-relay LPORT HOST PORT
      a local UDP port (for dig) relayed through a UDP ASSOCIATE to
      HOST:PORT; prints "ready" once the association is up
"""
import asyncio
import ipaddress
import os
import select
import socket
import struct
import sys
import time

PROXY = ("127.0.0.1", int(sys.argv[1]))


def addr_bytes(host, port):
    try:
        ip = ipaddress.ip_address(host)
        atyp = b"\x01" if ip.version == 4 else b"\x04"
        return atyp + ip.packed + struct.pack("!H", port)
    except ValueError:
        h = host.encode()
        return b"\x03" + bytes([len(h)]) + h + struct.pack("!H", port)


def greeting():
    if os.environ.get("SOCKS_USER"):
        return b"\x05\x01\x02"
    return b"\x05\x01\x00"


def auth_msg():
    u = os.environ["SOCKS_USER"].encode()
    p = os.environ["SOCKS_PASS"].encode()
    return b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def read_reply(s):
    """Reads a whole RFC 1928 §6 reply; returns (REP, bound address bytes)."""
    head = recv_exact(s, 4)
    atyp = head[3]
    if atyp == 1:
        rest = recv_exact(s, 6)
    elif atyp == 4:
        rest = recv_exact(s, 18)
    else:
        n = recv_exact(s, 1)
        rest = n + recv_exact(s, n[0] + 2)
    return head[1], bytes([atyp]) + rest


def negotiate(s, cmd, host, port):
    s.sendall(greeting())
    m = recv_exact(s, 2)
    if m[1] == 0x02:
        s.sendall(auth_msg())
        a = recv_exact(s, 2)
        if a[1] != 0:
            raise RuntimeError("authentication refused")
    elif m[1] != 0x00:
        raise RuntimeError("method refused: %s" % m.hex())
    s.sendall(b"\x05" + bytes([cmd]) + b"\x00" + addr_bytes(host, port))
    return read_reply(s)


def cmd_reply(host, port):
    s = socket.create_connection(PROXY, timeout=30)
    rep, _ = negotiate(s, 1, host, int(port))
    print("%02x" % rep, end="")
    if rep == 0:
        s.settimeout(5)
        try:
            s.sendall(b"x")
            d = s.recv(100)
            print(" data" if d else " eof", end="")
        except ConnectionResetError:
            print(" reset", end="")
        except socket.timeout:
            print(" silent", end="")
    print()


def cmd_raw(hexes):
    s = socket.create_connection(PROXY, timeout=5)
    got = b""
    for i, h in enumerate(hexes):
        if i:
            time.sleep(0.2)
        try:
            s.sendall(bytes.fromhex(h))
        except (BrokenPipeError, ConnectionResetError):
            break
    state = "open"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            d = s.recv(4096)
        except ConnectionResetError:
            state = "closed"
            break
        except socket.timeout:
            break
        if not d:
            state = "closed"
            break
        got += d
    print(got.hex() or "-", state)


async def one_flow(i, host, port, hold, done, results):
    try:
        r, w = await asyncio.open_connection(*PROXY)
        w.write(greeting())
        m = await r.readexactly(2)
        if m[1] == 0x02:
            w.write(auth_msg())
            if (await r.readexactly(2))[1] != 0:
                raise RuntimeError("authentication refused")
        elif m[1] != 0:
            raise RuntimeError("method %s" % m.hex())
        w.write(b"\x05\x01\x00" + addr_bytes(host, port))
        head = await r.readexactly(4)
        await r.readexactly({1: 6, 4: 18}[head[3]])
        if head[1] != 0:
            raise RuntimeError("reply %02x" % head[1])
        payload = (b"%06d" % i) * 171  # 1026 bytes, unique per flow
        w.write(payload)
        echo = await r.readexactly(len(payload))
        if echo != payload:
            raise RuntimeError("echo mismatch")
        results["ok"] += 1
        if hold:
            if results["ok"] == results["n"]:
                done.set()
            await done.wait()
        w.close()
        await w.wait_closed()
    except Exception as e:  # noqa: BLE001 -- reported in the summary
        results["errors"].append("%d: %r" % (i, e))
        if hold:
            done.set()


async def cmd_many(n, host, port, hold):
    results = {"ok": 0, "n": n, "errors": []}
    done = asyncio.Event()
    t0 = time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(*(one_flow(i, host, port, hold, done, results) for i in range(n))), 180)
    dt = time.monotonic() - t0
    print("%d/%d flows echoed in %.1f s" % (results["ok"], n, dt))
    for e in results["errors"][:5]:
        print("error", e)
    sys.exit(0 if results["ok"] == n else 1)


def rss_kb(pid):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cmd_stall(host, port, mib, pids):
    before = [rss_kb(p) for p in pids]
    s = socket.create_connection(PROXY, timeout=30)
    rep, _ = negotiate(s, 1, host, int(port))
    if rep != 0:
        sys.exit("CONNECT refused: %02x" % rep)
    s.settimeout(3)
    chunk = os.urandom(1 << 20)
    sent, limit = 0, int(mib) << 20
    try:
        while sent < limit:
            sent += s.send(chunk[: min(len(chunk), limit - sent)])
    except socket.timeout:
        pass
    after = [rss_kb(p) for p in pids]
    print("accepted %d bytes of %d" % (sent, limit))
    for p, b, a in zip(pids, before, after):
        print("rss %s %d %d" % (p, b, a))


def cmd_udp_relay(lport, host, port):
    ctl = socket.create_connection(PROXY, timeout=10)
    rep, bnd = negotiate(ctl, 3, "0.0.0.0", 0)
    if rep != 0:
        sys.exit("UDP ASSOCIATE refused: %02x" % rep)
    if bnd[0] == 1:
        relay = (str(ipaddress.ip_address(bnd[1:5])), struct.unpack("!H", bnd[5:7])[0])
    else:
        relay = (str(ipaddress.ip_address(bnd[1:17])), struct.unpack("!H", bnd[17:19])[0])
    up = socket.socket(socket.AF_INET if bnd[0] == 1 else socket.AF_INET6, socket.SOCK_DGRAM)
    local = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    local.bind(("127.0.0.1", int(lport)))
    hdr = b"\x00\x00\x00" + addr_bytes(host, int(port))
    print("ready relay=%s:%d" % relay, flush=True)
    client = None
    while True:
        rd, _, _ = select.select([local, up, ctl], [], [])
        if local in rd:
            d, client = local.recvfrom(65535)
            up.sendto(hdr + d, relay)
        if up in rd:
            d, _ = up.recvfrom(65535)
            if d[:3] != b"\x00\x00\x00":
                continue
            atyp = d[3]
            off = {1: 10, 4: 22}.get(atyp, 7 + (d[4] if len(d) > 4 else 0))
            if client:
                local.sendto(d[off:], client)
        if ctl in rd and not ctl.recv(1):
            sys.exit("the SOCKS server closed the association")


def main():
    mode, args = sys.argv[2], sys.argv[3:]
    if mode == "reply":
        cmd_reply(*args)
    elif mode == "raw":
        cmd_raw(args)
    elif mode == "many":
        asyncio.run(cmd_many(int(args[0]), args[1], int(args[2]), "--hold" in args))
    elif mode == "stall":
        cmd_stall(args[0], args[1], args[2], args[3:])
    elif mode == "udp-relay":
        cmd_udp_relay(*args)
    else:
        sys.exit("unknown mode " + mode)


main()
