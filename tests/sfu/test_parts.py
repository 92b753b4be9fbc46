"""The media-server parts that need no Janus: choices, sizes, addresses, secrets, options."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack

from gui.core.sfu_session import CappedVideoTrack, VideoChooser, height_cap
from signaling.server.sfu import launch
from signaling.server.sfu.pool import SfuAddress
from signaling.server.sfu.sweep import deployment_of, room_description, room_secret
from tests.server.process import run_server
from tests.sfu.janus_proc import free_port, listening


def test_publish_size_follows_the_room() -> None:
    assert [height_cap(n) for n in (1, 2, 3, 4, 5, 16)] == [720, 720, 480, 480, 360, 360]


def test_videos_go_to_the_most_recent_speakers_then_the_first_arrivals() -> None:
    chooser = VideoChooser(limit=2)
    chooser.present(["a", "b", "c", "d"])
    assert chooser.shown() == {"a", "b"}  # nobody spoke: the first two
    chooser.spoke("d", 1.0)
    assert chooser.shown() == {"d", "a"}
    chooser.spoke("c", 2.0)
    assert chooser.shown() == {"c", "d"}
    chooser.spoke("d", 3.0)
    chooser.present(["a", "b", "d"])  # c left
    assert chooser.shown() == {"d", "a"}
    chooser.spoke("zed", 4.0)  # not a participant: ignored
    assert chooser.shown() == {"d", "a"}


class _Frames(MediaStreamTrack):
    kind = "video"

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.size = (width, height)

    async def recv(self) -> av.VideoFrame:
        width, height = self.size
        frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
        frame.pts, frame.time_base = 3000, Fraction(1, 90000)
        return frame


async def test_a_tall_camera_is_scaled_down_to_the_cap_keeping_its_shape_and_time() -> None:
    cap = [720]
    track = CappedVideoTrack(_Frames(1920, 1080), lambda: cap[0])
    frame = await track.recv()
    assert (frame.width, frame.height, frame.pts) == (1280, 720, 3000)
    cap[0] = 360
    frame = await track.recv()
    assert (frame.width, frame.height) == (640, 360)
    small = CappedVideoTrack(_Frames(320, 180), lambda: 360)
    frame = await small.recv()
    assert (frame.width, frame.height) == (320, 180)  # never scaled up
    track.stop()
    small.stop()
    await asyncio.sleep(0)


def test_sfu_addresses() -> None:
    assert SfuAddress.parse("ws://127.0.0.1:8188") == SfuAddress("ws://127.0.0.1:8188", None)
    assert SfuAddress.parse("ws://h:9000?admin=9100") == SfuAddress("ws://h:9000", 9100)
    for bad in ("http://h:8188", "ws://:8188", "ws://h:99999", "ws://h:80", "ws://h:9?admin=x"):
        with pytest.raises(ValueError):
            SfuAddress.parse(bad)


def test_rooms_are_marked_with_the_service_and_their_secret_can_be_worked_out_again() -> None:
    assert room_description("svc", "m-1") == "parley:svc:m-1"
    assert room_secret("s" * 24, "room") == room_secret("s" * 24, "room")
    assert room_secret("s" * 24, "room") != room_secret("t" * 24, "room")
    assert room_secret("s" * 24, "room") != room_secret("s" * 24, "other")
    # One service: the same database; another service, another one (never the password).
    one = deployment_of("postgresql://u:pw@db.example:5433/parley")
    assert one == deployment_of("postgresql://u:other@db.example:5433/parley")
    assert one != deployment_of("postgresql://u:pw@db.example:5433/elsewhere")
    assert deployment_of(Path("/var/lib/parley/parley.db")) != one


def test_the_admin_secret_file_is_checked(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("a" * 24 + "\n")
    assert launch.read_secret(good) == "a" * 24
    for text in ("", "short", "has spaces in it, quite long"):
        bad = tmp_path / "bad"
        bad.write_text(text)
        with pytest.raises(ValueError):
            launch.read_secret(bad)
    with pytest.raises(ValueError, match="cannot read"):
        launch.read_secret(tmp_path / "missing")


def test_the_configuration_is_rendered_with_every_placeholder_filled(tmp_path: Path) -> None:
    out = launch.render(
        tmp_path / "conf", admin_secret="s" * 20, ws_port=1234, admin_port=1235, rtp_ports=(2, 3)
    )
    for path in out.iterdir():
        text = path.read_text()
        assert "@" not in text.replace("@include", ""), path
        assert path.stat().st_mode & 0o077 == 0
    websockets = (out / "janus.transport.websockets.jcfg").read_text()
    assert 'ws_ip = "127.0.0.1"' in websockets and 'admin_ws_ip = "127.0.0.1"' in websockets
    assert "ws_port = 1234" in websockets and "admin_ws_port = 1235" in websockets
    assert "token_auth = true" in (out / "janus.jcfg").read_text()


def test_parley_server_says_what_is_wrong_with_its_sfu_options(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("tiny")
    cases = [
        (["--sfu", "ws://127.0.0.1:8188"], "--sfu needs --sfu-admin-secret-file"),
        (["--sfu-admin-secret-file", str(secret)], "needs --sfu"),
        (["--sfu", "ws://127.0.0.1:8188", "--sfu-admin-secret-file", str(secret)], "16 to 256"),
        (["--sfu", "http://x"], "is not a ws://HOST:PORT address"),
        (["--sfu", "ws://127.0.0.1:8188", "--sfu-capacity", "1"], "at least 2"),
        (["--sfu-deployment", "a b"], "1 to 64 letters, digits and ._-"),
    ]
    for args, message in cases:
        result = run_server("--port", "0", "--db", str(tmp_path / "db"), *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def _copies() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("parley-janus-*"))


def test_one_command_starts_janus_and_sigterm_stops_it_and_removes_the_copy(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("b" * 32)
    ws, admin = free_port(), free_port()
    before = _copies()
    process = subprocess.Popen(
        [sys.executable, "-m", "signaling.server.sfu.launch", "--admin-secret-file", str(secret),
         "--ws-port", str(ws), "--admin-port", str(admin), "--rtp-ports", "43000-43099"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=launch.CONFIG_DIR.parents[1],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not (listening(ws) and listening(admin)):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        made = _copies() - before
        assert len(made) == 1 and (made.pop() / "janus.jcfg").exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert _copies() - before == set()  # the copy with the secret is gone
        assert not listening(ws) and not listening(admin)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
