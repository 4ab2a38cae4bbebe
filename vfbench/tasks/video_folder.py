"""A folder of videos with captions: `--task video-folder:PATH`.

PATH is a captions file (`.csv` or `.jsonl`) or a folder holding exactly one `captions.csv` or
`captions.jsonl`. Each row names a video (a path relative to the captions file's folder, or absolute) and
its caption: CSV with a header row that has `path` and `caption` columns (other columns are ignored), JSONL
with one `{"path": ..., "caption": ...}` object per line. A video listed several times has several
captions: training draws one of them, evaluation uses the first. Rows without a path or a caption are
counted as unusable; listed files that do not exist are skipped and counted.

Held-out split: the `eval_share` of the videos (at least 2) with the smallest SHA-1 of their path as
written in the captions file, so it never depends on the order of the rows, the machine or the seed; the
rest train.

Decoding (PyAV, imported when a clip is decoded): T frames at `fps` frames per second, from a window
centred in the video when it is longer than T/fps (else from its start, the last frame repeating past
its end); each sampled frame is the latest frame shown at that instant. Frames are resized (shorter side to
the model's image size, bilinear with antialiasing), centre-cropped, scaled to [0, 1] and normalised with
the image-text model's mean and standard deviation. A file that does not decode raises `UnreadableVideo`
with the decoder's reason; callers skip it and count it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from vfbench.errors import UserError

TASK_PREFIX = "video-folder:"
CAPTION_NAMES = ("captions.csv", "captions.jsonl")
TASK_FORMAT = ("video-folder:PATH, PATH a captions file (.csv with path,caption columns, or .jsonl with "
               "path and caption keys) or a folder holding captions.csv or captions.jsonl")
MIN_EVAL = 2


class UnreadableVideo(Exception):
    """A video that cannot be decoded; the message is the decoder's reason."""


@dataclass(frozen=True)
class Video:
    rel: str  # as written in the captions file
    path: Path
    captions: tuple[str, ...]


@dataclass
class VideoFolder:
    """The captions file read: usable videos, the held-out split, and what was skipped before decoding."""

    captions_file: Path
    videos: list[Video]  # existing files, in the order first listed
    unusable_rows: int = 0
    missing: list[str] = field(default_factory=list)

    def split(self, eval_share: float) -> tuple[list[Video], list[Video]]:
        """(train, held-out): the held-out videos are those with the smallest SHA-1 of their path."""
        n_eval = max(MIN_EVAL, round(eval_share * len(self.videos)))
        ranked = sorted(self.videos, key=lambda v: hashlib.sha1(v.rel.encode()).hexdigest())
        held = {v.rel for v in ranked[:n_eval]}
        return [v for v in self.videos if v.rel not in held], [v for v in self.videos if v.rel in held]


def task_path(task: str) -> str:
    """PATH of a `video-folder:PATH` task, or a UserError."""
    if not task.startswith(TASK_PREFIX) or not task[len(TASK_PREFIX):].strip():
        raise UserError(f"unknown --task {task!r}; accepted: proxy (the synthetic task, the default) or {TASK_FORMAT}")
    return task[len(TASK_PREFIX):].strip()


def captions_file(path: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        found = [p / n for n in CAPTION_NAMES if (p / n).is_file()]
        if len(found) != 1:
            what = "both " + " and ".join(CAPTION_NAMES) if found else "no " + " or ".join(CAPTION_NAMES)
            raise UserError(f"--task video-folder: folder {p} has {what}; accepted: {TASK_FORMAT}")
        return found[0]
    if not p.exists():
        raise UserError(f"--task video-folder: {p} does not exist; accepted: {TASK_FORMAT}")
    if p.suffix.lower() not in (".csv", ".jsonl"):
        raise UserError(f"--task video-folder: {p} is neither a folder nor a .csv or .jsonl captions file; accepted: {TASK_FORMAT}")
    return p


def _rows(file: Path):
    """(path, caption) pairs as written; None for a row that cannot be read."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--task video-folder: cannot read {file} ({exc}); accepted: UTF-8 text, {TASK_FORMAT}") from None
    if file.suffix.lower() == ".jsonl":
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                yield None
                continue
            yield (obj.get("path"), obj.get("caption")) if isinstance(obj, dict) else None
        return
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    if "path" not in header or "caption" not in header:
        raise UserError(f"--task video-folder: {file} has no header row with 'path' and 'caption' columns "
                        f"(its first row is {','.join(header)[:80]!r}); accepted: {TASK_FORMAT}")
    ip, ic = header.index("path"), header.index("caption")
    for row in reader:
        yield (row[ip], row[ic]) if len(row) > max(ip, ic) else None


def open_folder(task: str) -> VideoFolder:
    """Read a `video-folder:PATH` task's captions. Bad input (no folder, no captions file, no usable row, too
    few existing videos for a held-out split and training) is a UserError."""
    file = captions_file(task_path(task))
    base = file.parent
    captions: dict[str, list[str]] = {}
    unusable = 0
    for row in _rows(file):
        if row is None or not all(isinstance(x, str) and x.strip() for x in row):
            unusable += 1
            continue
        captions.setdefault(row[0].strip(), []).append(row[1].strip())
    if not captions:
        raise UserError(f"--task video-folder: {file} has no usable rows ({unusable} without a path or a caption); "
                        f"accepted: {TASK_FORMAT}")
    videos, missing = [], []
    for rel, caps in captions.items():
        path = (base / rel).expanduser()
        if path.is_file():
            videos.append(Video(rel, path, tuple(caps)))
        else:
            missing.append(rel)
    if len(videos) < MIN_EVAL + 1:
        raise UserError(f"--task video-folder: {file} lists {len(captions)} videos of which {len(videos)} exist "
                        f"(missing e.g. {', '.join(missing[:3]) or '-'}); at least {MIN_EVAL + 1} are needed "
                        f"({MIN_EVAL} held out, 1 to train)")
    return VideoFolder(file, videos, unusable, missing)


def sample_times(frames: int, fps: float, duration: float | None) -> list[float]:
    """The T instants (seconds) sampled: 1/fps apart, the window centred when the video is longer."""
    span = (frames - 1) / fps
    start = (duration - span) / 2 if duration and duration > span else 0.0
    return [start + i / fps for i in range(frames)]


def resize_crop(frame: torch.Tensor, size: int) -> torch.Tensor:
    """(C, H, W) float -> (C, size, size): shorter side to `size` (bilinear, antialiased), centre crop."""
    _, h, w = frame.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        frame = F.interpolate(frame[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return frame[:, top:top + size, left:left + size]


def decode_frames(path: Path, frames: int, fps: float, size: int) -> torch.Tensor:
    """(T, 3, size, size) uint8 frames of the video at the sampled instants; UnreadableVideo if it cannot be decoded."""
    try:
        import av
    except ImportError:
        from vfbench.tasks.clip_init import EXTRA_HINT

        raise UserError(f"--task video-folder needs PyAV (av), which is not installed; install it with {EXTRA_HINT}") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnreadableVideo("no video stream")
            stream = container.streams.video[0]
            duration = float(container.duration) / 1e6 if container.duration else None
            times = sample_times(frames, fps, duration)
            out: list = [None] * frames
            i, prev, converted = 0, None, {}

            def pixels(f):
                if id(f) not in converted:
                    converted.clear()
                    converted[id(f)] = resize_crop(torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1).float(), size)
                return converted[id(f)]

            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else 0.0
                while i < frames and times[i] < t - 1e-6 and prev is not None:
                    out[i] = pixels(prev)
                    i += 1
                if i >= frames:
                    break
                prev = frame
            if prev is None:
                raise UnreadableVideo("no frame decodes")
            while i < frames:
                out[i] = pixels(prev)
                i += 1
    except UnreadableVideo:
        raise
    except Exception as exc:  # PyAV's FFmpeg errors, OSError, ...: the file is skipped and counted, never a crash
        text = str(exc).replace(f": '{path}'", "").strip()  # the record names the file already
        raise UnreadableVideo(f"{type(exc).__name__}: {text.splitlines()[0][:120] if text else ''}".rstrip(": ")) from None
    return torch.stack(out).round().clamp(0, 255).to(torch.uint8)


def normalise(clip: torch.Tensor, mean, std) -> torch.Tensor:
    """(T, 3, H, W) uint8 -> (3, T, H, W) float, scaled to [0, 1] and normalised per channel."""
    x = clip.float().div(255).permute(1, 0, 2, 3)
    return (x - torch.tensor(mean).view(3, 1, 1, 1)) / torch.tensor(std).view(3, 1, 1, 1)


@dataclass
class Skipped:
    """Videos skipped while a cell ran: missing before decoding, unreadable when decoded."""

    missing: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # rel -> the decoder's reason

    def to_dict(self, examples: int = 3) -> dict:
        ex = [f"{r} (missing)" for r in self.missing[:examples]]
        ex += [f"{r} ({why})" for r, why in list(self.unreadable.items())[:examples]]
        return {"acc_skipped_missing": len(self.missing), "acc_skipped_unreadable": len(self.unreadable),
                "acc_skipped_examples": "; ".join(ex[:examples])}


class ClipSource:
    """Decoded clips of a folder at one frame count, cached as uint8 up to `cache_bytes`; unreadable files
    are remembered in `skipped` and never decoded twice."""

    def __init__(self, frames: int, fps: float, size: int, mean, std, skipped: Skipped, cache_bytes: int = 2 << 30):
        self.frames, self.fps, self.size, self.mean, self.std = frames, fps, size, mean, std
        self.skipped = skipped
        self.cache: dict[str, torch.Tensor] = {}
        self.cache_bytes, self.used = cache_bytes, 0

    def get(self, video: Video) -> torch.Tensor | None:
        """The normalised clip (3, T, H, W), or None when the file does not decode (counted in `skipped`)."""
        if video.rel in self.skipped.unreadable:
            return None
        clip = self.cache.get(video.rel)
        if clip is None:
            try:
                clip = decode_frames(video.path, self.frames, self.fps, self.size)
            except UnreadableVideo as exc:
                self.skipped.unreadable[video.rel] = str(exc)
                return None
            if self.used + clip.numel() <= self.cache_bytes:
                self.cache[video.rel] = clip
                self.used += clip.numel()
        return normalise(clip, self.mean, self.std)
