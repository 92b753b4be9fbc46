"""The pure parts of a call moving into a meeting through a media server: when the call's
connection may close (:class:`Handover`), and the picture shown across the switch
(:class:`FrameTimeline`). The whole switch between real processes and a real Janus is
``tests/sfu/test_escalation_sfu.py``."""

from __future__ import annotations

from aiortc.mediastreams import VideoStreamTrack

from gui.core.sfu_handover import Handover
from gui.media.analysis import FrameTimeline, VideoReceiver


def test_the_call_closes_once_both_ends_get_each_other_through_the_media_server() -> None:
    handover = Handover(timeout_s=10.0)
    assert not handover.may_close(0.0)
    handover.peer_said()  # the other end switched first: this one still shows the call
    assert not handover.may_close(1.0)
    assert handover.switched(2.0) is True  # news: tell the other end, show the new tracks
    assert handover.switched(2.5) is False  # said once
    assert handover.may_close(2.5)


def test_without_word_from_the_other_end_the_call_closes_after_the_timeout() -> None:
    handover = Handover(timeout_s=10.0)
    handover.switched(5.0)
    assert not handover.may_close(14.9)
    assert handover.may_close(15.0)


def test_the_timeline_follows_the_receiver_shown_and_measures_waits_and_jumps() -> None:
    call, server = VideoReceiver(VideoStreamTrack()), VideoReceiver(VideoStreamTrack())
    call.last_number = 99
    timeline = FrameTimeline(call)
    start = timeline.started_at
    timeline.frame(start + 0.1, 100)
    timeline.frame(start + 0.2, 101)
    timeline.follow(server)  # the media server's track is shown from now on
    assert call.timeline is None and server.timeline is timeline
    timeline.frame(start + 0.9, 99)  # it lags behind the call's path: repeats, no jump
    timeline.frame(start + 1.0, 104)  # 102 and 103 never shown: a jump of 3
    assert timeline.figures() == {
        "frames_since_mark": 4,
        "longest_gap_ms": 700,
        "largest_frame_skip": 3,
    }
