#!/usr/bin/env python3
"""Writes signed BBB API request paths, one per line, for wrk (scripts/bench/cycle.lua).

usage: paths.py CALL SECRET COUNT TEMPLATE [PREFIX]
TEMPLATE is the query with {n} replaced by the request number, e.g. 'meetingID=b-{n}&name=x'.
"""
import hashlib
import sys

call, secret, count, template = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
prefix = sys.argv[5] if len(sys.argv) > 5 else "/bigbluebutton/api"
out = sys.stdout
for n in range(count):
    q = template.replace("{n}", str(n))
    c = hashlib.sha1((call + q + secret).encode()).hexdigest()
    out.write(f"{prefix}/{call}?{q}{'&' if q else ''}checksum={c}\n")
