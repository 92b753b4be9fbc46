"""The slot track: sources swapped or ended under a waiting reader never end the slot."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import MediaStreamError

from gui.media.pattern import PatternVideoTrack, decode_frame_number
from gui.media.slot import SlotTrack
from gui.media.tone import ToneAudioTrack


async def test_swapping_a_source_while_the_reader_waits() -> None:
    first, second = PatternVideoTrack(320, 240, fps=5), PatternVideoTrack(320, 240, fps=30)
    slot = SlotTrack("video", first)
    frame = await slot.recv()
    reader = asyncio.ensure_future(slot.recv())  # waits ~200 ms on the slow source
    await asyncio.sleep(0.02)
    slot.set_source(second)
    first.stop()  # what a sender reading ``first`` directly would not survive
    frame2 = await asyncio.wait_for(reader, 2)
    assert frame2.pts > frame.pts
    assert decode_frame_number(frame2) is not None
    slot.stop()
    second.stop()


async def test_a_source_that_ends_leaves_the_slot_waiting_for_the_next() -> None:
    tone = ToneAudioTrack(440)
    slot = SlotTrack("audio", tone)
    first = await slot.recv()
    tone.stop()  # the microphone was unplugged
    reader = asyncio.ensure_future(slot.recv())
    await asyncio.sleep(0.1)
    assert not reader.done() and slot.source is None
    replacement = ToneAudioTrack(880)
    slot.set_source(replacement)
    frame = await asyncio.wait_for(reader, 2)
    assert frame.pts == first.samples  # audio timestamps run on without a jump
    slot.stop()
    replacement.stop()
    with pytest.raises(MediaStreamError):
        await slot.recv()


async def test_stopping_the_slot_wakes_a_reader_with_no_source() -> None:
    slot = SlotTrack("video")
    reader = asyncio.ensure_future(slot.recv())
    await asyncio.sleep(0.05)
    slot.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(reader, 2)
