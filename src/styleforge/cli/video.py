"""``styleforge transfer clip.mp4 -o out.mp4``: the video branch of ``transfer``."""

from __future__ import annotations

import argparse
from pathlib import Path

from styleforge.cli.common import print_json
from styleforge.config import TransferOptions, VideoOptions
from styleforge.errors import StyleforgeError


def run_video_transfer(args: argparse.Namespace, inputs: list[str], model_file: Path, options: TransferOptions) -> int:
    """Stylise the one video in ``inputs`` into ``args.output`` with the model in
    ``model_file``; prints a summary (or JSON). The options and the output are checked
    before PyTorch is imported."""
    from styleforge.transfer.plan import check_video_options
    from styleforge.utils.fs import check_output_file
    from styleforge.video.io import check_video_output, require_video_libraries

    if len(inputs) != 1:
        raise StyleforgeError(f"give one video at a time (got {len(inputs)} inputs); run transfer once per clip")
    require_video_libraries()
    video_options = check_video_options(VideoOptions(temporal_smoothing=args.temporal_smoothing, crf=args.crf))
    check_output_file(check_video_output(args.output), "output", inputs)
    from styleforge.transfer.model import load_style_model
    from styleforge.video.transfer import prepare_for, transfer_video

    model = load_style_model(model_file, options=options)
    choice = prepare_for(model, inputs[0])
    if not args.quiet and not args.json:
        print(choice.line)
    result = transfer_video(model, inputs[0], args.output, video_options, progress=not args.quiet and not args.json)
    flicker = None
    if result.warping_error_before is not None:
        flicker = {"before": result.warping_error_before, "after": result.warping_error_after}
    if args.json:
        print_json({"input": inputs[0], "output": str(result.target), "frames": result.frames, "width": result.width,
                    "height": result.height, "fps": result.fps, "processing_fps": result.processing_fps,
                    "audio": result.audio, "warping_error": flicker, "device": result.device,
                    "runtime": choice.runtime, "runtime_reason": choice.reason})
    elif not args.quiet:
        audio = f", audio {result.audio}" if result.audio else ", no audio"
        print(f"{inputs[0]} -> {result.target}: {result.frames} frames, {result.width}x{result.height} at "
              f"{result.fps:g} fps{audio}; {result.processing_fps:.1f} frames/s on {result.device}")
        if flicker:
            print(f"temporal smoothing: warping error {flicker['before']:.2f} -> {flicker['after']:.2f} (0-255 units)")
    return 0
