#!/usr/bin/env python3
"""Writes the recording tarballs in fixtures/recordings/ (run from anywhere; idempotent).

Realistic tarballs are laid out exactly as BBB's post_publish hook packs them:
`<format>/<recordID>/metadata.xml` plus the playback files. Hostile ones exercise the
importer's refusals. Usage: make-fixtures.py [OUT_DIR] [--big MB RECORD_ID] (the latter
writes one presentation tarball of about MB megabytes, for the import benchmark).
"""
import gzip
import io
import os
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "recordings")
MTIME = 1715261800  # fixed, so the outputs are reproducible

PRES_ID = "a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123"
VIDEO_ID = "b1826d06111b3cdca1715fdd8108ecd05603d701-1715348128456"
PODCAST_ID = "c2937e17222c4dedb2826aee9219fde16714e812-1715434528789"
BREAKOUT_ID = "d3a48f28333d5efec3937bff0320aef27825f923-1715520928012"
PARENT_ID = "e4b59039444e6f0fd4a48c0041b1bf038936a034-1715520900000"


def meta_block(meeting_id, name, extra=()):
    items = [("bbb-origin", "greenlight"), ("bbb-origin-server-name", "bbb.example.org"),
             ("gl-listed", "false")] + list(extra) + [
        ("isBreakout", "false"), ("meetingId", meeting_id), ("meetingName", name)]
    return "  <meta>\n" + "".join(f"    <{k}>{v}</{k}>\n" for k, v in items) + "  </meta>\n"


def presentation_xml(rid, meeting_id="ext-meeting-1", name="Anton G&apos;s Room", breakout=None,
                     link_id=None, extra_meta=()):
    link_id = link_id or rid
    start = int(rid.rsplit("-", 1)[1])
    meeting = (f'  <meeting id="{rid}" externalId="{meeting_id}" name="{name}" '
               f'breakout="{"true" if breakout else "false"}"/>\n')
    brk = (f'  <breakout parentMeetingId="{breakout}" sequence="2" meetingId="{meeting_id}"/>\n'
           if breakout else "")
    return f"""<?xml version="1.0"?>
<recording>
  <id>{link_id}</id>
  <state>published</state>
  <published>true</published>
  <start_time>{start}</start_time>
  <end_time>{start + 3602790}</end_time>
  <participants>14</participants>
{meeting}{brk}{meta_block(meeting_id, name, extra_meta)}  <playback>
    <format>presentation</format>
    <link>https://bbb1.example.org/playback/presentation/2.3/{link_id}</link>
    <processing_time>93510</processing_time>
    <duration>3544120</duration>
    <extensions>
      <preview>
        <images>
          <image width="176" height="136" alt="Welcome to">https://bbb1.example.org/presentation/{rid}/presentation/d2d9a672040fbde2a47a10bf6c37b6a4b5ae187f-1715261728153/thumbnails/thumb-1.png</image>
          <image width="176" height="136" alt="">https://bbb1.example.org/presentation/{rid}/presentation/d2d9a672040fbde2a47a10bf6c37b6a4b5ae187f-1715261728153/thumbnails/thumb-2.png</image>
        </images>
      </preview>
    </extensions>
    <size>48213</size>
  </playback>
  <raw_size>310552871</raw_size>
</recording>
"""


def video_xml(rid):
    start = int(rid.rsplit("-", 1)[1])
    return f"""<?xml version="1.0"?>
<recording>
  <id>{rid}</id>
  <state>available</state>
  <published>true</published>
  <start_time>{start}</start_time>
  <end_time>{start + 1800000}</end_time>
  <participants>3</participants>
  <playback>
    <format>video</format>
    <link>https://bbb1.example.org/playback/video/{rid}/</link>
    <duration>1795000</duration>
    <size>412338</size>
  </playback>
{meta_block("ext-meeting-2", "Physics 101")}  <raw_size>99887766</raw_size>
</recording>
"""


def podcast_xml(rid, meeting_id="ext-meeting-3"):
    start = int(rid.rsplit("-", 1)[1])
    return f"""<?xml version="1.0"?>
<recording>
  <id>{rid}</id>
  <state>published</state>
  <published>true</published>
  <start_time>{start}</start_time>
  <end_time>{start + 600000}</end_time>
  <participants>2</participants>
  <meeting id="{rid}" externalId="{meeting_id}" name="Office hours" breakout="false"/>
{meta_block(meeting_id, "Office hours")}  <playback>
    <format>podcast</format>
    <link>https://bbb1.example.org/podcast/{rid}/audio.ogg</link>
    <duration>598000</duration>
  </playback>
</recording>
"""


class Tar:
    def __init__(self, path, gz=False):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.GNU_FORMAT)
        self.path, self.gz = path, gz

    def dir(self, name):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, MTIME
        self.tar.addfile(ti)

    def file(self, name, data):
        data = data.encode() if isinstance(data, str) else data
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime = len(data), 0o644, MTIME
        self.tar.addfile(ti, io.BytesIO(data))

    def link(self, name, target):
        ti = tarfile.TarInfo(name)
        ti.type, ti.linkname, ti.mtime = tarfile.SYMTYPE, target, MTIME
        self.tar.addfile(ti)

    def close(self):
        self.tar.close()
        data = self.buf.getvalue()
        if self.gz:
            data = gzip.compress(data, mtime=0)
        with open(self.path, "wb") as f:
            f.write(data)
        return data


def add_presentation(t, rid, xml=None, payload=b"webm" * 64):
    base = f"presentation/{rid}"
    for d in ["presentation", base, f"{base}/video", f"{base}/presentation",
              f"{base}/presentation/d2d9a672040fbde2a47a10bf6c37b6a4b5ae187f-1715261728153",
              f"{base}/presentation/d2d9a672040fbde2a47a10bf6c37b6a4b5ae187f-1715261728153/thumbnails"]:
        t.dir(d)
    t.file(f"{base}/metadata.xml", xml or presentation_xml(rid))
    t.file(f"{base}/video/webcams.webm", payload)
    t.file(f"{base}/shapes.svg", '<svg xmlns="http://www.w3.org/2000/svg"/>')
    t.file(f"{base}/panzooms.xml", "<recording/>")
    t.file(f"{base}/captions.json", "[]")
    thumbs = f"{base}/presentation/d2d9a672040fbde2a47a10bf6c37b6a4b5ae187f-1715261728153/thumbnails"
    t.file(f"{thumbs}/thumb-1.png", b"\x89PNG\r\n\x1a\nfake")
    t.file(f"{thumbs}/thumb-2.png", b"\x89PNG\r\n\x1a\nfake")
    t.link(f"{base}/video/latest.webm", "webcams.webm")  # an inner link: allowed


def main():
    args = sys.argv[1:]
    if "--big" in args:
        i = args.index("--big")
        mb, rid = int(args[i + 1]), args[i + 2]
        out = args[0] if i > 0 else "."
        t = Tar(os.path.join(out, f"{rid}.tar"))
        add_presentation(t, rid, payload=os.urandom(mb * 1024 * 1024))
        t.close()
        return
    out = args[0] if args else OUT
    os.makedirs(out, exist_ok=True)
    p = lambda n: os.path.join(out, n)

    t = Tar(p("presentation.tar")); add_presentation(t, PRES_ID); t.close()
    t = Tar(p("presentation.tar.gz"), gz=True); add_presentation(t, PRES_ID); t.close()

    t = Tar(p("video.tar"))
    base = f"video/{VIDEO_ID}"
    t.dir("video"); t.dir(base)
    t.file(f"{base}/metadata.xml", video_xml(VIDEO_ID))
    t.file(f"{base}/video-0.m4v", b"\x00\x00\x00\x18ftypmp42" * 32)
    t.file(f"{base}/index.html", "<html></html>")
    t.close()

    # Two formats of one recording in one tarball, as the hook ships them.
    t = Tar(p("podcast.tar"))
    add_presentation(t, PODCAST_ID, xml=presentation_xml(PODCAST_ID, "ext-meeting-3", "Office hours"))
    t.dir("podcast"); t.dir(f"podcast/{PODCAST_ID}")
    t.file(f"podcast/{PODCAST_ID}/metadata.xml", podcast_xml(PODCAST_ID))
    t.file(f"podcast/{PODCAST_ID}/audio.ogg", b"OggS" * 64)
    t.close()

    t = Tar(p("breakout.tar"))
    add_presentation(t, BREAKOUT_ID, xml=presentation_xml(
        BREAKOUT_ID, "ext-meeting-1-room-2", "Room 2", breakout=PARENT_ID))
    t.close()

    # --- hostile ---
    hid = "f5c6a14a555f7a1ae5b59d1152c2c0149a47b145-1715600000000"
    t = Tar(p("hostile-traversal.tar"))
    add_presentation(t, hid)
    t.file(f"presentation/{hid}/../../../../ferrolite-escape.txt", "escaped")
    t.close()

    t = Tar(p("hostile-absolute.tar"))
    add_presentation(t, hid)
    ti = tarfile.TarInfo("/tmp/ferrolite-absolute-escape.txt")
    data = b"escaped"
    ti.size, ti.mtime = len(data), MTIME
    t.tar.addfile(ti, io.BytesIO(data))
    t.close()

    t = Tar(p("hostile-symlink.tar"))
    add_presentation(t, hid)
    t.link(f"presentation/{hid}/passwd", "../../../../../../etc/passwd")
    t.close()

    t = Tar(p("hostile-no-metadata.tar"))
    t.dir("presentation"); t.dir(f"presentation/{hid}")
    t.file(f"presentation/{hid}/shapes.svg", "<svg/>")
    t.close()

    t = Tar(p("hostile-wrong-id.tar"))
    add_presentation(t, hid, xml=presentation_xml(hid, link_id=PRES_ID))
    t.close()

    t = Tar(p("hostile-device.tar"))
    add_presentation(t, hid)
    ti = tarfile.TarInfo(f"presentation/{hid}/null")
    ti.type, ti.devmajor, ti.devminor, ti.mtime = tarfile.CHRTYPE, 1, 3, MTIME
    t.tar.addfile(ti)
    t.close()

    whole = Tar(os.devnull)
    add_presentation(whole, hid)
    whole.tar.close()
    data = whole.buf.getvalue()
    with open(p("hostile-truncated.tar"), "wb") as f:
        f.write(data[: len(data) // 2 + 100])

    open(p("hostile-empty.tar"), "wb").close()


if __name__ == "__main__":
    main()
