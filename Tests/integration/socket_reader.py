#!/usr/bin/env python3
"""A real reader on a Unix stream socket, for the socket-forwarding tests.

    socket_reader.py PATH LOG MODE

Every complete line received is appended to LOG as "<connection>\\t<line>".
MODE says how the reader behaves:
  plain           read lines, answer nothing (hookguard without ack)
  ack             answer "ok" after each line
  never-ack       read lines, never answer
  refuse          answer "error busy" after each line
  close-mid-line  read a few bytes of the first line, then hang up
"""

import asyncio
import itertools
import os
import sys

path, log_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
connections = itertools.count(1)
log = open(log_path, "ab", buffering=0)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    number = next(connections)
    try:
        if mode == "close-mid-line":
            await reader.read(10)
            return
        while True:
            line = await reader.readuntil(b"\n")
            log.write(b"%d\t%s" % (number, line))
            if mode == "ack":
                writer.write(b"ok\n")
                await writer.drain()
            elif mode == "refuse":
                writer.write(b"error busy\n")
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # a partial last line is discarded, as the protocol says
    finally:
        writer.close()


async def main() -> None:
    if os.path.exists(path):
        os.unlink(path)
    server = await asyncio.start_unix_server(serve, path, limit=64 * 1024 * 1024)
    async with server:
        await server.serve_forever()


asyncio.run(main())
