"""What this end sends and plays: the local tracks from --video and --audio, audio devices
by name, the --speaker output, and whether a command needs Qt."""

from __future__ import annotations

import argparse
from typing import Any

from gui.cli.output import BadArguments, CliError, emit
from gui.core.call_session import CallSession, LocalMedia
from gui.media.processing import AudioProcessor, ProcessedAudioTrack, ProcessingOptions


def _resolution(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise BadArguments(f"--resolution must look like 640x480, not '{text}'") from None
    if not (64 <= width <= 3840 and 64 <= height <= 2160) or width % 2 or height % 2:
        raise BadArguments("--resolution must be even sizes from 64x64 to 3840x2160")
    return width, height


def local_media(args: argparse.Namespace) -> LocalMedia:
    """The tracks to send, from --video and --audio."""
    from gui.media.pattern import PatternVideoTrack
    from gui.media.tone import ToneAudioTrack

    media = LocalMedia()
    if args.video == "pattern":
        media.camera = PatternVideoTrack(*_resolution(args.resolution), fps=args.fps)
    elif args.video == "camera":
        from gui.devices import CameraTrack, DeviceCatalog

        if not DeviceCatalog().cameras():
            raise CliError("no camera was found on this computer")
        media.camera = CameraTrack(
            None, width=_resolution(args.resolution)[0], height=_resolution(args.resolution)[1]
        )
    if args.audio.startswith("tone"):
        _, _, hz = args.audio.partition(":")
        media.audio = ToneAudioTrack(float(hz) if hz else 440.0)
    elif args.audio.startswith("mic"):
        from gui.devices import DeviceCatalog, DeviceKind, MicrophoneTrack, capture_period

        try:
            device = audio_device(DeviceCatalog(), DeviceKind.AUDIO_INPUT, args.audio[4:])
        except CliError:
            media.stop()
            raise
        off = getattr(args, "no_audio_processing", False)
        processor = AudioProcessor(ProcessingOptions.off() if off else ProcessingOptions())
        microphone = MicrophoneTrack(
            device, period_frames=capture_period(not off), pulse_reader=True
        )
        media.audio = ProcessedAudioTrack(microphone, processor)
    return media


def audio_device(catalog: Any, kind: Any, name: str) -> Any:
    """The ``QAudioDevice`` of ``kind`` whose description or id is ``name`` (any case; the
    default one for "" or "default"); BadArguments naming what there is, if none."""
    from gui.devices import DeviceKind

    word = "microphone" if kind is DeviceKind.AUDIO_INPUT else "sound output"
    found = catalog.devices(kind)
    if not found:
        raise CliError(f"no {word} was found on this computer")
    wanted = name.strip().lower()
    for info in found:
        if (wanted in ("", "default") and info.is_default) or wanted in (
            info.id.lower(),
            info.description.lower(),
        ):
            lookup = catalog.audio_input if kind is DeviceKind.AUDIO_INPUT else catalog.audio_output
            return lookup(info.id)
    if wanted in ("", "default"):
        return None  # no default marked: Qt's own default
    names = ", ".join(f"'{info.description}'" for info in found)
    raise BadArguments(f"there is no {word} named '{name}' (there are: {names})")


class SpeakerOutput:
    """``--speaker``: the call's remote audio played on an output device; what it plays is
    the echo canceller's reference when this end sends a processed microphone."""

    def __init__(self, name: str, media: LocalMedia) -> None:
        from gui.devices import DeviceCatalog, DeviceKind, SpeakerSink

        catalog = DeviceCatalog()
        self.sink = SpeakerSink(audio_device(catalog, DeviceKind.AUDIO_OUTPUT, name))
        self.processor = (
            media.audio.processor if isinstance(media.audio, ProcessedAudioTrack) else None
        )
        if self.processor is not None:
            self.sink.played_listeners.append(self.processor.played)
        emit("speaker", device=self.sink.device.description())

    def attach(self, session: CallSession) -> None:
        """Play the audio ``session`` receives, now and after a renegotiated track."""

        def remote(slot: str, receiver: Any) -> None:
            if slot == "audio":
                self.sink.attach(receiver)

        session.on("remote_track", remote)
        receiver = session.receivers.get("audio")
        if receiver is not None:
            remote("audio", receiver)

    def summary(self) -> dict[str, Any]:
        """What was played, for the call's summary."""
        return {
            "speaker_underruns": self.sink.underruns,
            "speaker_frames_played": self.sink.frames_fed,
        }

    def stop(self) -> None:
        """Release the output device."""
        self.sink.stop()


def needs_qt(args: argparse.Namespace) -> bool:
    """Whether the command uses Qt (a camera, a microphone or a shared screen)."""
    if args.command not in ("call", "answer", "meet"):
        return False
    return (
        getattr(args, "share_screen", None) is not None
        or args.video == "camera"
        or args.audio.startswith("mic")
        or getattr(args, "speaker", "none") != "none"
    )
