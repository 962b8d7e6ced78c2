"""One training run in lockstep: a device, the golden model, the data and the comparison.

The CLI (`rig run`) and the pytest fixtures are thin faces over `TrainingSession`, so a lab
test and the main job exercise the same path:

    session = TrainingSession(device, RunSpec(strategy="tinyprop", epochs=1))
    session.prepare()              # HELLO checked by the caller; model, data, optimiser sent
    report = session.run()         # per-step and per-epoch verdicts
    assert report.ok, report.failures

Per step the device's loss, `correct`, `skipped` and per-layer k are compared with the golden
model's; `Inspect` adds masks, applied updates and parameters (each costs UART time).
`Inspect(params_every=1, resync=True)` copies the device's parameters into the golden model
after every step, so float rounding cannot accumulate (lockstep, `Tolerance()`); otherwise
the golden model runs free and is held to `Tolerance.free_running()`.

A re-sync copies parameters only. The optimiser and strategy state (momentum buffers,
TinyProp's Y_max, NEq's similarities and velocities) stay the golden model's own: the
protocol has no message to read them, so they are compared through what they decide —
the applied steps u = lr·v (`Inspect.updates`), k per layer, and SELECT's k and masks.

One concept (a run and its report) in one module, ~600 lines; bring-up lives in
rig.connection, device-fit rules in rig.fit, recovery in rig.resume, read-back in rig.resync.
Epoch rows compare the device with the golden model's own parameters and accuracy from
before the re-sync, never with a copy of the device.

A report with no compared step is not a pass (`RunReport.ok`).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rig import strategies
from rig.compare import (
    StepObservation,
    Tolerance,
    Verdict,
    check_bitexact,
    check_equal,
    check_mask,
    compare_eval,
    compare_params,
    compare_step,
    max_abs_error,
    max_ulp,
)
from rig.config import Training
from rig.device import Device
from rig.errors import RigError
from rig.fit import check_fits, check_memory
from rig.golden.data import EncodedSet, Split, digits_split, epoch_batches
from rig.golden.int8 import QBackbone, samples_to_int8
from rig.link.link import Preload
from rig.protocol import DType, EvalResult, HelloInfo, SelectResult, StepResult
from rig.resume import ResumeEvent, Resumer
from rig.resync import DigestReader
from rig.strategies import StrategyId
from rig.wallclock import TimeSplit

if TYPE_CHECKING:  # the golden model imports torch: when a session builds one
    from rig.golden.model import GoldenMLP, GoldenStep, LayerParams

_TRAINING = Training()



@dataclass(frozen=True)
class RunSpec:
    """What to train (`lab_config.yaml: training:` sets the lab's values)."""

    # Defaults are the lab config's `training:` defaults (one place: rig.config.Training).
    dims: tuple[int, ...] = _TRAINING.dims
    lr: float = _TRAINING.lr
    momentum: float = _TRAINING.momentum
    batch: int = _TRAINING.batch
    epochs: int = _TRAINING.epochs
    train_samples: int = _TRAINING.train_samples  # 0 = the whole training split
    test_samples: int = _TRAINING.test_samples  # 0 = the whole test split
    val_samples: int = _TRAINING.val_samples  # the fixed SELECT subset (mask strategies)
    seed: int = _TRAINING.seed
    strategy: str = _TRAINING.strategy
    sparams: tuple[float, ...] | None = None  # None: the strategy's documented defaults
    # Frozen int8 backbone in front of the head: "" none, "digits-cnn" the default
    # pre-trained one (rig.golden.quant). With a backbone dims[0] = its feature count.
    backbone: str = ""

    @classmethod
    def from_training(cls, training: Training) -> RunSpec:
        """The lab's `training:` section as a RunSpec (the fields they share)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{f.name: getattr(training, f.name) for f in dataclasses.fields(training)
                      if f.name in names})


@dataclass(frozen=True)
class Inspect:
    """How much of each step to read back and compare (all of it costs link time)."""

    masks: bool = False  # MASK_READ every layer, compare with Jaccard
    features: int = 32  # with a backbone: FEATURES of this many stored samples, bit-exact
    updates: bool = False  # UPDATE_READ every tensor, compare applied steps
    params_every: int = 0  # read and compare all parameters every N steps (0: epoch end only)
    resync: bool = False  # golden ← device parameters after every params read + epoch end
    # Lockstep read-back: PARAM_DIGEST (CRC-32 + low 8 bits per value, rebuilt from the
    # golden model, rig.resync) instead of PARAM_READ; a full PARAM_READ every `full_every`
    # steps (0: at each epoch end only, where it always happens).
    digest: bool = True
    full_every: int = 0


@dataclass
class StepRecord:
    epoch: int
    index: int  # step number within the run
    device: StepResult
    golden: GoldenStep
    verdict: Verdict
    wall_s: float


@dataclass
class EpochRecord:
    epoch: int
    steps: int
    skipped: int
    device_loss: float  # mean of the per-step losses
    golden_loss: float
    max_param_abs: float
    max_param_ulp: int
    device_acc: float
    golden_acc: float
    verdicts: list[Verdict]
    wall_s: float
    #: device row masks right after this epoch's SELECT (mask strategies with Inspect.masks)
    selected_rows: list[np.ndarray] | None = None

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)


@dataclass
class RunReport:
    spec: RunSpec
    hello: HelloInfo
    counter_label: str
    steps: list[StepRecord] = field(default_factory=list)
    epochs: list[EpochRecord] = field(default_factory=list)
    wall_s: float = 0.0
    link_stats: dict[str, Any] = field(default_factory=dict)
    setup: list[Verdict] = field(default_factory=list)  # e.g. masks right after TRAIN_CONFIG
    #: the session's share of the wall time by phase (rig.wallclock; the CLI adds its own)
    times: TimeSplit = field(default_factory=TimeSplit)
    #: the whole command's split with `other` and `total` (filled by `rig run`)
    time_split: dict[str, float] = field(default_factory=dict)
    resumes: list[ResumeEvent] = field(default_factory=list)  # device resets survived
    #: lockstep parameter read-backs by PARAM_DIGEST (rig.resync.ResyncStats.as_dict)
    readback: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # False: the run stopped early (`cause`); what is here was measured
    cause: str = ""

    @property
    def failed_verdicts(self) -> list[Verdict]:
        return [v for v in self.all_verdicts if not v.ok]

    @property
    def all_verdicts(self) -> list[Verdict]:
        return (self.setup + [s.verdict for s in self.steps]
                + [v for e in self.epochs for v in e.verdicts])

    @property
    def compared_steps(self) -> int:
        return len(self.steps)

    @property
    def ok(self) -> bool:
        """At least one step compared, and every comparison agreed."""
        return self.compared_steps > 0 and not self.failed_verdicts

    @property
    def near_ties(self) -> int:
        """Checks whose difference near-ties explain (`tie`: agreement not claimed)."""
        return sum(len(v.ties) for v in self.all_verdicts)

    @property
    def failures(self) -> str:
        if self.compared_steps == 0:
            return "nothing was compared: the run trained no step"
        return "\n".join(str(v) for v in self.failed_verdicts[:5])

    @property
    def max_loss_rel(self) -> float:
        return max((_loss_rel(s) for s in self.steps), default=0.0)


def failure_cause(exc: BaseException) -> str:
    """One line for a report: the exception's type and first line."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _loss_rel(s: StepRecord) -> float:
    g = float(s.golden.loss)
    return abs(float(s.device.loss) - g) / max(abs(g), 1e-30)


def _import_golden_in_background() -> None:
    """Start importing rig.golden.model (torch) on a daemon thread; a later import in the
    main thread waits for it (the import system's per-module lock)."""
    if "rig.golden.model" in sys.modules:
        return
    threading.Thread(target=importlib.import_module, args=("rig.golden.model",),
                     name="import-golden", daemon=True).start()


StepHook = Callable[[StepRecord], None]
EpochHook = Callable[[EpochRecord], None]


@dataclass
class _Ahead:
    """A batch sent ahead into the window's other half (TrainingSession._train_on_device)."""

    preload: Preload
    count: int  # samples the preloaded DATA_WRITE carries (the rest follows normally)
    base: int  # its first window slot
    indices: np.ndarray  # the training samples it holds


class TrainingSession:
    """Drives one run on a device that has answered HELLO. Not thread-safe; one per device."""

    def __init__(self, device: Device, spec: RunSpec | None = None, *,
                 split: Split | None = None, inspect: Inspect | None = None,
                 tolerance: Tolerance | None = None,
                 initial_params: list[tuple[np.ndarray, np.ndarray]] | None = None,
                 on_step: StepHook | None = None, on_epoch: EpochHook | None = None,
                 backbone: QBackbone | None = None, resumer: Resumer | None = None) -> None:
        self.device = device
        # Resumes after a device reset (rig.resume); give it the target to restart a dead one.
        self.resumer = resumer or Resumer()
        self.spec = spec or RunSpec()
        self.inspect = inspect or Inspect()
        # The int8 backbone (given, or named by spec.backbone): the head's input is its
        # dequantized features, bit-exact on both sides, so the golden head trains on them.
        if backbone is None and self.spec.backbone:
            from rig.golden.quant import backbone_by_name
            backbone = backbone_by_name(self.spec.backbone)
        self.backbone = backbone
        if backbone is not None and self.spec.dims[0] != backbone.n_features:
            self.spec = dataclasses.replace(self.spec,
                                            dims=(backbone.n_features, *self.spec.dims[1:]))
        self.times = TimeSplit()  # where this session's wall time went (rig.wallclock)
        with self.times.phase("startup"):
            self.split = split or digits_split(seed=self.spec.seed, n_val=self.spec.val_samples)
        # Lockstep (parameters read and copied into the golden model after every step):
        # each step starts from the device's state, so the tight tolerance applies. Free
        # running: rounding differences accumulate (momentum amplifies them), so steps and
        # epoch ends are held to the free-running tolerance; the achieved error is reported.
        self.lockstep = self.inspect.resync and self.inspect.params_every == 1
        self.step_tol = tolerance or (Tolerance() if self.lockstep else Tolerance.free_running())
        self.epoch_tol = self.step_tol
        self.on_step = on_step
        self.on_epoch = on_epoch
        # The golden model (and torch, ~0.9 s to import) is built on first use; the import
        # starts now in the background, so it overlaps with the data upload.
        self._initial_params = initial_params
        self._golden: GoldenMLP | None = None
        _import_golden_in_background()
        self._prepared = False
        self.digest_reader = DigestReader()  # lockstep read-backs (their counts: report)
        self.uploaded = False  # prepare() sent the data set (False: the device had it)
        self._step_index = 0
        # The golden model's own parameters after its last step, when the re-sync replaced
        # them with the device's (lockstep): what the epoch row compares against.
        self._golden_own: list[LayerParams] | None = None
        self._start_params: list[LayerParams] | None = None  # set by load_device()
        self.window: int | None = None  # set by prepare(): None = all samples resident
        #: with a sample window: send the next batch while the device trains on this one
        #: (into the window's other half; `Link.preload`). Off: measured slower on QEMU
        #: (benchmarks/stream_overlap.py), and on a real UART the bytes sent ahead could
        #: overrun the device's RX ring (its size is not in HELLO)
        self.overlap_upload = False
        self.preloaded_batches = 0  # batches that went ahead and were used
        self._next_batch: np.ndarray | None = None  # run_epoch: the batch after this step
        self._ahead: _Ahead | None = None  # the next batch, sent ahead
        self.report: RunReport | None = None

    @property
    def golden(self) -> GoldenMLP:
        if self._golden is None:
            with self.times.phase("golden"):  # waits for the background import if needed
                from rig.golden.model import GoldenMLP

                self._golden = GoldenMLP(self.spec.dims, seed=self.spec.seed)
                if self._initial_params is not None:
                    self._golden.set_params(self._initial_params)
        return self._golden

    # ------------------------------------------------------------------ set-up

    @property
    def sparams(self) -> tuple[float, ...]:
        if self.spec.sparams is not None:
            return tuple(self.spec.sparams)
        return strategies.get(self.spec.strategy).defaults

    @property
    def golden_uses_select(self) -> bool:
        return strategies.get(self.spec.strategy).uses_select

    def prepare(self) -> HelloInfo:
        """Send model, initial parameters, optimiser/strategy and data to the device."""
        spec = self.spec
        hello = self.device.hello()
        if not hello.supports(spec.strategy):
            raise RigError(f"firmware on {hello.board} does not implement strategy "
                           f"{spec.strategy!r}; it has {', '.join(hello.strategy_names)}")
        train = self._subset(self.split.train, spec.train_samples)
        test = self._subset(self.split.test, spec.test_samples)
        val = self.split.val
        self.train, self.val, self.test = train, val, test
        with self.times.phase("golden"):  # what the golden head sees (backbone features)
            self.x_train, self.x_val, self.x_test = (self._inputs(part)
                                                     for part in (train, val, test))
        check_fits(spec, hello)
        check_memory(spec, hello, self.device.stats().arena_size)
        # Stored on the device in one array [train | val | test]. The whole split when it
        # fits, so runs that use fewer samples (train_samples/test_samples take the first
        # n) find the same data set on the device and upload nothing; else just the parts.
        record = 1 + train.n_features * DType.coerce(train.dtype).itemsize
        whole = (self.split.train, self.split.val, self.split.test)
        stored = whole if sum(map(len, whole)) * record <= hello.data_capacity else (
            train, val, test)
        self.val_start = len(stored[0])
        self.test_start = len(stored[0]) + len(stored[1])
        n_total = self.test_start + len(stored[2])
        # A device whose sample store cannot hold [train | val | test] (the 16 KB microbit)
        # gets a window instead: the host writes each batch (and each evaluation chunk, and
        # the validation set before SELECT) into slots [0, window) just before using it.
        fits = n_total * record <= hello.data_capacity
        self.window = None if fits else min(hello.data_capacity // record, 0xFFFF)
        if self.window is not None and self.window < spec.batch:
            raise RigError(
                f"{hello.board} stores at most {self.window} samples of {record} B "
                f"(data_capacity {hello.data_capacity}); a batch of {spec.batch} does not fit")

        self._n_total = n_total
        self._stored = stored
        # The host's copy of the starting parameters (for rig.resume), taken once the data
        # is on its way: building the golden model waits for torch's background import.
        self._start_params = None
        with self.times.phase("upload"):
            self.load_device()
        self.golden.configure(spec.lr, spec.momentum, spec.strategy, self.sparams)
        self._prepared = True
        self.report = RunReport(spec, hello, self.device.counter_label or hello.counter_label,
                                times=self.times)
        if self.backbone is not None and self.window is None and self.inspect.features > 0:
            self.report.setup.append(self.compare_features(0, min(self.inspect.features,
                                                                  n_total)))
        if self.inspect.masks:  # the masks a strategy starts with (static, SELECT t = 0, …)
            v = Verdict("masks after TRAIN_CONFIG")
            self._check_masks(v, self.golden.masks(), None, None)
            self.report.setup.append(v)
        return hello

    def load_device(self) -> None:
        """RESET, then backbone, model, initial parameters, optimiser/strategy and (if the
        device lacks it) the data set, as at the start of the run (prepare; rig.resume
        after a device reset)."""
        spec = self.spec
        train = self.train
        stored = self._stored
        self.device.reset()  # keeps the stored data set: checked by its hash below
        # The data set first: torch may still be importing for the golden model.
        self.stored_q = np.concatenate([part.q for part in stored])
        if self.window is None:
            self.uploaded = self.device.ensure_samples(
                train.n_features, train.dtype, train.scale, train.zero_point,
                np.concatenate([part.labels for part in stored]), self.stored_q)
        else:
            self.device.data_config(train.n_features, train.dtype, train.scale,
                                    train.zero_point, self.window)
            self.uploaded = True
        if self.backbone is not None:
            self.device.load_backbone(self.backbone)
        self.device.model_init(spec.dims)
        start = self._start_params
        if start is None:
            start = self._start_params = self.golden.get_params()
        self.device.load_model(start)
        self.device.train_config(spec.lr, spec.momentum, spec.strategy, self.sparams,
                                 batch=spec.batch)

    def _check_masks(self, v: Verdict, golden: tuple[list[np.ndarray], list[np.ndarray]],
                     scores: list[np.ndarray] | None, threshold: float | None
                     ) -> list[np.ndarray]:
        """MASK_READ every layer and compare with the golden masks; returns the device rows."""
        rows = []
        for layer in range(len(self.spec.dims) - 1):
            m = self.device.read_mask(layer)
            rows.append(m.row_mask)
            score = scores[layer] if scores is not None else None
            v.add(check_mask(f"rows[{layer}]", m.row_mask, golden[0][layer], score,
                             self.step_tol.tie_rel_eps, threshold))
            v.add(check_mask(f"bias[{layer}]", m.bias_mask, golden[1][layer], score,
                             self.step_tol.tie_rel_eps, threshold))
        return rows

    def _inputs(self, part: EncodedSet) -> np.ndarray:
        """What the head sees for these samples: decoded, or the backbone's features."""
        if self.backbone is None:
            return part.decode()
        return self.backbone.features_f32(samples_to_int8(part.q, part.dtype))

    def compare_features(self, start: int, count: int) -> Verdict:
        """FEATURES of stored samples [start, start+count) against the golden int8 backbone:
        bit-exact. Stored layout: [train | val | test]."""
        if self.backbone is None:
            raise RigError("compare_features: this run has no backbone")
        q = self.stored_q[start:start + count]
        dev = self.device.features(start, count)
        gold = self.backbone.forward(samples_to_int8(q, self.train.dtype))
        v = Verdict(f"backbone features, samples {start}..{start + count - 1}")
        v.add(check_bitexact("int8 features", dev, gold))
        return v

    @staticmethod
    def _subset(data: Any, n: int) -> Any:
        return data if n <= 0 or n >= len(data) else data.subset(np.arange(n))

    # ------------------------------------------------------------------ training

    def select(self) -> tuple[Verdict, list[np.ndarray] | None]:
        """SELECT on both sides (mask strategies recompute their masks each epoch). With
        Inspect.masks the device's masks are read and compared too; returns the verdict and
        the device's row masks (None when not read)."""
        with self.times.phase("training"):
            dev = self.resumer.call(self, self._select_on_device)
        self.resumer.record_select(dev)
        with self.times.phase("golden"):
            gold = self.golden.select(self.x_val)
        v = Verdict("select")
        for layer, (kd, kg) in enumerate(zip(dev.k, gold.k, strict=True)):
            v.add(check_equal(f"k[{layer}]", int(kd), int(kg)))
        v.add(check_equal("trainable_params", int(dev.trainable_params),
                          int(gold.trainable_params)))
        rows = None
        if self.inspect.masks:
            # neq freezes at |v| ≤ ε: ε is the threshold a near-tie is measured against;
            # velocity-budget's is the last selected key (the default).
            neq = strategies.get(self.spec.strategy).id == StrategyId.NEQ
            threshold = float(self.golden.sparams[0]) if neq else None
            rows = self.resumer.call(self, lambda: self._check_masks(
                v, (gold.row_masks, gold.bias_masks), gold.scores, threshold))
        return v, rows

    def _select_on_device(self) -> SelectResult:
        if self.window is None:
            return self.device.select(self.val_start, len(self.val))
        # the validation set goes through the sample window too
        if len(self.val) > self.window:
            raise RigError(
                f"SELECT needs the {len(self.val)} validation samples on the device at "
                f"once, but it holds {self.window}: set val_samples <= {self.window} "
                "(lab_config.yaml training: or the board's training: overrides)")
        self.device.write_samples(0, self.val.labels, self.val.q)
        return self.device.select(0, len(self.val))

    def _train_on_device(self, indices: np.ndarray) -> StepResult:
        if self.window is None:
            return self.device.train_step(indices)
        # stream the batch into the window
        indices = np.asarray(indices).reshape(-1)
        labels, q = self.train.labels, self.train.q
        batch = self.spec.batch
        if not (self.overlap_upload and self.window >= 2 * batch and len(indices) <= batch):
            self.device.write_samples(0, labels[indices], q[indices])
            return self.device.train_step(np.arange(len(indices)))
        # Double buffer: this batch in one half of the window, the next one sent into the
        # other half while the device trains (the device runs nothing of it until it is
        # completed, so a failed step is retried as usual and a batch sent ahead for
        # nothing is simply never completed).
        ahead, self._ahead = self._ahead, None
        if ahead is not None and np.array_equal(ahead.indices, indices):
            base, sent = ahead.base, ahead.count
            self.device.finish_preload(ahead.preload)
            self.preloaded_batches += 1
        else:
            base, sent = 0, 0
        if sent < len(indices):
            rest = indices[sent:]
            self.device.write_samples(base + sent, labels[rest], q[rest])
        nxt = self._next_batch

        def send_next() -> None:
            if nxt is not None and len(nxt) <= batch:
                other = batch - base  # the other half: 0 <-> batch
                pre, n = self.device.preload_samples(other, labels[nxt], q[nxt])
                self._ahead = _Ahead(pre, n, other, nxt)

        return self.device.train_step(np.arange(base, base + len(indices)),
                                      after_send=send_next if nxt is not None else None)

    def step(self, indices: np.ndarray, epoch: int = 0) -> StepRecord:
        if not self._prepared:
            raise RigError("TrainingSession.step() before prepare()")
        t0 = time.perf_counter()
        times = self.times
        with times.phase("training"):
            dev = self.resumer.call(self, lambda: self._train_on_device(indices), epoch)
        self.resumer.record_step(indices, dev)
        indices = np.asarray(indices).reshape(-1)
        with times.phase("golden"):
            gold = self.golden.step(self.x_train[indices], self.train.labels[indices])
        self._step_index += 1
        obs = StepObservation(dev.loss, dev.correct, dev.skipped, dev.k)
        every = self.inspect.params_every
        golden_params = (self.golden.get_params()
                         if every and self._step_index % every == 0 else None)
        with times.phase("readback"):
            self.resumer.call(self, lambda: self._read_step(obs, golden_params), epoch)
        with times.phase("compare"):
            verdict = compare_step(gold, obs, self.step_tol, golden_params,
                                   title=f"epoch {epoch} step {self._step_index}")
        self._golden_own = None
        if obs.params is not None and self.inspect.resync:
            self._golden_own = golden_params
            with times.phase("golden"):
                self.golden.set_params(obs.params)
        rec = StepRecord(epoch, self._step_index, dev, gold, verdict, time.perf_counter() - t0)
        assert self.report is not None
        self.report.steps.append(rec)
        if self.on_step:
            self.on_step(rec)
        return rec

    def _read_step(self, obs: StepObservation,
                   golden_params: Sequence[tuple[np.ndarray, np.ndarray]] | None) -> None:
        """The read-backs Inspect asks for after a step (repeatable: they change nothing);
        the parameters when `golden_params` (the golden model's, to compare) is given."""
        n_layers = len(self.spec.dims) - 1
        if self.inspect.masks:
            masks = [self.device.read_mask(layer) for layer in range(n_layers)]
            obs.row_masks = [m.row_mask for m in masks]
            obs.bias_masks = [m.bias_mask for m in masks]
        if self.inspect.updates:
            obs.updates = [(self.device.read_update(layer, "weight"),
                            self.device.read_update(layer, "bias")) for layer in range(n_layers)]
        if golden_params is not None:
            obs.params = self._read_params(golden_params)

    def _read_params(self, golden_params: Sequence[tuple[np.ndarray, np.ndarray]]
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The device's parameters after a step. In lockstep the golden model started this
        step from the device's values and computes as the device does, so PARAM_DIGEST's
        CRCs alone prove its values the device's (rig.resync.DigestReader)."""
        full = self.inspect.full_every and self._step_index % self.inspect.full_every == 0
        if self.lockstep and self.inspect.digest and not full:
            return self.digest_reader.read(self.device, golden_params)
        return self.device.read_model()

    def evaluate(self) -> tuple[EvalResult, Verdict]:
        dev, _, verdict = self._evaluate_both()
        return dev, verdict

    def _evaluate_both(self) -> tuple[EvalResult, EvalResult, Verdict]:
        """EVAL of the test set on the device and in the golden model (its current
        parameters), and the verdict."""
        with self.times.phase("training"):
            dev = self.resumer.call(self, lambda: self.device.evaluate(
                self.test_start, len(self.test)) if self.window is None
                else self._evaluate_windowed(self.test))
        with self.times.phase("golden"):
            gold = self.golden.evaluate(self.x_test, self.test.labels)
        with self.times.phase("compare"):
            verdict = compare_eval(gold, dev.loss_sum, dev.correct, dev.pred, self.epoch_tol,
                                   title="test set")
        return dev, gold, verdict

    def _evaluate_windowed(self, data: EncodedSet) -> EvalResult:
        """EVAL chunk by chunk through the sample window; loss sums add in float64 (as
        `Device.evaluate` does for a split response)."""
        assert self.window is not None
        parts = []
        for start in range(0, len(data), self.window):
            part = data.subset(np.arange(start, min(start + self.window, len(data))))
            self.device.write_samples(0, part.labels, part.q)
            parts.append(self.device.evaluate(0, len(part)))
        return EvalResult(float(sum(float(p.loss_sum) for p in parts)),
                          sum(p.correct for p in parts), len(data),
                          np.concatenate([p.pred for p in parts]) if parts
                          else np.zeros(0, np.uint8))

    def run_epoch(self, epoch: int) -> EpochRecord:
        t0 = time.perf_counter()
        verdicts: list[Verdict] = []
        selected = None
        if self.golden_uses_select:
            select_verdict, selected = self.select()
            verdicts.append(select_verdict)
        batches = list(epoch_batches(len(self.train), self.spec.batch, self.spec.seed, epoch))
        steps = []
        for i, idx in enumerate(batches):
            self._next_batch = np.asarray(batches[i + 1]).reshape(-1) \
                if i + 1 < len(batches) else None
            steps.append(self.step(idx, epoch))
        self._next_batch = None
        with self.times.phase("readback"):  # the full read: every epoch, always
            params_dev = self.resumer.call(self, self.device.read_model, epoch)
        if self._golden_own is not None:
            # Lockstep: the last step re-synced the golden model to the device. Compare
            # (and evaluate) the golden model's own result of that step instead.
            self.golden.set_params(self._golden_own)
            self._golden_own = None
        params_gold = self.golden.get_params()
        with self.times.phase("compare"):
            verdicts.append(compare_params(params_dev, params_gold, self.epoch_tol,
                                           title=f"epoch {epoch} parameters"))
            max_abs = max(max(max_abs_error(dw, gw), max_abs_error(db, gb))
                          for (dw, db), (gw, gb) in zip(params_dev, params_gold, strict=True))
            ulp = max(max(max_ulp(dw, gw), max_ulp(db, gb))
                      for (dw, db), (gw, gb) in zip(params_dev, params_gold, strict=True))
        dev_eval, gold_eval, eval_verdict = self._evaluate_both()
        verdicts.append(eval_verdict)
        gold_acc = gold_eval.accuracy
        if self.inspect.resync:
            with self.times.phase("golden"):
                self.golden.set_params(params_dev)
        rec = EpochRecord(
            epoch=epoch, steps=len(steps), skipped=sum(s.device.skipped for s in steps),
            device_loss=float(np.mean([s.device.loss for s in steps])),
            golden_loss=float(np.mean([s.golden.loss for s in steps])),
            max_param_abs=max_abs, max_param_ulp=ulp,
            device_acc=dev_eval.correct / max(dev_eval.count, 1), golden_acc=gold_acc,
            verdicts=verdicts, wall_s=time.perf_counter() - t0, selected_rows=selected)
        assert self.report is not None
        self.report.epochs.append(rec)
        if self.on_epoch:
            self.on_epoch(rec)
        return rec

    def run(self, epochs: int | None = None) -> RunReport:
        if not self._prepared:
            self.prepare()
        assert self.report is not None
        t0 = time.perf_counter()
        try:
            for epoch in range(self.spec.epochs if epochs is None else epochs):
                self.run_epoch(epoch)
        except BaseException as exc:  # Ctrl-C too: the report keeps what was measured
            self.report.complete = False
            self.report.cause = failure_cause(exc)
            raise
        finally:
            self.report.wall_s += time.perf_counter() - t0
            self.report.link_stats = self.device.link.stats.as_dict()  # NAK Counter
            if self.digest_reader.stats.reads:
                self.report.readback = self.digest_reader.stats.as_dict()
        return self.report
