#!/usr/bin/env python3
"""TCP targets for the plain-CONNECT tests, on IPv4 and IPv6:

    tcp_targets.py BASEPORT

BASEPORT     echo: sends back every byte, closes after the peer's FIN
BASEPORT+1   reset: reads a little, then aborts with an RST
BASEPORT+4   sink: accepts and never reads (for backpressure tests)
"""
import asyncio
import socket
import struct
import sys


async def echo(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def reset(reader, writer):
    await reader.read(1)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


HELD = []


async def sink(reader, writer):
    HELD.append(writer)  # never read: the window fills and stays full


async def main():
    base = int(sys.argv[1])
    servers = []
    for port, handler in ((base, echo), (base + 1, reset), (base + 4, sink)):
        for host in ("0.0.0.0", "::"):
            servers.append(await asyncio.start_server(handler, host, port, reuse_address=True))
    await asyncio.gather(*(s.serve_forever() for s in servers))


asyncio.run(main())
