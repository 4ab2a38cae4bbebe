"""A small generated video folder, to try `vfbench run --task video-folder:...` without a dataset.

    python benchmarks/video_folder_demo.py DIR [--videos 24]

writes DIR/clips/*.mp4 (32x32 px, 8 fps, PyAV's mpeg4 encoder: a coloured square, still or moving, on a
grey background), DIR/captions.csv (path,caption; one row names a file that does not exist and one file is
not a video, so the run shows how they are skipped and counted), DIR/tiny-clip.json (a tiny open_clip
ViT config: width 64, 2 layers, 8 px patches, 32 px images; open_clip's own 49,408-token vocabulary) and
DIR/tiny-clip.pt (that model's randomly initialised weights, in open_clip's state-dict format). It then
prints the `vfbench run` command that uses them. Needs the `video` extra (PyAV, open_clip).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import numpy as np

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 230), "yellow": (230, 220, 40)}
MOTIONS = ("still", "moving right", "moving down")
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def clip_frames(colour: str, motion: str, frames: int = 16, size: int = 32) -> np.ndarray:
    """(T, size, size, 3) uint8: a 10 px square of `colour` on grey, still or moving 1 px per frame."""
    out = np.full((frames, size, size, 3), 128, np.uint8)
    for t in range(frames):
        x = 4 + (t if motion == "moving right" else 0)
        y = 4 + (t if motion == "moving down" else 0)
        out[t, y:y + 10, x:x + 10] = COLOURS[colour]
    return out


def write_mp4(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    """Encode (T, H, W, 3) uint8 frames as an mpeg4 .mp4 with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.bit_rate = 2_000_000  # tiny frames: enough bits that colours survive the encoder
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_tiny_clip(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """The tiny open_clip config and its random weights; returns (config, weights)."""
    import open_clip
    import torch

    config = folder / "tiny-clip.json"
    config.write_text(json.dumps(TINY_CONFIG, indent=1))
    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    logging.getLogger().setLevel(logging.ERROR)  # open_clip warns that no pretrained tag was given: intended here
    model = open_clip.create_model(config.stem, pretrained=None)
    weights = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), weights)
    return config, weights


def make_demo(folder: Path, videos: int = 24, frames: int = 16) -> dict:
    """Write the demo folder (see the module docstring); returns its paths."""
    folder = Path(folder)
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    rows = []
    combos = [(c, m) for m in MOTIONS for c in COLOURS]
    for i in range(videos):
        colour, motion = combos[i % len(combos)]
        name = f"clips/v{i:03d}.mp4"
        write_mp4(folder / name, clip_frames(colour, motion, frames))
        rows.append((name, f"a {colour} square {motion}"))
    (folder / "clips" / "corrupt.mp4").write_bytes(b"this is not a video" * 20)
    rows += [("clips/corrupt.mp4", "a broken file"), ("clips/missing.mp4", "a file that is not there")]
    with open(folder / "captions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("path", "caption"))
        writer.writerows(rows)
    config, weights = write_tiny_clip(folder)
    return {"captions": folder / "captions.csv", "config": config, "weights": weights}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--videos", type=int, default=24)
    args = parser.parse_args()
    paths = make_demo(args.folder, args.videos)
    # fps 8: the clips are 2 s long; lr 1e-3: the tiny model starts from random weights, not a trained CLIP
    print(f"VFBENCH_VIDEO_BUDGET='{{\"fps\": 8, \"lr\": 1e-3}}' vfbench run --methods joint,mask --frames 8..16 "
          f"--task video-folder:{args.folder} --init open_clip:{paths['config']}:{paths['weights']}")


if __name__ == "__main__":
    main()
