#!/usr/bin/env python3
"""Recordings benchmark: 100,000 recordings in the index, getRecordings latency through the
real HTTP API, and the import rate of 5 MB presentation tarballs.

Run by scripts/bench-recordings.sh (which builds the release binary). Seeds the index with
python3's sqlite3 straight into the schema `ferrolite serve` created (the fast way to get
100,000 rows; the importer's own speed is measured separately), then times sequential
keep-alive requests. Stops by itself; talks to 127.0.0.1 only.
"""
import hashlib
import http.client
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
N = int(os.environ.get("BENCH_RECORDINGS", "100000"))
REQS = int(os.environ.get("BENCH_REQUESTS", "500"))
IMPORTS = int(os.environ.get("BENCH_IMPORTS", "40"))
SECRET = "bench-secret"
HERE = os.path.dirname(os.path.abspath(__file__))
PROCS = []
MEETINGS = max(N // 5, 1)  # 5 recordings per meeting
COURSES = max(N // 20, 1)  # 20 recordings per meta value


def start(tmp, extra=None):
    env = {
        "PATH": os.environ["PATH"], "LOADBALANCER_SECRET": SECRET, "PORT": "0",
        "DATABASE_URL": os.path.join(tmp, "ferrolite.db"), "POLL_INTERVAL": "3600",
        "LOG_LEVEL": "warn", "RECORDING_SPOOL_DIR": os.path.join(tmp, "spool"),
        "RECORDING_WORK_DIR": os.path.join(tmp, "work"),
        "RECORDING_PUBLISH_DIR": os.path.join(tmp, "published"),
        "RECORDING_UNPUBLISH_DIR": os.path.join(tmp, "unpublished"),
        "RECORDING_IMPORT_SETTLE": "0", "RECORDING_IMPORT_POLL_INTERVAL": "1",
    }
    env.update(extra or {})
    log = open(os.path.join(tmp, "serve.log"), "wb")
    p = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.PIPE, stderr=log, cwd=tmp)
    line = p.stdout.readline().decode().strip()
    host = line.rsplit("//", 1)[1]
    return p, host


def seed(db):
    con = sqlite3.connect(db, timeout=30)
    cur = con.cursor()
    t0 = time.time()
    base = 1_600_000_000_000
    rows, meta, fmts, thumbs = [], [], [], []
    for i in range(1, N + 1):
        rid = hashlib.sha1(str(i).encode()).hexdigest() + f"-{base + i * 1000}"
        mid = f"meeting-{i % MEETINGS}"
        rows.append((i, rid, mid, rid, f"Room {i}", 1, "published", base + i * 1000, base + i * 1000 + 3600000, 5, 0, 0))
        for seq, (k, v) in enumerate([("bbb-origin", "greenlight"), ("gl-listed", "true" if i % 2 else "false"),
                                      ("bbb-context-id", f"course-{i % COURSES}"), ("bbb-origin-server-name", "lms.example.org")]):
            meta.append((i, seq, k, v))
        fmts.append((i, i, "presentation", f"/playback/presentation/2.3/{rid}", 60))
        for s in range(2):
            thumbs.append((i, s, 176, 136, f"slide {s}", f"/presentation/{rid}/presentation/x/thumbnails/thumb-{s+1}.png"))
    cur.executemany("INSERT INTO recordings (id, record_id, meeting_id, internal_meeting_id, name, published, state, starttime, endtime, participants, protected, publish_updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    cur.executemany("INSERT INTO recording_metadata (recording_id, seq, key, value) VALUES (?,?,?,?)", meta)
    cur.executemany("INSERT INTO playback_formats (id, recording_id, format, url, length) VALUES (?,?,?,?,?)", fmts)
    cur.executemany("INSERT INTO thumbnails (playback_format_id, sequence, width, height, alt, url) VALUES (?,?,?,?,?,?)", thumbs)
    con.commit()  # no ANALYZE: production databases have no planner statistics either
    con.close()
    print(f"seeded {N} recordings in {time.time() - t0:.1f} s")
    return [hashlib.sha1(str(i).encode()).hexdigest() + f"-{base + i * 1000}" for i in (1, N // 2, N)]


def signed(call, query):
    cs = hashlib.sha1((call + query + SECRET).encode()).hexdigest()
    return f"/bigbluebutton/api/{call}?{query}&checksum={cs}" if query else f"/bigbluebutton/api/{call}?checksum={cs}"


def timed(host, name, queries, expect):
    conn = http.client.HTTPConnection(host)
    lat = []
    for i in range(REQS):
        q = queries[i % len(queries)]
        path = signed("getRecordings", q)
        t = time.perf_counter()
        conn.request("GET", path)
        body = conn.getresponse().read()
        lat.append((time.perf_counter() - t) * 1000)
        if i == 0:
            n = body.count(b"<recording>")
            assert expect(n), f"{name}: unexpected {n} recordings for {q}"
    lat.sort()
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]
    print(f"{name:<28} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({REQS} requests)")
    return p50, p99


def bench_queries():
    tmp = tempfile.mkdtemp(prefix="ferrolite-bench-")
    try:
        p, host = start(tmp)
        PROCS.append(p)
        ids = seed(os.path.join(tmp, "ferrolite.db"))
        rnd = random.Random(1)
        results = {
            "by meetingID": timed(host, "getRecordings meetingID", [f"meetingID=meeting-{rnd.randrange(MEETINGS)}" for _ in range(200)], lambda n: n >= 1),
            "by recordID prefix": timed(host, "getRecordings recordID prefix", [f"recordID={r[:12]}" for r in ids], lambda n: n >= 1),
            "by meta filter": timed(host, "getRecordings meta_ filter", [f"meta_bbb-context-id=course-{rnd.randrange(COURSES)}" for _ in range(200)], lambda n: n >= 1),
            "unfiltered page of 100": timed(host, "getRecordings limit=100", [f"limit=100&offset={rnd.randrange(0, max(N // 100, 1)) * 100}" for _ in range(50)], lambda n: n == min(100, N)),
        }
        p.terminate(); p.wait()
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_import():
    tmp = tempfile.mkdtemp(prefix="ferrolite-bench-import-")
    try:
        staging = os.path.join(tmp, "staging")
        os.makedirs(staging)
        ids = [hashlib.sha1(f"imp{i}".encode()).hexdigest() + f"-{1700000000000 + i}" for i in range(IMPORTS)]
        for rid in ids:
            subprocess.check_call([sys.executable, os.path.join(HERE, "make-fixtures.py"), staging, "--big", "5", rid])
        size = os.path.getsize(os.path.join(staging, ids[0] + ".tar"))
        spool = os.path.join(tmp, "spool")
        os.makedirs(spool)
        p, host = start(tmp)
        PROCS.append(p)
        time.sleep(0.5)
        t0 = time.time()
        for rid in ids:
            os.rename(os.path.join(staging, rid + ".tar"), os.path.join(spool, rid + ".tar"))
        deadline = t0 + 600
        while [f for f in os.listdir(spool) if f.endswith(".tar")]:
            if time.time() > deadline:
                raise SystemExit("imports did not finish within 10 minutes")
            time.sleep(0.05)
        dt = time.time() - t0
        conn = http.client.HTTPConnection(host)
        conn.request("GET", signed("getRecordings", "state=any"))
        n = conn.getresponse().read().count(b"<recording>")
        p.terminate(); p.wait()
        assert n == IMPORTS, f"{n} of {IMPORTS} imported"
        rate = IMPORTS / dt * 60
        print(f"import: {IMPORTS} tarballs of {size / 1e6:.1f} MB in {dt:.1f} s = {rate:.0f} imports/min")
        return rate
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        q = bench_queries()
        rate = bench_import()
    finally:
        for proc in PROCS:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ok = all(v[1] < 10 for k, v in q.items() if k != "unfiltered page of 100") and q["unfiltered page of 100"][1] < 50 and rate >= 300
    print("targets (filtered p99 < 10 ms, page p99 < 50 ms, >= 300 imports/min):", "MET" if ok else "NOT MET")
