"""Which camera, microphone and speaker a call uses, per the settings, and switching them mid-call.

With no camera (or by choice in the settings) a video call can send the
moving test pattern and a tone instead; with no camera and no such choice,
the other side sees your avatar. A device that disappears mid-call turns that
part off ("camera off"), never the call.

The microphone goes out through the audio processing (echo cancellation, noise
suppression, high-pass filter, automatic gain: gui/media/processing.py), one
:class:`AudioProcessor` for the app, whose echo canceller hears what every speaker
this class opens plays. Switching microphone or speaker mid-call keeps it: the new
microphone is processed by it, the new speaker feeds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiortc.mediastreams import MediaStreamTrack
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMenu

from gui.core.call_session import AUDIO, CallSession, LocalMedia
from gui.core.meeting_session import MeetingSession
from gui.core.peer_link import CAMERA
from gui.core.profile import Profile
from gui.devices import CameraTrack, DeviceCatalog, MicrophoneTrack, SpeakerSink, capture_period
from gui.media.analysis import TrackConsumer
from gui.media.mixer import AudioMixer
from gui.media.processing import AudioProcessor, ProcessedAudioTrack, ProcessingOptions
from gui.media.tap import TappedTrack

log = logging.getLogger("parley.app.media")


class AppMedia(QObject):
    """Opens devices for calls and plays the remote audio."""

    def __init__(self, profile: Profile) -> None:
        super().__init__()
        self.profile = profile
        self.catalog = DeviceCatalog(self)
        self.speaker: SpeakerSink | None = None
        #: Whether the latest call was placed or answered with video: with no camera to send,
        #: its window says so and offers the settings.
        self.video_wanted = False
        #: The microphone's processing, made for the first microphone opened.
        self.processor: AudioProcessor | None = None
        self._session: CallSession | None = None
        #: A meeting plays every participant at once, through one mixer.
        self.mixer: AudioMixer | None = None
        self._meeting: MeetingSession | None = None

    # Making tracks ---------------------------------------------------------------------

    def make(self, audio: bool, video: bool) -> LocalMedia:
        """The tracks for a new call (``video`` False: audio only)."""
        self.video_wanted = video
        return LocalMedia(
            audio=self.microphone() if audio else None,
            camera=self.camera() if video else None,
        )

    def camera(self, device_id: str | None = None) -> MediaStreamTrack | None:
        """The chosen camera (tapped for the self-view), the test pattern, or ``None``."""
        settings = self.profile.settings
        if settings.synthetic_media:
            from gui.media.pattern import PatternVideoTrack

            return TappedTrack(PatternVideoTrack(640, 480))
        chosen = device_id or settings.camera_id
        device = self.catalog.camera(chosen) if chosen else None
        if device is None and not self.catalog.cameras():
            return None
        track = CameraTrack(device, catalog=self.catalog)
        tapped = TappedTrack(track)
        track.on("lost", lambda reason: self._camera_lost(tapped, reason))
        return tapped

    def microphone(
        self, device_id: str | None = None, processor: AudioProcessor | None = None
    ) -> MediaStreamTrack | None:
        """The chosen microphone after ``processor`` (the app's by default), the test tone
        (not processed, as no room carries it, but metered like a microphone: one's own
        speaking ring, "You are muted"), or ``None``."""
        settings = self.profile.settings
        if settings.synthetic_media:
            from gui.media.tone import ToneAudioTrack

            return ProcessedAudioTrack(ToneAudioTrack(440), AudioProcessor(ProcessingOptions.off()))
        chosen = device_id or settings.microphone_id
        device = self.catalog.audio_input(chosen) if chosen else None
        if device is None and not self.catalog.audio_inputs():
            return None
        processor = processor or self.call_processor()
        period = capture_period(processor.options.active)  # fixed for the track's life
        raw = MicrophoneTrack(device, catalog=self.catalog, period_frames=period, pulse_reader=True)
        track = ProcessedAudioTrack(raw, processor)
        raw.on("lost", lambda reason: self._microphone_lost(track, reason))
        return track

    def processing_options(self) -> ProcessingOptions:
        """The processing the settings ask for."""
        settings = self.profile.settings
        return ProcessingOptions(
            echo_cancellation=settings.echo_cancellation,
            noise_suppression=settings.noise_suppression,
            high_pass_filter=settings.high_pass_filter,
            auto_gain_control=settings.auto_gain_control,
        )

    def call_processor(self) -> AudioProcessor:
        """The app's processor (made on first use, with the settings' options)."""
        if self.processor is None:
            self.processor = AudioProcessor(self.processing_options())
            if self.speaker is not None:
                self.speaker.played_listeners.append(self.processor.played)
        return self.processor

    def apply_processing(self) -> None:
        """After the settings changed: the processing follows them from the next 10 ms on."""
        options = self.processing_options()
        if self.processor is not None and self.processor.options != options:
            self.processor.configure(options)

    def offer_camera(self, session: CallSession) -> bool:
        """After the settings changed: a video call sending no camera gets what is chosen now
        (a camera plugged in since, or the test pattern). Returns whether it did."""
        if not self.video_wanted or session.media.camera is not None or session.machine.ended:
            return False
        track = self.camera()
        if track is None:
            return False
        session.replace_camera(track)
        session.set_video_enabled(True)
        return True

    def _camera_lost(self, track: MediaStreamTrack, reason: str) -> None:
        log.warning("camera lost: %s", reason)
        session = self._session
        if session is not None and session.media.camera is track:
            session.replace_camera(None)

    def _microphone_lost(self, track: MediaStreamTrack, reason: str) -> None:
        log.warning("microphone lost: %s", reason)
        session = self._session
        if session is not None and session.media.audio is track:
            session.replace_microphone(None)

    # Playing the other side ------------------------------------------------------------

    def attach_speaker(self, session: CallSession) -> None:
        """Play the call's remote audio on the chosen speaker."""
        if self._session is session:
            return
        self._session = session
        session.on("remote_track", lambda slot, receiver: self._remote(session, slot, receiver))
        session.on("ended", lambda reason: self._ended(session))
        receiver = session.receivers.get(AUDIO)
        if receiver is not None:
            self._remote(session, AUDIO, receiver)

    def _remote(self, session: CallSession, slot: str, receiver: TrackConsumer) -> None:
        if slot != AUDIO or session is not self._session:
            return
        self._open_speaker()
        if self.speaker is not None:
            self.speaker.attach(receiver)

    def _open_speaker(self, device_id: str | None = None) -> None:
        if self.speaker is not None:
            return
        chosen = device_id or self.profile.settings.speaker_id
        device = self.catalog.audio_output(chosen) if chosen else None
        if device is None and not self.catalog.audio_outputs():
            log.info("no audio output: the call is silent here")
            return
        self.speaker = SpeakerSink(device, catalog=self.catalog, parent=self)
        if self.processor is not None:  # the echo canceller's reference
            self.speaker.played_listeners.append(self.processor.played)

    def _ended(self, session: CallSession) -> None:
        if session is self._session:
            self._session = None
            self.stop()

    def stop(self) -> None:
        """Stop playing (the call ended, or the app quits)."""
        if self.speaker is not None:
            speaker, self.speaker = self.speaker, None
            speaker.stop()

    # Switching devices mid-call --------------------------------------------------------

    def fill_menu(self, menu: QMenu, session: CallSession) -> None:
        """The call window's device menu: cameras, microphones, speakers."""
        self._fill(
            menu,
            lambda d: self._choose_camera(session, d),
            lambda d: self._choose_microphone(session, d),
            lambda d: self._choose_speaker(session, d),
        )

    def _fill(
        self,
        menu: QMenu,
        camera: Callable[[str], None],
        microphone: Callable[[str], None],
        speaker: Callable[[str], None],
    ) -> None:
        settings = self.profile.settings
        groups = (
            ("Camera", self.catalog.cameras(), settings.camera_id, camera),
            ("Microphone", self.catalog.audio_inputs(), settings.microphone_id, microphone),
            ("Speaker", self.catalog.audio_outputs(), settings.speaker_id, speaker),
        )
        for title, devices, current, choose in groups:
            section = menu.addSection(title)
            section.setEnabled(False)
            if not devices:
                none = menu.addAction(f"No {title.lower()} found")
                none.setEnabled(False)
                continue
            for device in devices:
                action = menu.addAction(device.description)
                action.setCheckable(True)
                action.setChecked(device.id == current or (not current and device.is_default))
                action.triggered.connect(lambda _=False, d=device.id, c=choose: c(d))

    def _choose_camera(self, session: CallSession, device_id: str) -> None:
        self.profile.settings.camera_id = device_id
        self.profile.save_settings_soon()
        session.replace_camera(self.camera(device_id))

    def _choose_microphone(self, session: CallSession, device_id: str) -> None:
        self.profile.settings.microphone_id = device_id
        self.profile.save_settings_soon()
        session.replace_microphone(self.microphone(device_id))

    def _choose_speaker(self, session: CallSession, device_id: str) -> None:
        self.profile.settings.speaker_id = device_id
        self.profile.save_settings_soon()
        receiver = session.receivers.get(AUDIO)
        self.stop()
        self._open_speaker(device_id)
        if self.speaker is not None and receiver is not None:
            self.speaker.attach(receiver)

    # Meetings --------------------------------------------------------------------------

    def play_meeting_audio(
        self, session: MeetingSession, username: str, receiver: TrackConsumer
    ) -> None:
        """Play ``username``'s audio in the meeting, mixed with everyone else's."""
        if self._meeting is not session or self.mixer is None:
            self._meeting, self.mixer = session, AudioMixer()
            mixer = self.mixer
            session.on("participant_left", lambda who, reason: mixer.remove(str(who)))
            session.on("ended", lambda reason: self._meeting_ended(session))
        receiver.listeners.append(self.mixer.listener_for(username))
        self._open_speaker()
        if self.speaker is not None and self.speaker.feed not in self.mixer.listeners:
            self.speaker.attach(self.mixer)

    def _meeting_ended(self, session: MeetingSession) -> None:
        if session is self._meeting:
            self._meeting, self.mixer = None, None
            self.stop()

    def fill_meeting_menu(
        self, menu: QMenu, session: MeetingSession, changed: Callable[[], None]
    ) -> None:
        """The meeting window's device menu; ``changed`` is called after a device switch."""

        def camera(device_id: str) -> None:
            self.profile.settings.camera_id = device_id
            self.profile.save_settings_soon()
            session.replace_track(CAMERA, self.camera(device_id))
            changed()

        def microphone(device_id: str) -> None:
            self.profile.settings.microphone_id = device_id
            self.profile.save_settings_soon()
            session.replace_track(AUDIO, self.microphone(device_id))
            changed()

        def speaker(device_id: str) -> None:
            self.profile.settings.speaker_id = device_id
            self.profile.save_settings_soon()
            self.stop()
            self._open_speaker(device_id)
            if self.speaker is not None and self.mixer is not None:
                self.speaker.attach(self.mixer)

        self._fill(menu, camera, microphone, speaker)
