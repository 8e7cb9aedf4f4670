"""Test clips whose true motion is known: a real photo (tests/assets/coffee.jpg) panned
and zoomed by a virtual camera, encoded with PyAV, optionally with a sine-tone track."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "coffee.jpg"


@dataclass(frozen=True)
class Camera:
    """Frame ``t`` shows the photo around ``centre(t)`` at ``scale(t)`` photo pixels per frame pixel."""

    width: int = 160
    height: int = 96
    pan: tuple[float, float] = (1.3, 0.45)  # photo pixels per frame
    zoom: tuple[float, float] = (1.25, 1.0)  # scale at the first and last frame
    frames: int = 12
    start: tuple[float, float] = (200.0, 130.0)

    def scale(self, t: int) -> float:
        return self.zoom[0] + (self.zoom[1] - self.zoom[0]) * t / max(1, self.frames - 1)

    def centre(self, t: int) -> np.ndarray:
        return np.array(self.start) + t * np.array(self.pan)

    def frame_centre(self) -> np.ndarray:
        return np.array([(self.width - 1) / 2, (self.height - 1) / 2])

    def render(self, photo: np.ndarray, t: int) -> np.ndarray:
        """Frame ``t`` (RGB uint8): photo(P) at frame pixel x, P = centre + scale (x - frame centre)."""
        import cv2

        s, fc = self.scale(t), self.frame_centre()
        offset = self.centre(t) - s * fc
        matrix = np.array([[s, 0, offset[0]], [0, s, offset[1]]], dtype=np.float64)
        return cv2.warpAffine(photo, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)

    def true_backward_flow(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The exact flow frame t -> frame t-1 (H, W, 2) and where it stays inside frame t-1."""
        fc = self.frame_centre()
        xs, ys = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        grid = np.stack([xs, ys], axis=-1)
        before = (self.centre(t) - self.centre(t - 1) + self.scale(t) * (grid - fc)) / self.scale(t - 1) + fc
        inside = (before[..., 0] >= 0) & (before[..., 0] <= self.width - 1) & (before[..., 1] >= 0) & (before[..., 1] <= self.height - 1)
        return (before - grid).astype(np.float32), inside


def photo_array() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(PHOTO).convert("RGB"))


def write_clip(path: Path, camera: Camera = Camera(), fps: Fraction = Fraction(24), audio: bool = True,
               crf: int = 4, codec: str = "libx264") -> Path:
    """Encode the camera's frames (H.264 near lossless, or ``ffv1`` 4:4:4 lossless for odd
    sizes) and a 440 Hz tone as AAC."""
    import av

    photo = photo_array()
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height = camera.width, camera.height
        video.pix_fmt = "yuv420p" if codec == "libx264" else "yuv444p"
        video.options = {"crf": str(crf)} if codec == "libx264" else {}
        sound = container.add_stream("aac", rate=16000) if audio else None
        for t in range(camera.frames):
            frame = av.VideoFrame.from_ndarray(camera.render(photo, t), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            seconds = camera.frames / float(fps)
            samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(16000 * seconds)) / 16000)).astype(np.float32)
            for start in range(0, samples.size, 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame of ``path`` as RGB uint8."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def true_warping_error(frames: list[np.ndarray], camera: Camera) -> float:
    """Mean |out_t - out_{t-1}(x + true flow)| over pixels that stay in view, 0-255 units, using the
    camera's exact motion (independent of any flow estimate)."""
    from styleforge.video.flow import warp

    errors = []
    for t in range(1, len(frames)):
        flow, inside = camera.true_backward_flow(t)
        warped = warp(frames[t - 1], flow).astype(np.float32)
        errors.append(float(np.abs(frames[t].astype(np.float32) - warped)[inside].mean()))
    return float(np.mean(errors))
