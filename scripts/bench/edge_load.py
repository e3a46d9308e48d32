#!/usr/bin/env python3
"""Holds hostile connections open against a listener for a while (scripts/bench-edge.sh).

usage: edge_load.py HOST PORT SECONDS IDLE SLOWLORIS DRIBBLE
IDLE connections send nothing; SLOWLORIS ones send a request head one header line per
second; DRIBBLE ones send a form body one byte per second. Each reconnects when the server
closes it, as an attacker would. Prints how many times the server closed each kind.
"""
import asyncio
import sys

host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
idle, slow, drip = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
closed = {"idle": 0, "slowloris": 0, "dribble": 0}
opened = {"idle": 0, "slowloris": 0, "dribble": 0}


async def one(kind, deadline):
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            r, w = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.5)
            continue
        opened[kind] += 1
        try:
            if kind == "slowloris":
                w.write(b"GET /bigbluebutton/api HTTP/1.1\r\nHost: x\r\n")
            elif kind == "dribble":
                w.write(b"POST /bigbluebutton/api/getMeetings HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n")
            n = 0
            while loop.time() < deadline:
                if kind == "idle":
                    data = await asyncio.wait_for(r.read(1), timeout=max(0.1, deadline - loop.time()))
                    if not data:
                        break
                    continue
                try:
                    data = await asyncio.wait_for(r.read(1), timeout=1.0)
                    if not data:
                        break
                except asyncio.TimeoutError:
                    pass
                n += 1
                w.write(f"X-Slow-{n}: y\r\n".encode() if kind == "slowloris" else b"a")
                await w.drain()
            else:
                w.close()
                return
        except (OSError, asyncio.TimeoutError):
            pass
        closed[kind] += 1
        w.close()


async def main():
    deadline = asyncio.get_running_loop().time() + seconds
    tasks = []
    for kind, count in (("idle", idle), ("slowloris", slow), ("dribble", drip)):
        for _ in range(count):
            tasks.append(asyncio.create_task(one(kind, deadline)))
            if len(tasks) % 200 == 0:
                await asyncio.sleep(0.05)
    await asyncio.gather(*tasks, return_exceptions=True)
    print(" ".join(f"{k}: {opened[k]} opened, {closed[k]} closed by the server;" for k in opened))


asyncio.run(main())
