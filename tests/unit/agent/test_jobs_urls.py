"""Stream source URLs: masking, where they may point, pinning; and file sources that are lists.

Only addresses are parsed and checked here: nothing is sent anywhere (IP literals and
`localhost` resolve without a query).
"""

from __future__ import annotations

import socket
from pathlib import Path

import av
import psutil
import pytest

from agent.errors import Refusal
from agent.jobs.kinds._video_source import _opening
from agent.jobs.sources import playlist_kind
from agent.jobs.urls import check_url, ffmpeg_options, mask, needs_secret, scrub
from tests.videos import write_video


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:s3cret@cam.lan/live", "rtsp://admin:***@cam.lan/live"),
        ("rtsp://admin:p@ss:w@rd@10.0.0.5:554/x", "rtsp://admin:***@10.0.0.5:554/x"),
        (
            "http://cam.lan/video.cgi?user=admin&password=hunter2&fps=5",
            "http://cam.lan/video.cgi?user=admin&password=***&fps=5",
        ),
        ("http://cam.lan/x?token=abc", "http://cam.lan/x?token=***"),
        ("rtsp://viewer@cam.lan/live", "rtsp://viewer@cam.lan/live"),
        ("rtsp://cam.lan/live", "rtsp://cam.lan/live"),
    ],
)
def test_passwords_are_masked_and_a_masked_url_is_known_as_such(url: str, shown: str) -> None:
    assert mask(url) == shown
    assert mask(shown) == shown
    assert needs_secret(shown) == (shown != url)
    assert not needs_secret(url) or url == shown


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://127.0.0.1/x",
        "rtsp://127.1.2.3:8554/x",
        "http://localhost:8443/",
        "http://[::1]/",
        "http://0.0.0.0:80/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "rtsp://[::ffff:127.0.0.1]/x",
        "rtsp://[::ffff:169.254.1.1]/x",
        "http://2130706433/",
        "rtsp://224.0.0.251/x",
        "http://255.255.255.255/",
        "http://[fd00:ec2::254]/",
        "http://[::]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
    ],
)
def test_the_kit_itself_and_special_ranges_are_refused(url: str) -> None:
    with pytest.raises(Refusal) as refused:
        check_url(url, [])
    assert refused.value.error == "source_not_allowed"
    assert refused.value.hint


def test_the_kits_own_interface_addresses_are_refused() -> None:
    own = [
        a.address.split("%")[0]
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family in (socket.AF_INET, socket.AF_INET6)
    ]
    assert own
    for address in own:
        host = f"[{address}]" if ":" in address else address
        with pytest.raises(Refusal):
            check_url(f"rtsp://{host}/x", [])


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://192.168.1.20/stream1",
        "rtsp://10.1.2.3:8554/x",
        "http://172.16.0.9/cam.mjpg",
        "rtsps://[fd12:3456::20]/x",
    ],
)
def test_lan_cameras_are_allowed_and_pinned_to_their_address(url: str) -> None:
    target = check_url(url, [])
    assert target.url == url


def test_named_exceptions_and_pinning_keep_user_port_and_path() -> None:
    target = check_url("rtsp://cam:pw@localhost:8554/live?x=1", ["localhost"])
    assert target.url == "rtsp://cam:pw@127.0.0.1:8554/live?x=1" or target.url.startswith(
        "rtsp://cam:pw@[::1]:8554/live"
    )
    assert target.host == "localhost"
    assert check_url("http://127.0.0.7/x", ["127.0.0.0/8"]).url == "http://127.0.0.7/x"
    options = ffmpeg_options(check_url("http://localhost:8080/cam.mjpg", ["localhost"]))
    assert options["headers"] == "Host: localhost:8080\r\n"
    assert options["max_redirects"] == "0"
    assert "hls" not in options["format_whitelist"].split(",")
    assert (
        ffmpeg_options(check_url("rtsps://192.168.1.5/x", []))["protocol_whitelist"]
        == "rtsp,rtp,udp,tcp,tls,srtp"
    )


@pytest.mark.parametrize("url", ["rtsp:///x", "rtsp://cam:99999/x", "ftp://cam/x", "rtsp://cam:x/y"])
def test_malformed_urls_are_refused_before_any_lookup(url: str) -> None:
    with pytest.raises(Refusal) as refused:
        check_url(url, [])
    assert refused.value.error == "bad_source"


def test_lists_of_files_are_known_by_name_or_content(tmp_path: Path) -> None:
    outside = write_video(tmp_path / "outside.ts", seconds=0.5, fps=10, size=64)
    cases = {
        "a.m3u8": "#EXTM3U\n",
        "b.mp4": "\ufeff#EXTM3U\n",
        "c.txt": "ffconcat version 1.0\n",
        "d.mpd": "",
        "e.bin": "<?xml version='1.0'?><MPD/>",
        "f.mp4": "v=0\no=- 0 0 IN IP4 127.0.0.1\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert playlist_kind(tmp_path / name), name
    assert playlist_kind(outside) is None


def test_the_worker_opens_a_file_as_one_video_even_when_the_name_check_is_passed(tmp_path: Path) -> None:
    """FFmpeg's own format whitelist refuses a playlist that slipped past the checks by name."""
    outside = write_video(tmp_path / "outside.ts", seconds=0.5, fps=10, size=64)
    video = write_video(tmp_path / "clip.mp4", seconds=0.5, fps=10, size=64)
    location, options = _opening({"kind": "file", "location": str(video)}, None)
    assert options["protocol_whitelist"] == "file"
    with av.open(location, options=dict(options)) as container:
        assert container.streams.video
    playlist = tmp_path / "list.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:0.5,\n{outside}\n#EXT-X-ENDLIST\n")
    with av.open(str(playlist)) as unguarded:  # what FFmpeg does unasked: reads the outside file
        assert unguarded.format.name == "hls"
    with pytest.raises((av.error.FFmpegError, OSError)):
        av.open(str(playlist), options=dict(options))


def test_a_decoder_message_quoting_the_url_is_scrubbed() -> None:
    url = "rtsp://admin:pa55@10.0.0.9/x?token=t0k"
    said = f"Invalid data found when processing input: '{url}' (auth pa55)"
    assert "pa55" not in scrub(said, url)
    assert "t0k" not in scrub(said, url)
    assert "admin:***@10.0.0.9" in scrub(said, url)
