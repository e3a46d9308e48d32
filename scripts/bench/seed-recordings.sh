#!/usr/bin/env bash
# Seeds N recordings straight into the recordings index that `ferrolite` created (the fast
# way to get 100,000 rows; the importer's own rate is measured by bench-recordings.sh), in
# one SQL statement per table: 10 recordings per meeting `meeting-<i % 10000>`, four
# metadata each, one presentation format with two thumbnails.
#
# usage: seed-recordings.sh N sqlite PATH
#        seed-recordings.sh N postgres 'psql connection args…'
set -euo pipefail
N=$1 KIND=$2
shift 2
sql() { # $1: the row source of i = 1..N
  local s=$1
  cat <<SQL
INSERT INTO recordings (id, record_id, meeting_id, internal_meeting_id, name, published, state,
    starttime, endtime, participants, protected, publish_updated)
  SELECT i, 'bench-rec-' || i, 'meeting-' || (i % 10000), 'bench-rec-' || i, 'Room ' || i, true,
    'published', 1600000000000 + i * 1000, 1600000000000 + i * 1000 + 3600000, 5, false, false FROM $s;
INSERT INTO recording_metadata (recording_id, seq, key, value)
  SELECT i, 1, 'bbb-origin', 'greenlight' FROM $s UNION ALL
  SELECT i, 2, 'gl-listed', CASE WHEN i % 2 = 1 THEN 'true' ELSE 'false' END FROM $s UNION ALL
  SELECT i, 3, 'bbb-context-id', 'course-' || (i % 5000) FROM $s UNION ALL
  SELECT i, 4, 'bbb-origin-server-name', 'lms.example.org' FROM $s;
INSERT INTO playback_formats (id, recording_id, format, url, length)
  SELECT i, i, 'presentation', '/playback/presentation/2.3/bench-rec-' || i, 60 FROM $s;
INSERT INTO thumbnails (playback_format_id, sequence, width, height, alt, url)
  SELECT i, 0, 176, 136, 'slide 0', '/presentation/bench-rec-' || i || '/thumb-1.png' FROM $s UNION ALL
  SELECT i, 1, 176, 136, 'slide 1', '/presentation/bench-rec-' || i || '/thumb-2.png' FROM $s;
SQL
}
case "$KIND" in
  sqlite)
    python3 - "$1" "$N" "$(sql s)" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30)
n, body = int(sys.argv[2]), sys.argv[3]
con.execute(f"CREATE TEMP TABLE s AS WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {n}) SELECT i FROM c")
con.executescript("BEGIN;" + body + "COMMIT;")  # no ANALYZE, as in production
PY
    ;;
  postgres)
    # shellcheck disable=SC2086
    psql -q -v ON_ERROR_STOP=1 $1 <<SQL
BEGIN;
$(sql "generate_series(1, $N) AS s(i)")
SELECT setval('recordings_id_seq', $N), setval('playback_formats_id_seq', $N);
COMMIT;
ANALYZE;
SQL
    ;;
  *) echo "seed-recordings.sh: KIND is sqlite or postgres" >&2; exit 1 ;;
esac
