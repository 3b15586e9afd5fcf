"""Training a U-Net phase map from a few labelled images or from scribbles.

The method of Ronneberger et al. (2015), sized for a CPU by default: random crops of
the training images, bent by elastic deformation (:func:`.augment.elastic_field`) and
turned by the square's 8 symmetries with a small intensity jitter; a per-pixel
weighted cross-entropy (:mod:`.weightmap`: class balance plus the border term that
stresses thin gaps between nearly touching objects); Adam. Validation images (split
by image, seeded) are predicted whole by overlap-tile inference, exactly as at
prediction time, each epoch; their loss drives early stopping and the choice of the
epoch kept.

Labels are class labels: the classes are the sorted label values present (but
``ignore``), and the checkpoint keeps their values and names, so predictions hold the
training labels' values. Pixels whose label is ``ignore`` (scribbles: everything the
user did not paint) contribute nothing to the loss. With full labels the border term's
objects are the 4-connected regions of each class but the lowest (the background);
sparse labels get the class balance only.

Images are normalised one by one (:mod:`napari_samphase.core.unet.inputs`); a run on
gray images trains a 1-channel network, on colour images a 3-channel one.

The best epoch is written with :func:`napari_samphase.core.unet.checkpoint.save_unet`
and predicts with :func:`napari_samphase.core.unet.predictor.predict`;
``<out>.state`` holds what ``resume=True`` needs to continue. Importing this module
does not import torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from napari_samphase.core.errors import InputError, check_choice
from napari_samphase.core.progress import Cancelled, ProgressCallback, report
from napari_samphase.core.training.runs import (
    SCHEDULE_FACTORS,
    EpochReport,
    RunState,
    TrainResult,
    finish_epoch,
    metrics_of,
    now,
    package_version,
    read_training_state,
    restore_training_state,
    save_atomically,
    state_path,
    training_state,
)
from napari_samphase.core.unet.config import PADDINGS, UNetConfig, check_unet_config

CLASS_WEIGHTS = ("balanced", "none")
SCHEDULES = tuple(SCHEDULE_FACTORS)
# Config fields a resumed run may change; every other one must match the saved state.
RESUMABLE_CHANGES = ("epochs", "max_minutes", "patience", "device")
ARCHITECTURE = ("depth", "width", "batch_norm", "padding")  # must match an init network
VAL_TILE = 512  # px, validation tiles (as predict's default)
GRAD_CLIP = 10.0  # max gradient norm: only against rare spikes from large border weights


@dataclass
class UNetTrainConfig:
    """Everything a U-Net training run depends on (saved in the checkpoint)."""

    depth: int = 4  # resolution levels (the original: 5)
    width: int = 16  # first-level channels (the original: 64)
    batch_norm: bool = True
    padding: str = "same"  # same | valid convolutions
    dropout: float = 0.0
    epochs: int = 50
    max_minutes: float | None = None  # stop (keeping the best) after this long
    lr: float = 1e-3  # Adam
    schedule: str = "constant"  # learning-rate schedule over the run (runs.SCHEDULE_FACTORS)
    batch_size: int = 4
    crop: int = 128  # px, network input side of a training crop (rounded up to one it takes)
    crops_per_image: int = 8  # crops of each training image per epoch
    val_fraction: float = 0.2  # by image, seeded
    patience: int = 10  # early stopping on validation loss (0: never)
    seed: int = 0
    device: str = "auto"
    ignore: int | None = None  # label value of unlabelled pixels (scribbles), or None
    border_weight: float = 10.0  # w0 of the border term (0: off)
    sigma: float = 5.0  # px, width of the border term
    elastic: bool = True  # elastic deformation of the crops
    augment: bool = True  # flips, 90-degree rotations, intensity jitter
    class_weights: str = "balanced"  # balanced | none


def check_config(config: UNetTrainConfig) -> UNetTrainConfig:
    """``config`` if every option is usable; one :class:`InputError` otherwise."""
    check_choice(config.padding, PADDINGS, "padding")
    check_choice(config.class_weights, CLASS_WEIGHTS, "class_weights")
    check_choice(config.schedule, SCHEDULES, "schedule")
    for name, low in (
        ("depth", 1),
        ("width", 1),
        ("epochs", 1),
        ("batch_size", 1),
        ("crop", 8),
        ("crops_per_image", 1),
        ("patience", 0),
    ):
        value = getattr(config, name)
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise InputError(f"{name} must be a whole number >= {low}, not {value!r}")
    if config.ignore is not None and (
        not isinstance(config.ignore, int | np.integer) or isinstance(config.ignore, bool)
    ):
        raise InputError(
            f"ignore must be a label value (a whole number) or None, not {config.ignore!r}"
        )
    if not 0.0 <= config.val_fraction < 1.0:
        raise InputError(f"val_fraction must be in [0, 1), not {config.val_fraction}")
    if not 0.0 <= config.dropout < 1.0:
        raise InputError(f"dropout must be in [0, 1), not {config.dropout}")
    if not config.lr > 0:
        raise InputError(f"lr must be positive, not {config.lr}")
    if not config.border_weight >= 0:
        raise InputError(f"border_weight must be >= 0, not {config.border_weight}")
    if not config.sigma > 0:
        raise InputError(f"sigma must be positive, not {config.sigma}")
    if config.max_minutes is not None and not config.max_minutes > 0:
        raise InputError(f"max_minutes must be positive, not {config.max_minutes}")
    return config


@dataclass
class Item:
    """One checked training image with its class labels."""

    name: str
    image: np.ndarray
    labels: np.ndarray  # H x W class label values
    instances: np.ndarray | None = None  # optional instance labels for the border term


@dataclass
class Sample:
    """A training image as the network sees it."""

    name: str
    x: np.ndarray  # H x W x C float32, normalised
    target: np.ndarray  # H x W int16 class index, -1 = unlabelled
    weights: np.ndarray  # H x W float32 loss weights, 0 where unlabelled
    labelled: np.ndarray | None  # flat indices of the labelled pixels; None: all are
    pixels: int  # labelled pixels


def _items(pairs) -> list[Item]:
    """Checked ``(name, image, labels[, instances])`` or ``data.TrainingPair`` items
    (whose ``instances`` hold class labels here); one error naming every bad one."""
    from napari_samphase.core.image.convert import check_image
    from napari_samphase.core.image.labels import check_labels

    items, problems, names = [], [], set()
    for pair in pairs:
        if hasattr(pair, "image") and hasattr(pair, "instances"):
            name, image, labels, inst = pair.name, pair.image, pair.instances, None
        elif isinstance(pair, tuple | list) and len(pair) in (3, 4):
            name, image, labels, inst = (*pair, None)[:4]
        else:
            raise InputError(
                "training pairs are (name, image, labels) tuples or TrainingPair, not "
                f"{type(pair).__name__}"
            )
        name = str(name)
        try:
            image = check_image(image, name=name)
            labels = check_labels(labels, image.shape)
            if inst is not None:
                inst = check_labels(inst, image.shape)
        except InputError as exc:
            problems.append(str(exc) if str(exc).startswith(name) else f"{name}: {exc}")
            continue
        if name in names:  # the split, the resume check and the summary go by name
            problems.append(f"{name}: two training images have this name; rename one")
            continue
        names.add(name)
        items.append(Item(name, image, labels, inst))
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise InputError(f"{len(problems)} training image(s) cannot be used: {shown}")
    if not items:
        raise InputError("no training images given")
    return items


def weighted_cross_entropy(logits, target, weights):
    """``sum(w * CE) / labelled pixels`` over a batch.

    Parameters
    ----------
    logits
        N x K x H x W.
    target
        N x H x W class indices, -1 where unlabelled (those pixels contribute nothing,
        not even a gradient).
    weights
        N x H x W per-pixel weights (0 where unlabelled).
    """
    import torch.nn.functional as F

    labelled = target >= 0
    ce = F.cross_entropy(logits.float(), target.clamp(min=0), reduction="none")
    return (ce * weights * labelled).sum() / labelled.sum().clamp(min=1)


class UNetTrainer:
    """One U-Net training run: the network, the data as it sees them, the optimiser.

    :func:`train_unet` is ``UNetTrainer(config, ...).fit(pairs, out, ...)``; the pieces
    (:meth:`build`, :meth:`prepare`, :meth:`batch`, :meth:`loss`, :meth:`step`,
    :meth:`validate`) are public for tests and experiments.

    Parameters
    ----------
    config
        The run's options (checked here).
    class_names
        ``{label value: name}`` or one name per class in sorted value order; default
        the names an ``init`` checkpoint gives its classes, else ``"class <value>"``.
    init
        A U-Net checkpoint to start from instead of random weights (same depth, width,
        batch norm and padding). Classes it shares with the labels keep their output;
        new classes start from random weights.
    """

    def __init__(
        self,
        config: UNetTrainConfig,
        class_names: Mapping | list | None = None,
        init: str | Path | None = None,
    ) -> None:
        import torch

        from napari_samphase.core.device import resolve_device

        self.config = check_config(config)
        self.device = resolve_device(config.device)
        self.class_names_given = class_names
        self.init = None if init is None else Path(init)
        self.init_meta: dict = {}
        self.model = None
        self.classes = np.zeros(0, np.int64)
        self.class_names: list[str] = []
        self.counts: dict = {}
        self.optimizer = None
        self.scheduler = None
        self.bf16 = self.device.type == "cuda"
        self._torch = torch
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)

    # -- the network ----------------------------------------------------------------------
    def build(self, items: list[Item]) -> None:
        """Classes, channels and the network for these training images (all of them,
        validation included, so every class they hold has an output)."""
        from napari_samphase.core.unet.inputs import NORMALISATION, image_channels
        from napari_samphase.core.unet.model import UNet

        cfg = self.config
        counts: dict[int, int] = {}
        for item in items:
            values, n = np.unique(item.labels, return_counts=True)
            for v, c in zip(values.tolist(), n.tolist(), strict=True):
                if v != cfg.ignore:
                    counts[v] = counts.get(v, 0) + c
        if len(counts) < 2:
            found = ", ".join(map(str, sorted(counts))) or "none"
            raise InputError(
                f"the labels hold {len(counts)} class(es) ({found}) besides the ignored value "
                f"{cfg.ignore}: at least two are needed"
            )
        self.counts = counts
        self.classes = np.array(sorted(counts), np.int64)
        init_state = self._read_init()
        in_channels = (
            int(self.init_meta["unet"]["in_channels"])
            if init_state is not None
            else max(image_channels(i.image) for i in items)
        )
        self.unet_config = check_unet_config(
            UNetConfig(
                in_channels,
                len(self.classes),
                cfg.depth,
                cfg.width,
                cfg.batch_norm,
                cfg.padding,
                cfg.dropout,
            )
        )
        self.normalisation = dict(self.init_meta.get("normalisation", NORMALISATION))
        self.class_names = self._names()
        self.model = UNet(self.unet_config)
        if init_state is not None:
            self._load_init(init_state)
        self.model.to(self.device).train()

    def _read_init(self):
        if self.init is None:
            return None
        from napari_samphase.core.unet.checkpoint import read_unet, unet_config

        state, meta = read_unet(self.init)
        arch = asdict(unet_config(meta, self.init))
        differ = [k for k in ARCHITECTURE if arch[k] != getattr(self.config, k)]
        if differ:
            saved = ", ".join(f"{k} {arch[k]}" for k in differ)
            asked = ", ".join(f"{k} {getattr(self.config, k)}" for k in differ)
            raise InputError(f"init: {self.init} is a network with {saved}, not {asked}")
        self.init_meta = meta
        return state

    def _load_init(self, state: dict) -> None:
        """The init network's weights; its head's rows go to the classes it shares with
        this run (new classes keep their random start)."""
        torch = self._torch
        own = self.model.state_dict()
        old = [int(c) for c in self.init_meta["classes"]]
        with torch.no_grad():
            for name, value in state.items():
                if name.startswith("head."):
                    for j, c in enumerate(self.classes.tolist()):
                        if c in old:
                            own[name][j] = value[old.index(c)]
                else:
                    own[name].copy_(value)
        self.model.load_state_dict(own)

    def _names(self) -> list[str]:
        given = self.class_names_given
        classes = self.classes.tolist()
        if given is None:
            old = dict(
                zip(
                    self.init_meta.get("classes", []),
                    self.init_meta.get("class_names", []),
                    strict=False,
                )
            )
            return [str(old.get(c, f"class {c}")) for c in classes]
        if isinstance(given, Mapping):
            return [str(given.get(c, f"class {c}")) for c in classes]
        given = [str(n) for n in given]
        if len(given) != len(classes):
            raise InputError(
                f"{len(given)} class names for {len(classes)} classes "
                f"({', '.join(map(str, classes))})"
            )
        return given

    # -- data ---------------------------------------------------------------------------
    def prepare(self, item: Item) -> Sample:
        """An image as the network sees it: normalised input, class indices, weights."""
        from napari_samphase.core.training.weightmap import phase_weights
        from napari_samphase.core.unet.inputs import model_input

        cfg = self.config
        x = model_input(item.image, self.unet_config.in_channels, self.normalisation, item.name)
        index = np.searchsorted(self.classes, item.labels)
        index = np.minimum(index, len(self.classes) - 1)
        known = self.classes[index] == item.labels
        target = np.where(known, index, -1).astype(np.int16)
        weights = phase_weights(
            item.labels,
            cfg.ignore,
            cfg.border_weight,
            cfg.sigma,
            counts=self.counts,
            balanced=cfg.class_weights == "balanced",
            instances=item.instances,
        )
        weights[~known] = 0.0
        labelled = None if known.all() else np.flatnonzero(known)
        return Sample(
            item.name,
            np.ascontiguousarray(np.moveaxis(x, 0, -1)),
            target,
            weights.astype(np.float32, copy=False),
            labelled,
            int(known.sum()),
        )

    @property
    def crop_size(self) -> int:
        """The network input side of a training crop (``config.crop`` rounded up to a
        size the network takes)."""
        return self.unet_config.valid_input(self.config.crop)

    def crop(self, sample: Sample, rng: np.random.Generator):
        """(x C x h x w, target h' x w', weights h' x w') of one random, augmented crop
        centred on a labelled pixel (h' = h less the valid convolutions' margins)."""
        from napari_samphase.core.training.augment import (
            DIHEDRAL,
            crop_mirrored,
            dihedral,
            elastic_field,
            intensity_jitter,
            warp,
        )

        cfg = self.config
        size = self.crop_size
        h, w = sample.target.shape
        if sample.labelled is None:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
        else:
            cy, cx = divmod(int(sample.labelled[rng.integers(len(sample.labelled))]), w)
        y0, x0 = cy - size // 2, cx - size // 2
        if cfg.elastic:
            field = elastic_field((size, size), rng)
            x = warp(sample.x, field, 3, (y0, x0))
            t = warp(sample.target, field, 0, (y0, x0))
            wt = warp(sample.weights, field, 0, (y0, x0))
        else:
            x, t, wt = (
                crop_mirrored(a, y0, x0, size, size)
                for a in (sample.x, sample.target, sample.weights)
            )
        if self.unet_config.padding == "valid":
            m = self.unet_config.margin
            t, wt = t[m:-m, m:-m], wt[m:-m, m:-m]
        if cfg.augment:
            k = int(rng.integers(len(DIHEDRAL)))
            x, t, wt = dihedral(x, k), dihedral(t, k), dihedral(wt, k)
            x = intensity_jitter(np.clip(x, 0.0, 1.0) * 255.0, rng) / 255.0
        return np.moveaxis(x, -1, 0), t, wt

    def batch(self, samples: list[Sample], rng: np.random.Generator, which=None):
        """A training batch (x, target, weights) of torch tensors on the device: one crop
        of ``samples[i]`` for each ``i`` in ``which`` (default ``batch_size`` random)."""
        torch = self._torch
        if which is None:
            which = rng.integers(len(samples), size=self.config.batch_size)
        crops = [self.crop(samples[int(i)], rng) for i in which]
        x, t, w = (np.stack([c[j] for c in crops]) for j in range(3))
        return (
            torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.device),
            torch.from_numpy(t.astype(np.int64)).to(self.device),
            torch.from_numpy(np.ascontiguousarray(w, np.float32)).to(self.device),
        )

    # -- optimisation -------------------------------------------------------------------
    def loss(self, x, target, weights):
        """The batch's weighted cross-entropy (bf16 autocast on CUDA, loss in fp32)."""
        torch = self._torch
        autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        )
        with autocast:
            logits = self.model(x)
        return weighted_cross_entropy(logits, target, weights)

    def setup(self, total_steps: int) -> None:
        """Adam over the network and the schedule over ``total_steps``."""
        torch = self._torch
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
        factor = SCHEDULE_FACTORS[self.config.schedule]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: factor(s, total_steps)
        )

    def step(self, loss) -> float:
        """Back-propagate ``loss``, clip, update, advance the schedule; the loss."""
        torch = self._torch
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    def validate(
        self, samples: list[Sample], progress: ProgressCallback | None = None
    ) -> tuple[float | None, float | None]:
        """(loss, mean IoU over the classes) of whole validation images predicted by
        overlap-tile inference, on their labelled pixels; (None, None) without any."""
        from napari_samphase.core.unet.inference import predict_tiled

        if not samples:
            return None, None
        k = len(self.classes)
        total, pixels = 0.0, 0
        confusion = np.zeros((k, k), np.int64)
        for s in samples:
            probs = predict_tiled(
                self.model,
                np.moveaxis(s.x, -1, 0),
                tile=VAL_TILE,
                batch=self.config.batch_size,
                progress=progress,
            )
            sel = s.target >= 0
            t = s.target[sel].astype(np.int64)
            p = probs[:, sel]
            nll = -np.log(np.maximum(p[t, np.arange(len(t))], 1e-12))
            total += float((nll * s.weights[sel]).sum())
            pixels += len(t)
            confusion += np.bincount(t * k + p.argmax(0), minlength=k * k).reshape(k, k)
        inter = np.diag(confusion)
        union = confusion.sum(0) + confusion.sum(1) - inter
        iou = inter[union > 0] / union[union > 0]
        return total / max(pixels, 1), float(iou.mean())

    # -- the run ------------------------------------------------------------------------
    def fit(
        self,
        pairs,
        out: str | Path,
        progress: ProgressCallback | None = None,
        on_epoch: Callable[[EpochReport], None] | None = None,
        resume: bool = False,
    ) -> TrainResult:
        """Train on ``pairs`` and keep the best epoch in ``out``; see :func:`train_unet`."""
        from napari_samphase.core.training.data import split_pairs

        t0 = time.perf_counter()
        cfg = self.config
        out = Path(out)
        items = _items(pairs)
        train_items, val_items = split_pairs(items, cfg.val_fraction, cfg.seed)
        self.build(items)
        train = [self.prepare(i) for i in train_items]
        val = [self.prepare(i) for i in val_items]
        empty = [s.name for s in train + val if not s.pixels]
        if empty:
            raise InputError(f"{', '.join(empty)}: no labelled pixel (all are {cfg.ignore})")
        crops = len(train) * cfg.crops_per_image
        per_epoch = math.ceil(crops / cfg.batch_size)
        total = cfg.epochs * per_epoch
        self.setup(total)
        run = RunState()
        if resume:
            run = self._restore(state_path(out), out, train, val)
        data = _data_summary(train, val)
        stopped = "epochs"
        epoch = run.epoch
        try:
            while epoch < cfg.epochs:
                epoch += 1
                t_epoch = time.perf_counter()
                head = f"epoch {epoch}/{cfg.epochs}"
                report(progress, (epoch - 1) * per_epoch, total, head)
                self.model.train()
                order = self.rng.permutation(np.repeat(np.arange(len(train)), cfg.crops_per_image))
                losses = []
                for first in range(0, crops, cfg.batch_size):
                    batch = self.batch(train, self.rng, order[first : first + cfg.batch_size])
                    losses.append(self.step(self.loss(*batch)))
                    done = (epoch - 1) * per_epoch + len(losses)
                    report(progress, done, total, f"{head} loss {np.mean(losses):.3f}")
                done = epoch * per_epoch

                def val_progress(i, n, message, done=done, head=head):
                    report(progress, done, total, f"{head} validation {i}/{n}")

                val_loss, val_iou = self.validate(val, val_progress if progress else None)
                rep = EpochReport(
                    epoch, float(np.mean(losses)), val_loss, val_iou, time.perf_counter() - t_epoch
                )
                why = finish_epoch(
                    run,
                    rep,
                    out=out,
                    lr=cfg.lr,
                    save_best=lambda: self._save(out, data, run),
                    save_state=lambda: self._save_state(state_path(out), run, train, val),
                    on_epoch=on_epoch,
                    patience=cfg.patience,
                    max_minutes=cfg.max_minutes,
                    t0=t0,
                )
                if why:
                    stopped = why
                    break
        except Cancelled:
            if run.best_epoch is None:
                raise
            stopped = "cancelled"
        finally:
            self.model.eval()
        from napari_samphase.core.unet.checkpoint import read_unet

        _, meta = read_unet(out)
        return TrainResult(out, run.best_epoch, stopped, list(run.history), meta)

    def _save(self, out: Path, data: dict, run: RunState) -> None:
        from napari_samphase.core.unet.checkpoint import save_unet

        metrics = metrics_of(run)
        save_unet(
            out,
            self.model,
            self.unet_config,
            self.classes,
            self.class_names,
            self.normalisation,
            metrics,
            config=asdict(self.config),
            training_data=data,
            init=None if self.init is None else str(self.init),
            init_sha256=self.init_meta.get("weights_sha256"),
            created=now(),
            samphase_version=package_version(),
        )

    def _save_state(self, path: Path, run: RunState, train, val) -> None:
        weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        state = training_state(self, run, train, val, classes=self.classes.tolist(), model=weights)
        save_atomically(state, path)

    def _restore(self, path: Path, out: Path, train, val) -> RunState:
        """Load ``path`` (written by :meth:`_save_state`) into this trainer."""
        what = "a U-Net training state"
        keys = ("classes", "model")
        state = read_training_state(path, self, train, val, keys, RESUMABLE_CHANGES, what)
        if state["classes"] != self.classes.tolist():
            raise InputError(f"resume: the label classes differ from the run saved in {path}")
        if not out.is_file():
            raise InputError(f"resume: the checkpoint {out} is missing")
        self.model.load_state_dict(state["model"])
        return restore_training_state(self, state)


def _data_summary(train: list[Sample], val: list[Sample]) -> dict:
    images = [
        {
            "name": s.name,
            "height": int(s.target.shape[0]),
            "width": int(s.target.shape[1]),
            "labelled_pixels": s.pixels,
            "split": split,
        }
        for split, samples in (("train", train), ("val", val))
        for s in samples
    ]
    return {"images": images, "train": [s.name for s in train], "val": [s.name for s in val]}


def train_unet(
    pairs,
    config: UNetTrainConfig,
    out: str | Path,
    progress: ProgressCallback | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    resume: bool = False,
    init: str | Path | None = None,
    class_names: Mapping | list | None = None,
) -> TrainResult:
    """Train a U-Net on ``pairs`` and write the best epoch's checkpoint to ``out``.

    ``progress(done, total, message)`` counts batches and may raise ``Cancelled``: the
    best checkpoint so far is kept and the result says ``stopped="cancelled"`` (if no
    epoch finished, ``Cancelled`` propagates and nothing is written).

    Parameters
    ----------
    pairs
        ``(name, image, labels)`` tuples (or ``(name, image, labels, instances)`` to
        give the border term its objects) or ``training.data.TrainingPair`` whose
        ``instances`` hold class labels. Labels are class values (e.g. 0..K-1, or 0
        and 255); pixels equal to ``config.ignore`` are unlabelled. Names must differ.
    config
        The run's options; bad ones raise :class:`InputError` before any work.
    out
        The checkpoint to write (``<out>.state`` is written beside it each epoch).
    progress
        ``(batch, total batches, "epoch e/E loss x")`` callback; may raise ``Cancelled``.
    on_epoch
        Called with each epoch's :class:`EpochReport` (``val_iou``: mean IoU over the
        classes on the validation images) after its checkpoint is saved.
    resume
        Continue the run saved in ``<out>.state`` (same config but for ``epochs``,
        ``max_minutes``, ``patience`` and ``device``; same data and classes).
    init
        A U-Net checkpoint to start from (the widget's "retrain from the last
        weights"): same depth, width, batch norm and padding.
    class_names
        ``{value: name}`` or one name per class in sorted value order.

    Notes
    -----
    An epoch is ``crops_per_image`` crops of every training image. ``max_minutes`` is
    checked between epochs. The monitored loss is the validation loss, or the training
    loss without validation images; ``stopped`` is ``"epochs"``, ``"early_stop"``
    (``patience`` epochs without a better one), ``"time"`` or ``"cancelled"``.
    """
    check_config(config)
    pairs = list(pairs)
    if not pairs:
        raise InputError("no training images given")
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{out} is a folder: give the checkpoint's file name")
    if resume and not state_path(out).is_file():
        raise InputError(f"resume: {state_path(out)} does not exist (nothing to continue)")
    trainer = UNetTrainer(config, class_names=class_names, init=init)
    return trainer.fit(pairs, out, progress=progress, on_epoch=on_epoch, resume=resume)
