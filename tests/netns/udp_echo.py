#!/usr/bin/env python3
"""UDP echo server for the netns tests: answers every datagram with itself,
on IPv4 and IPv6, on the port given as the only argument."""
import selectors
import socket
import sys

port = int(sys.argv[1])
sel = selectors.DefaultSelector()
for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    # Room for a burst (test_udp_echo sends 200 datagrams at once): the
    # default buffer holds fewer; FORCE goes past rmem_max (tests run as root).
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 4 << 20)
    s.bind((addr, port))
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        data, peer = key.fileobj.recvfrom(65535)
        key.fileobj.sendto(data, peer)
