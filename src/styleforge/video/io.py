"""Reading and writing video files with PyAV (FFmpeg, shipped in its wheels).

Frames are decoded to RGB ``uint8`` arrays (H, W, 3) with their presentation times; the
output keeps the source's time base and timestamps (so variable frame rates survive),
its average frame rate, and its audio (copied packet for packet when the output
container can hold the codec, otherwise re-encoded to AAC or Opus). H.264 and VP9 in
4:2:0 need even sides, so an odd width or height loses its last column or row.
The output is written to a temporary file beside the target and renamed into place
only when complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from styleforge.errors import StyleforgeError, one_line
from styleforge.utils.fs import atomic_path, check_regular_file

#: Suffixes read as video by ``styleforge transfer``.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
#: Output suffix -> (video encoder, audio encoder used when the source's audio cannot be copied).
ENCODERS = {".mp4": ("libx264", "aac"), ".m4v": ("libx264", "aac"), ".mov": ("libx264", "aac"),
            ".mkv": ("libx264", "aac"), ".webm": ("libvpx-vp9", "libopus")}
#: Audio codecs each output container takes as they are.
COPYABLE_AUDIO = {".mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}, ".m4v": {"aac", "mp3", "ac3", "eac3"},
                  ".mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le"}, ".webm": {"opus", "vorbis"},
                  ".mkv": None}  # None: any codec


def require_video_libraries() -> Any:
    """PyAV, imported; a one-line error saying what to install when PyAV or OpenCV is missing."""
    try:
        import av
        import cv2  # noqa: F401 (the flow and warping of temporal smoothing)
    except ImportError:
        raise StyleforgeError("video needs PyAV and OpenCV: pip install 'styleforge[video]'") from None
    return av


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a video suffix (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_video_output(path: str | os.PathLike[str]) -> Path:
    """``path`` if its suffix names a container styleforge writes; a one-line error otherwise."""
    target = Path(path)
    if target.suffix.lower() not in ENCODERS:
        raise StyleforgeError(f"cannot write video '{target}': use one of {', '.join(ENCODERS)} as the output suffix")
    return target


@dataclass(frozen=True)
class VideoInfo:
    """What is known of a clip before decoding it.

    Attributes:
        width: frame size in pixels.
        height: frame size in pixels.
        fps: average frame rate (frames per second, exact fraction).
        frames: frame count (from the container, or estimated from the duration; 0 if unknown).
        audio: the audio codec's name, or None when the clip is silent.
        time_base: the video stream's time base (seconds per timestamp unit).
    """

    width: int
    height: int
    fps: Fraction
    frames: int
    audio: str | None
    time_base: Fraction


@dataclass
class Frame:
    """One decoded frame: RGB ``uint8`` pixels (H, W, 3) and its timestamp in the stream's time base."""

    pixels: np.ndarray
    pts: int | None


class VideoReader:
    """An open video file. Use as a context manager; iterate :meth:`frames`.

    Raises:
        StyleforgeError: missing file, not a video, or a video without a picture stream.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        av = require_video_libraries()
        self.path = check_regular_file(path, "video")
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise StyleforgeError(f"cannot read video '{self.path}': {one_line(exc, 160)}") from None
        if not self.container.streams.video:
            self.container.close()
            raise StyleforgeError(f"cannot read video '{self.path}': it holds no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None
        self.info = self._probe()

    def _probe(self) -> VideoInfo:
        context = self.stream.codec_context
        if not (context.width and context.height):
            raise StyleforgeError(f"cannot read video '{self.path}': its video stream has no frame size")
        fps = Fraction(self.stream.average_rate or self.stream.guessed_rate or 25)
        frames = int(self.stream.frames or 0)
        if not frames and self.stream.duration and self.stream.time_base:
            frames = round(float(self.stream.duration * self.stream.time_base * fps))
        audio = self.audio.codec_context.name if self.audio is not None else None
        return VideoInfo(context.width, context.height, fps, frames, audio, Fraction(self.stream.time_base or Fraction(1, 90000)))

    def frames(self) -> Iterator[Frame]:
        """Decode the video stream's frames in presentation order."""
        import av

        try:
            for frame in self.container.decode(self.stream):
                yield Frame(frame.to_ndarray(format="rgb24"), frame.pts)
        except av.FFmpegError as exc:
            raise StyleforgeError(f"cannot decode video '{self.path}': {one_line(exc, 160)}") from None

    def audio_packets(self) -> Iterator[Any]:
        """The audio stream's packets from the start (a second pass over the file)."""
        if self.audio is None:
            return
        self.container.seek(0)
        for packet in self.container.demux(self.audio):
            if packet.dts is not None:
                yield packet

    def close(self) -> None:
        """Close the file."""
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def even_size(width: int, height: int) -> tuple[int, int]:
    """The largest even width and height not above the given ones (4:2:0 chroma needs even sides)."""
    if width < 2 or height < 2:
        raise StyleforgeError(f"a {width}x{height} video is too small to encode; it needs at least 2x2 pixels")
    return width - width % 2, height - height % 2


class VideoWriter:
    """Encode RGB frames to ``target`` with ``source``'s timing and audio; atomic.

    Use as a context manager: frames go to a temporary file beside ``target``, which
    replaces ``target`` only when the ``with`` block ends without an error.

    Args:
        target: output path; its suffix picks the container and codecs (:data:`ENCODERS`).
        source: the open input, for its time base, frame rate and audio.
        width: output frame size (even).
        height: output frame size (even).
        crf: constant-rate-factor quality (lower is better; 18 is visually lossless for H.264).
    """

    def __init__(self, target: str | os.PathLike[str], source: VideoReader, width: int, height: int, crf: int = 18) -> None:
        self.target = check_video_output(target)
        self.source, self.width, self.height, self.crf = source, width, height, crf
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> VideoWriter:
        import av

        temporary = self._stack.enter_context(atomic_path(self.target))
        try:
            self.container = self._stack.enter_context(av.open(str(temporary), "w"))
        except (av.FFmpegError, OSError) as exc:
            self._stack.close()
            raise StyleforgeError(f"cannot write video '{self.target}': {one_line(exc, 160)}") from None
        self.video = self._video_stream()
        self._audio_out, self._audio_copy = self._audio_stream()
        self._count = 0
        return self

    def _video_stream(self) -> Any:
        codec, _ = ENCODERS[self.target.suffix.lower()]
        info = self.source.info
        stream = self.container.add_stream(codec, rate=info.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.codec_context.time_base = info.time_base
        stream.options = {"crf": str(self.crf)} | ({"b:v": "0"} if codec == "libvpx-vp9" else {})
        return stream

    def _audio_stream(self) -> tuple[Any, bool]:
        """The output audio stream and whether packets are copied (else re-encoded)."""
        source = self.source.audio
        if source is None:
            return None, False
        suffix = self.target.suffix.lower()
        copyable = COPYABLE_AUDIO[suffix]
        if copyable is None or source.codec_context.name in copyable:
            return self.container.add_stream_from_template(source), True
        _, codec = ENCODERS[suffix]
        rate = 48000 if codec == "libopus" else source.codec_context.sample_rate
        return self.container.add_stream(codec, rate=rate), False

    @property
    def audio_mode(self) -> str | None:
        """``copied``, ``re-encoded``, or None when the source is silent."""
        if self._audio_out is None:
            return None
        return "copied" if self._audio_copy else "re-encoded"

    def write(self, pixels: np.ndarray, pts: int | None) -> None:
        """Encode one RGB ``uint8`` frame (cropped to the writer's size) at ``pts``."""
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels[: self.height, : self.width]), format="rgb24")
        frame.pts = pts if pts is not None else self._count
        frame.time_base = self.source.info.time_base
        self._count += 1
        try:
            self.container.mux(self.video.encode(frame))
        except (av.FFmpegError, OSError) as exc:
            raise StyleforgeError(f"cannot write video '{self.target}': {one_line(exc, 160)}") from None

    def _write_audio(self) -> None:
        """Copy or re-encode the source's audio into the output."""
        if self._audio_out is None:
            return
        if self._audio_copy:
            for packet in self.source.audio_packets():
                packet.stream = self._audio_out
                self.container.mux(packet)
            return
        self.source.container.seek(0)
        for frame in self.source.container.decode(self.source.audio):
            frame.pts = None  # the encoder counts samples itself
            self.container.mux(self._audio_out.encode(frame))
        self.container.mux(self._audio_out.encode(None))

    def _finish(self) -> None:
        """Flush the video encoder, add the audio and close the container (its trailer)."""
        self.container.mux(self.video.encode(None))
        self._write_audio()
        self.container.close()

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        # The container is complete before the temporary file is renamed; on any error the
        # temporary file is removed and the error goes on, naming the target.
        import av

        try:
            if exc_type is None:
                self._finish()
        except (av.FFmpegError, OSError) as error:
            failure = StyleforgeError(f"cannot write video '{self.target}': {one_line(error, 160)}")
            self._stack.__exit__(StyleforgeError, failure, None)
            raise failure from None
        except BaseException as error:
            self._stack.__exit__(type(error), error, error.__traceback__)
            raise
        self._stack.__exit__(exc_type, exc, traceback)
