#!/usr/bin/env python3
"""Sends raw bytes to a local HTTP proxy and prints its answer:

    http_raw.py PORT TEXT

TEXT may hold \\r and \\n escapes. Prints the status line, the
Proxy-Status field if any, and "closed" if the proxy closed the
connection within 5 s after answering (else "open").
"""
import socket
import sys

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
got, state = b"", "open"
try:
    while True:
        d = s.recv(65536)
        if not d:
            state = "closed"
            break
        got += d
except ConnectionResetError:
    state = "closed"
except socket.timeout:
    pass
head = got.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
out = [head[0] if head and head[0] else "-"]
out += [line for line in head[1:] if line.lower().startswith("proxy-status:")]
print(" | ".join(out + [state]))
