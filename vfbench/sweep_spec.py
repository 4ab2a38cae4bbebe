"""What a user asked for: a sweep (model x methods x frames and the settings they share), expanded into
cells. It sits just above the registry (labels are canonical compositions) and below everything that
runs a sweep (runner/), estimates one (estimate/) or reports one (report/): run.json stores it."""

from __future__ import annotations

from dataclasses import dataclass, field

from vfbench.errors import UserError
from vfbench.registry import compose, expand_methods, recipes
from vfbench.spec import CellSpec, MeasureSettings, _Frozen

CPU_MAX_FRAMES = 32
CPU_SUBSET_NOTE = (
    f"on CPU, --accuracy trains the proxy for the baseline (joint) and the recipes (and methods equal to one, "
    f"e.g. frame_avg = imagevit) at up to {CPU_MAX_FRAMES} frames (a few minutes each on 2 cores: each trains until its "
    "validation plateaus); --accuracy all trains every cell"
)
CPU_OFF_NOTE = (
    "proxy accuracy is off by default on CPU: a cell trains for minutes on a few cores (until its validation plateaus), "
    f"so memory and time come first; --accuracy trains the baseline and the recipes at up to {CPU_MAX_FRAMES} frames, "
    "--accuracy all every cell"
)
ACCURACY_MODES = ("auto", "on", "all", "off")


def accuracy_mode(mode) -> str:
    """The accuracy mode asked for, one of ACCURACY_MODES (YAML's true / false mean on / off); UserError otherwise."""
    mode = {True: "on", False: "off"}.get(mode, mode) if isinstance(mode, (bool, str)) else mode
    if mode not in ACCURACY_MODES:
        raise UserError(f"--accuracy {mode!r} is not accepted; accepted: {', '.join(ACCURACY_MODES)} (or --no-accuracy)")
    return mode


def resolve_accuracy(mode, device: str, task: str = "") -> str:
    """The accuracy mode a sweep runs: "auto" (the default) is "on" on CUDA or with a named task, "off" on CPU
    (CPU_OFF_NOTE); the other modes as asked (accuracy_mode)."""
    mode = accuracy_mode(mode)
    if mode == "auto":
        return "on" if device == "cuda" or task else "off"
    return mode


@dataclass(frozen=True)
class SlurmSettings(_Frozen):
    """How cells are submitted when the executor is `slurm` (ignored by the other executors)."""

    partition: str = ""  # empty: the cluster's default partition
    gpus_per_cell: int = 0
    max_parallel: int = 0  # array tasks running at once; 0: no cap beyond the cluster's own
    extra: tuple = ()  # (("mem", "32G"), ("account", "vision"), ...): more sbatch options


@dataclass(frozen=True)
class SweepSpec(_Frozen):
    model: str
    methods: tuple  # canonical composition labels, in the order asked
    frames: tuple
    batch: int
    dtype: str
    device: str  # resolved: cpu | cuda
    seed: int = 0
    timeout_s: float = 900.0
    skip_after_oom: bool = True
    executor: str = "local"
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    estimate: bool = True  # estimate each cell's peak before running it
    skip_predicted_oom: bool = True  # skip cells whose estimate exceeds the device's free memory
    # Proxy accuracy: "on" = every cell on CUDA, the documented subset on CPU (cpu_default_subset);
    # "all" = every cell; "off". The CLI's default, "auto", resolves to "on" on CUDA and "off" on CPU (resolve_accuracy).
    accuracy: str = "off"
    accuracy_asked: str = ""  # the mode asked for before resolution ("auto" = the CLI default; "" = not recorded)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)  # used by executor 'slurm' only
    task: str = ""  # accuracy task: "" = the synthetic proxy; "video-folder:PATH" (real clips and captions)
    init: str = ""  # the image-text model a video-folder task starts from: "open_clip:NAME[:WEIGHTS]"
    left_out: tuple = ()  # ((method name, why), ...): what the 'all' in --methods left out here (left_out_note)

    def cells(self) -> list[CellSpec]:
        """Method-major, frames ascending, so an OOM at T can skip the larger T of the same method."""
        trained = self.accuracy_cells()
        return [
            CellSpec(
                self.model, m, t, self.batch, self.dtype, self.device, self.seed, self.measure,
                estimate=self.estimate, skip_predicted_oom=self.skip_predicted_oom, accuracy=(m, t) in trained,
                task=self.task, init=self.init,
            )
            for m in self.methods
            for t in self.frames
        ]

    def accuracy_cells(self) -> set[tuple[str, int]]:
        """(method, frames) cells whose record also gets proxy accuracy."""
        if self.accuracy == "off":
            return set()
        if self.accuracy == "all" or self.device == "cuda" or self.task:  # a named task trains every cell
            return {(m, t) for m in self.methods for t in self.frames}
        return set(cpu_default_subset(list(self.methods), list(self.frames)))

    @classmethod
    def from_stored(cls, data, where) -> "SweepSpec":
        """The sweep of a run.json being resumed; a damaged one is a UserError, never a traceback."""
        try:
            if not isinstance(data, dict):
                raise TypeError(f"sweep is {type(data).__name__}, not an object")
            sweep = cls.from_dict(data)
            if not (isinstance(sweep.methods, tuple) and isinstance(sweep.frames, tuple)
                    and all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in sweep.frames)):
                raise TypeError("methods and frames must be lists (frames of positive whole numbers)")
            if not (isinstance(sweep.measure, MeasureSettings) and isinstance(sweep.slurm, SlurmSettings)):
                raise TypeError("measure and slurm must be objects")
        except (TypeError, ValueError, KeyError) as exc:
            raise UserError(f"{where}: the stored sweep is damaged ({exc}); start a new run instead") from None
        return sweep


def left_out_note(left_out) -> str:
    """One line on the methods `--methods all` left out, why, and how to run them anyway."""
    whys = "; ".join(f"{name}: {why}" for name, why in left_out)
    first = left_out[0][0]
    return f"--methods all leaves out {', '.join(n for n, _ in left_out)} ({whys}); name one to run it (--methods all,{first})"


def method_labels(text: str, device: str = "") -> tuple[str, ...]:
    """The canonical labels of --methods for cells on `device` ("" = not known yet; see all_left_out)."""
    return tuple(c.label for c in expand_methods(text, device))


def cpu_default_subset(methods: list[str], frames: list[int]) -> list[tuple[str, int]]:
    """The (method label, frames) cells the CPU default trains: the baseline and every method that is (or
    equals) a recipe, at frame counts up to CPU_MAX_FRAMES (CPU_SUBSET_NOTE)."""
    recipe_labels = {compose(r.text).label for r in recipes().values()} | set(recipes())
    out = []
    for m in methods:
        label = compose(m).label
        if label == "joint" or label in recipe_labels or m in recipe_labels:
            out += [(m, t) for t in frames if t <= CPU_MAX_FRAMES]
    return out
