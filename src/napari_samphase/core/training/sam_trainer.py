"""Fine-tuning SAM on the user's masks.

Each step takes one training image, samples up to ``prompts_per_image`` of its
objects and, for each, a first prompt as a user would give it (a click or a jittered
box, plus negative clicks: :mod:`.prompts`), then ``corrective_rounds`` more rounds
that each add one click where the prediction is wrong and feed the previous logits
back as SAM's mask input (SAM's and micro-sam's interactive training). Images go
through the model's own input transform, exactly as at inference
(``SamSession.set_image``): resized so the longest side is ``img_size``, the input
adapter if the model has one, SAM's normalisation and padding. The loss is computed
on the resized, unpadded image (the decoder's low-res logits upsampled as
``postprocess_masks`` does), plus the IoU head's error so that segment-everything's
``pred_iou_thresh`` keeps its meaning.

Modes (:data:`TRAIN_MODES`):

* ``decoder``: the image and prompt encoders are frozen; each (image, flip/rotation)
  embedding is computed once and cached, so an epoch costs the decoder only.
  Intensity jitter is not applied then (it would need a new embedding each step).
  ``encoder_blocks=N`` also trains the last N image-encoder blocks and the neck
  (no caching; the frozen blocks run without gradients).
* ``full``: everything trains.

An input adapter (``adapter="gray"``) always trains; the gradient then flows through
the frozen encoder to it, so embeddings are not cached.

The best epoch (lowest validation loss, or training loss without validation images)
is written with :func:`loading.save_checkpoint` and loads with
``SamSession.from_name(checkpoint=out)``; ``<out>.state`` holds what
``resume=True`` needs to continue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from napari_samphase.core.errors import InputError
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
from napari_samphase.core.training.sam_config import (  # noqa: F401 (re-exported)
    RESUMABLE_CHANGES,
    TRAIN_MODES,
    SamTrainConfig,
    check_config,
)

GRAD_CLIP = 1.0  # max gradient norm
MIN_OBJECT_PIXELS = 4  # objects smaller than this at the model's input size are skipped
VAL_OBJECTS = 16  # validation objects per image (val_iou and val loss)
VAL_STREAM = 7919  # validation prompts: seeded apart from training's
# Segment-everything thresholds saved with the weights: the pred. IoU threshold is
# lowered to the CALIB_QUANTILE of the predicted IoU of validation clicks whose mask is
# good (true IoU >= CALIB_GOOD), when there are at least CALIB_MIN of them; never raised.
CALIB_GOOD = 0.5
CALIB_QUANTILE = 0.1
CALIB_MIN = 5


@dataclass
class Sample:
    """A training image in the model input frame (resized, unpadded)."""

    name: str
    rgb: np.ndarray  # h x w x 3 uint8, as SamSession.set_image feeds the encoder
    instances: np.ndarray  # h x w int32, nearest-neighbour resized
    ids: np.ndarray  # objects with at least MIN_OBJECT_PIXELS pixels here
    objects: int  # objects in the original labels
    labels: np.ndarray  # the original instance labels (val IoU is measured on them)


def _resize_nearest(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize (each output pixel takes the label under its centre)."""
    (h, w), (nh, nw) = labels.shape, shape
    rows = np.minimum(((np.arange(nh) + 0.5) * h / nh).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(nw) + 0.5) * w / nw).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]


def _load_base(base: str, device, architecture: str = "vit_b"):
    """A registered model by name, or a checkpoint file: its own architecture wins; a
    plain state dict (an official or other tool's checkpoint) is ``architecture``."""
    from napari_samphase.core.sam.loading import load_model
    from napari_samphase.core.sam.registry import MODELS

    if base in MODELS:
        return load_model(base, device=device)
    if not Path(base).is_file():
        raise InputError(
            f"base model {base!r} is neither a registered model ({', '.join(MODELS)}) "
            "nor a checkpoint file"
        )
    return load_model(architecture, checkpoint=base, device=device)


def _trainable_decoder(sam, config) -> list[str]:
    names = [f"mask_decoder.{n}" for n, _ in sam.mask_decoder.named_parameters()]
    if config.encoder_blocks:
        enc = sam.image_encoder
        first = len(enc.blocks) - config.encoder_blocks
        for i in range(first, len(enc.blocks)):
            names += [f"image_encoder.blocks.{i}.{n}" for n, _ in enc.blocks[i].named_parameters()]
        names += [f"image_encoder.neck.{n}" for n, _ in enc.neck.named_parameters()]
    return names


def _trainable_full(sam, config) -> list[str]:
    return [n for n, _ in sam.named_parameters()]


# mode -> (sam, config) -> names of the parameters that train (plus the adapter's)
TRAINABLE: dict[str, Callable] = {"decoder": _trainable_decoder, "full": _trainable_full}


class SamTrainer:
    """One fine-tuning run: the model, what trains, the optimiser, the embeddings.

    :func:`train_sam` is ``SamTrainer(config).fit(pairs, out, ...)``; the pieces
    (:meth:`prepare`, :meth:`image_loss`, :meth:`prompts_loss`, :meth:`step`) are
    public for tests and experiments.

    Parameters
    ----------
    config
        The run's options (checked here).
    model
        An already loaded ``LoadedModel`` to train instead of ``config.base`` (e.g.
        a random-weight architecture for tests); its ``sam`` is trained in place.

    A base model that already has an input adapter keeps it (with ``adapter="none"``
    or its own kind; another kind is refused), and the adapter trains.
    """

    def __init__(self, config: SamTrainConfig, model=None) -> None:
        import torch

        from napari_samphase.core.device import resolve_device
        from napari_samphase.core.sam.adapter import adapter_name, attach_adapter

        self.config = check_config(config)
        resolve_device(config.device)  # a bad device fails before the model loads
        self._seed()
        self.model = (
            model
            if model is not None
            else _load_base(config.base, config.device, config.architecture)
        )
        self.sam = self.model.sam
        self.device = next(self.sam.parameters()).device
        # (true IoU, predicted IoU) of the last validation's clicks: the saved thresholds
        self.val_scores = (np.zeros(0), np.zeros(0))
        attach_adapter(self.sam, config.adapter)
        self.adapter = adapter_name(self.sam)
        enc = self.sam.image_encoder
        if config.encoder_blocks > len(enc.blocks):
            raise InputError(
                f"encoder_blocks {config.encoder_blocks}: the {self.model.architecture} image "
                f"encoder has {len(enc.blocks)} blocks"
            )
        names = set(TRAINABLE[config.mode](self.sam, config))
        names |= {n for n, _ in self.sam.named_parameters() if n.startswith("input_adapter.")}
        self.trainable = [n for n, _ in self.sam.named_parameters() if n in names]
        for n, p in self.sam.named_parameters():
            p.requires_grad_(n in names)
        self.sam.train()
        # Frozen image encoder, no adapter: its output never changes, so cache it.
        self.cacheable = config.mode == "decoder" and not config.encoder_blocks
        self.cacheable = self.cacheable and self.adapter == "none"
        # leading image-encoder blocks that never train (all of them in decoder mode)
        frozen = config.mode == "decoder"
        self.frozen_blocks = len(enc.blocks) - config.encoder_blocks if frozen else 0
        self.img_size = enc.img_size
        self.low_size = tuple(self.sam.prompt_encoder.mask_input_size)
        self.bf16 = self.device.type == "cuda"  # encoder autocast; the decoder stays fp32
        self.cache: dict = {}
        self.optimizer = None
        self.scheduler = None
        self._torch = torch

    def _seed(self) -> None:
        import torch

        torch.manual_seed(self.config.seed)
        self.rng = np.random.default_rng(self.config.seed)

    # -- data ---------------------------------------------------------------------------
    def prepare(self, pair) -> Sample:
        """A :class:`~.data.TrainingPair` in the model input frame (SAM's transform)."""
        from segment_anything.utils.transforms import ResizeLongestSide

        from napari_samphase.core.image.convert import to_rgb_uint8

        rgb = ResizeLongestSide(self.img_size).apply_image(to_rgb_uint8(pair.image))
        inst = _resize_nearest(np.asarray(pair.instances), rgb.shape[:2]).astype(np.int32)
        ids, area = np.unique(inst, return_counts=True)  # ids may be sparse and large
        ids = ids[(area >= MIN_OBJECT_PIXELS) & (ids > 0)]
        labels = np.asarray(pair.instances)
        return Sample(pair.name, rgb, inst, ids, pair.n_objects, labels)

    def _prepare_all(self, pairs) -> list[Sample]:
        samples = [self.prepare(p) for p in pairs]
        empty = [s.name for s in samples if not len(s.ids)]
        if empty:
            raise InputError(
                f"{', '.join(empty)}: every object is smaller than {MIN_OBJECT_PIXELS} pixels "
                f"once the image is resized to the model's {self.img_size}-pixel input"
            )
        return samples

    # -- model --------------------------------------------------------------------------
    def _encode(self, image: np.ndarray, grad: bool):
        """Image embedding (1 x C x h x w, fp32) of an h x w x 3 image in 0..255."""
        from napari_samphase.core.sam.adapter import encoder_input

        torch = self._torch
        x = torch.as_tensor(np.ascontiguousarray(image), device=self.device)
        x = x.permute(2, 0, 1)[None].float()
        autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        )
        with torch.set_grad_enabled(grad):
            x = encoder_input(self.sam, x)  # fp32, as at inference
            with autocast:
                emb = self._encoder(x, grad)
        return emb.float()

    def _encoder(self, x, grad: bool):
        """``sam.image_encoder(x)``; the frozen leading blocks run without gradients
        unless an input adapter needs the gradient through them."""
        torch = self._torch
        enc = self.sam.image_encoder
        prefix_grad = grad and (self.adapter != "none" or self.frozen_blocks == 0)
        with torch.set_grad_enabled(prefix_grad):
            h = enc.patch_embed(x)
            if enc.pos_embed is not None:
                h = h + enc.pos_embed
            for blk in enc.blocks[: self.frozen_blocks]:
                h = blk(h)
        for blk in enc.blocks[self.frozen_blocks :]:
            h = blk(h)
        return enc.neck(h.permute(0, 3, 1, 2))

    def embedding(self, sample: Sample, view: int = 0, key=None, jitter_rng=None):
        """The embedding of dihedral ``view`` of ``sample`` (cached when the encoder
        is frozen; ``key`` names the cache entry). With ``jitter_rng`` (and no cache)
        the image gets a random intensity jitter first. Gradients flow when the
        model is in training mode and something before the decoder trains."""
        from napari_samphase.core.training.augment import dihedral, intensity_jitter

        if self.cacheable and key is not None and (key, view) in self.cache:
            return self.cache[(key, view)].to(self.device)
        image = dihedral(sample.rgb, view)
        if jitter_rng is not None and not self.cacheable:
            image = intensity_jitter(image, jitter_rng)
        grad = self.sam.training and not self.cacheable
        emb = self._encode(image, grad)
        if self.cacheable and key is not None:
            self.cache[(key, view)] = emb.detach().cpu()
        return emb

    def _upsample(self, low, input_size):
        """Low-res logits -> the resized image (input frame), as ``postprocess_masks``
        (bilinear to the square model input, padding cropped)."""
        import torch.nn.functional as F

        from napari_samphase.core.sam.fast_decoder import LogitFrame

        frame = LogitFrame(self.low_size, self.img_size, tuple(input_size), tuple(input_size))
        (ch, cw), (ih, iw) = frame.crop, frame.input_size
        up = round(frame.up)
        x = low[..., :ch, :cw]
        x = F.interpolate(x, size=(ch * up, cw * up), mode="bilinear", align_corners=False)
        return x[..., :ih, :iw]

    def _decode(self, emb, prompts, mask_input):
        """All four outputs' low-res logits (P x 4 x h x w) and IoU predictions."""
        torch = self._torch
        dev = self.device
        pts = np.stack([p.points for p in prompts])
        points = None
        if pts.shape[1]:
            labels = np.stack([p.labels for p in prompts])
            points = (torch.as_tensor(pts, device=dev), torch.as_tensor(labels, device=dev))
        boxes = None
        if prompts[0].box is not None:
            boxes = torch.as_tensor(np.stack([p.box for p in prompts]), device=dev)
        # With no box, the prompt encoder appends SAM's padding point, as at inference.
        sparse, dense = self.sam.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
        return self.sam.mask_decoder.predict_masks(
            image_embeddings=emb,
            image_pe=self.sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )

    def prompts_loss(self, emb, input_size, targets: np.ndarray, prompts, rng):
        """Summed loss of prompts that share a signature (one decoder call a round).

        Round 0 uses ``prompts``; each of ``corrective_rounds`` more adds a corrective
        click per prompt (SAM's padding "not a point" where the prediction is right)
        and feeds the previous round's chosen low-res logits, detached, as mask input.
        A single positive click takes the best of SAM's three outputs by loss (SAM's
        recipe); anything else the single-mask output. Each prompt's loss is the mean
        over rounds of mask loss + ``iou_loss_weight`` x IoU-head error.

        Parameters
        ----------
        emb
            The image embedding, 1 x C x h x w.
        input_size
            (h, w) of the resized image in the model input frame.
        targets
            P x h x w bool target masks in that frame.
        prompts
            P :class:`~.prompts.Prompt` with one signature.
        rng
            numpy Generator for the corrective clicks.
        """
        from napari_samphase.core.training.losses import iou_head_loss, mask_loss
        from napari_samphase.core.training.prompts import corrective_point

        torch = self._torch
        cfg = self.config
        tgt = torch.as_tensor(targets, device=self.device)[:, None].float()
        p0 = prompts[0]
        multimask = p0.box is None and len(p0.points) == 1 and bool((p0.labels == 1).all())
        rows = torch.arange(len(prompts), device=self.device)
        mask_input, total = None, 0.0
        for r in range(cfg.corrective_rounds + 1):
            low, iou = self._decode(emb, prompts, mask_input)
            sel = slice(1, None) if multimask else slice(0, 1)
            low, iou = low[:, sel], iou[:, sel]
            logits = self._upsample(low, input_size)
            per = mask_loss(logits, tgt, cfg.loss)
            best = per.detach().argmin(1)
            iou_err = iou_head_loss(iou, logits, tgt).mean(1)
            total = total + per[rows, best] + cfg.iou_loss_weight * iou_err
            if r == cfg.corrective_rounds:
                break
            mask_input = low[rows, best][:, None].detach()
            pred = (logits[rows, best] > 0).detach().cpu().numpy()
            new = []
            for p, pr, t in zip(prompts, pred, targets, strict=True):
                click = corrective_point(pr, t, rng)
                new.append(p.with_point(*click) if click else p.with_point((0.0, 0.0), -1))
            prompts, multimask = new, False
        return (total / (cfg.corrective_rounds + 1)).sum()

    def image_loss(self, sample: Sample, rng, view: int = 0, emb=None, n_objects=None):
        """Mean loss of prompts on up to ``prompts_per_image`` objects of ``sample``
        (its dihedral ``view``); prompts and corrective clicks drawn from ``rng``."""
        from napari_samphase.core.training.augment import dihedral
        from napari_samphase.core.training.prompts import make_prompt, prompt_kind

        cfg = self.config
        if emb is None:
            emb = self.embedding(sample, view)
        inst = dihedral(sample.instances, view)
        n = min(n_objects or cfg.prompts_per_image, len(sample.ids))
        chosen = rng.choice(sample.ids, size=n, replace=False)
        # One prompt kind for the whole step (as micro-sam batches): one decoder call
        # a round, unless an object leaves no room for its negative clicks.
        use_box, n_negative = prompt_kind(rng, cfg.box_prob, cfg.negative_points)
        groups: dict = {}
        for i in chosen:
            target = inst == i
            prompt = make_prompt(target, rng, use_box, n_negative)
            g = groups.setdefault(prompt.signature, ([], []))
            g[0].append(target)
            g[1].append(prompt)
        total = 0.0
        for targets, prompts in groups.values():
            total = total + self.prompts_loss(emb, inst.shape, np.stack(targets), prompts, rng)
        return total / n

    def click_iou(self, sample: Sample, emb=None, n_objects: int = VAL_OBJECTS) -> list[float]:
        """IoU of one positive click at each object's deepest pixel (up to
        ``n_objects``, a fixed choice), measured on the original labels exactly as
        ``SamSession.predict`` answers it: the click mapped into the model frame, the
        best of SAM's three outputs by predicted IoU, logits upsampled to the image."""
        return self.click_scores(sample, emb, n_objects)[0]

    def click_scores(
        self, sample: Sample, emb=None, n_objects: int = VAL_OBJECTS
    ) -> tuple[list[float], list[float]]:
        """(true IoUs, predicted IoUs) of the clicks of :meth:`click_iou`."""
        from napari_samphase.core.sam.fast_decoder import LogitFrame
        from napari_samphase.core.training.prompts import Prompt, deepest_pixel, pixel_xy

        torch = self._torch
        if emb is None:
            emb = self.embedding(sample)
        ids = sample.ids
        if len(ids) > n_objects:
            ids = np.sort(np.random.default_rng(VAL_STREAM).choice(ids, n_objects, replace=False))
        (h, w), (nh, nw) = sample.labels.shape, sample.rgb.shape[:2]
        scale = np.array([nw / w, nh / h], np.float32)  # ResizeLongestSide.apply_coords
        prompts = [
            Prompt(pixel_xy(*deepest_pixel(sample.labels == i))[None] * scale, np.ones(1, np.int64))
            for i in ids
        ]
        frame = LogitFrame(self.low_size, self.img_size, (nh, nw), (h, w))
        ious, predicted = [], []
        with torch.no_grad():
            low, iou = self._decode(emb, prompts, None)
            best = iou[:, 1:].argmax(1) + 1
            for j, i in enumerate(ids):
                logits = frame.upsample(low[j : j + 1, best[j] : best[j] + 1])[0, 0]
                pred = (logits > self.sam.mask_threshold).cpu().numpy()
                target = sample.labels == i
                ious.append(float((pred & target).sum() / max((pred | target).sum(), 1)))
                predicted.append(float(iou[j, best[j]]))
        return ious, predicted

    # -- optimisation -------------------------------------------------------------------
    def setup(self, total_steps: int) -> None:
        """Adam over the trainable parameters and the schedule over ``total_steps``."""
        torch = self._torch
        params = dict(self.sam.named_parameters())
        self.params = [params[n] for n in self.trainable]
        self.optimizer = torch.optim.Adam(self.params, lr=self.config.lr)
        factor = SCHEDULE_FACTORS[self.config.schedule]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: factor(s, total_steps)
        )

    def step(self, loss) -> float:
        """Back-propagate ``loss``, clip, update, advance the schedule; the loss."""
        torch = self._torch
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, GRAD_CLIP)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    def validate(self, samples: list[Sample]) -> tuple[float | None, float | None]:
        """(val loss, val IoU) on ``samples``, with the same prompts every epoch."""
        if not samples:
            return None, None
        torch = self._torch
        rng = np.random.default_rng([self.config.seed, VAL_STREAM])
        was_training = self.sam.training
        self.sam.eval()
        losses, ious, predicted = [], [], []
        try:
            with torch.no_grad():
                for i, s in enumerate(samples):
                    emb = self.embedding(s, 0, key=("val", i))
                    losses.append(float(self.image_loss(s, rng, 0, emb, VAL_OBJECTS)))
                    true, pred = self.click_scores(s, emb)
                    ious += true
                    predicted += pred
        finally:
            self.sam.train(was_training)
        self.val_scores = (np.array(ious), np.array(predicted))  # for the thresholds
        return float(np.mean(losses)), float(np.mean(ious))

    def calibrated_thresholds(self):
        """The base model's thresholds with the pred. IoU threshold lowered to what this
        model predicts for its good validation masks (see ``CALIB_*``), and what that
        was based on."""
        from dataclasses import replace as with_changes

        base = self.model.thresholds
        true, predicted = self.val_scores
        good = np.asarray(predicted)[np.asarray(true) >= CALIB_GOOD]
        source = {"objects": int(len(true)), "good": int(len(good))}
        if len(good) < CALIB_MIN:
            return base, {**source, "pred_iou_thresh": "base model's"}
        value = min(base.pred_iou_thresh, float(np.quantile(good, CALIB_QUANTILE)))
        return with_changes(base, pred_iou_thresh=value), {**source, "pred_iou_thresh": value}

    # -- the run ------------------------------------------------------------------------
    def fit(
        self,
        pairs,
        out: str | Path,
        progress: ProgressCallback | None = None,
        on_epoch=None,
        resume: bool = False,
    ) -> TrainResult:
        """Train on ``pairs`` and keep the best epoch in ``out``; see :func:`train_sam`."""
        from napari_samphase.core.training.augment import DIHEDRAL
        from napari_samphase.core.training.data import split_pairs

        t0 = time.perf_counter()
        cfg = self.config
        out = Path(out)
        state_file = state_path(out)
        train_pairs, val_pairs = split_pairs(list(pairs), cfg.val_fraction, cfg.seed)
        train, val = self._prepare_all(train_pairs), self._prepare_all(val_pairs)
        per_epoch = len(train)
        total = cfg.epochs * per_epoch
        self.setup(total)
        run = RunState()
        if resume:
            run = self._restore(state_file, out, train, val)
        data = _data_summary(train, val)
        stopped = "epochs"
        epoch = run.epoch
        try:
            while epoch < cfg.epochs:
                epoch += 1
                t_epoch = time.perf_counter()
                report(progress, (epoch - 1) * per_epoch, total, f"epoch {epoch}/{cfg.epochs}")
                self.sam.train()
                losses = []
                for j in self.rng.permutation(per_epoch):
                    view = int(self.rng.integers(len(DIHEDRAL))) if cfg.augment else 0
                    jitter = self.rng if cfg.augment else None
                    emb = self.embedding(train[j], view, key=("train", int(j)), jitter_rng=jitter)
                    losses.append(self.step(self.image_loss(train[j], self.rng, view, emb)))
                    done = (epoch - 1) * per_epoch + len(losses)
                    report(
                        progress,
                        done,
                        total,
                        f"epoch {epoch}/{cfg.epochs} loss {np.mean(losses):.3f}",
                    )
                val_loss, val_iou = self.validate(val)
                rep = EpochReport(
                    epoch, float(np.mean(losses)), val_loss, val_iou, time.perf_counter() - t_epoch
                )
                why = finish_epoch(
                    run,
                    rep,
                    out=out,
                    lr=cfg.lr,
                    save_best=lambda: self._save(out, data, run),
                    save_state=lambda: self._save_state(state_file, run, train, val),
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
            self.sam.eval()
        from napari_samphase.core.sam.loading import read_checkpoint

        _, meta = read_checkpoint(out, mmap=True)  # the metadata, not GBs of weights
        return TrainResult(out, run.best_epoch, stopped, list(run.history), meta)

    def _save(self, out: Path, data: dict, run: RunState) -> None:
        """Write the current weights (the best so far) with their metadata."""
        from napari_samphase.core.sam.loading import save_checkpoint

        metadata = {
            "base": self.config.base,
            "base_sha256": self.model.sha256,
            "config": asdict(self.config),
            "training_data": data,
            "metrics": metrics_of(run),
            "created": now(),
            "samphase_version": package_version(),
        }
        thresholds, metadata["thresholds_from"] = self.calibrated_thresholds()
        save_checkpoint(self.sam, out, self.model.architecture, thresholds, **metadata)

    def _save_state(self, path: Path, run: RunState, train, val) -> None:
        params = dict(self.sam.named_parameters())
        trainable = {n: params[n].detach().cpu().clone() for n in self.trainable}
        state = training_state(
            self, run, train, val, base_sha256=self.model.sha256, trainable=trainable
        )
        save_atomically(state, path)

    def _restore(self, path: Path, out: Path, train, val) -> RunState:
        """Load ``path`` (written by :meth:`_save_state`) into this trainer."""
        keys = ("base_sha256", "trainable")
        state = read_training_state(path, self, train, val, keys, RESUMABLE_CHANGES)
        if state["base_sha256"] != self.model.sha256:
            raise InputError(f"resume: the base model {self.config.base} has changed since {path}")
        if sorted(state["trainable"]) != sorted(self.trainable):
            raise InputError(f"resume: {path} trained other parameters than this run")
        if not out.is_file():
            raise InputError(f"resume: the checkpoint {out} is missing")
        params = dict(self.sam.named_parameters())
        with self._torch.no_grad():
            for n, value in state["trainable"].items():
                params[n].copy_(value)
        return restore_training_state(self, state)


def _data_summary(train: list[Sample], val: list[Sample]) -> dict:
    images = [
        {"name": s.name, "objects": s.objects, "objects_used": len(s.ids), "split": split}
        for split, samples in (("train", train), ("val", val))
        for s in samples
    ]
    return {"images": images, "train": [s.name for s in train], "val": [s.name for s in val]}


def train_sam(
    pairs,
    config: SamTrainConfig,
    out: str | Path,
    progress: ProgressCallback | None = None,
    on_epoch=None,
    resume: bool = False,
) -> TrainResult:
    """Fine-tune ``config.base`` on ``pairs`` (``training.data.TrainingPair``) and write
    the best epoch's checkpoint to ``out``.

    ``progress(done, total, message)`` counts steps and may raise ``Cancelled``: the
    best checkpoint so far is kept and the result says ``stopped="cancelled"`` (if no
    epoch finished, ``Cancelled`` propagates and nothing is written). ``on_epoch`` gets
    each :class:`EpochReport`. ``resume`` continues from ``out``'s training state.

    Parameters
    ----------
    pairs
        Training pairs (:func:`.data.pairs_from_folders` / :func:`.data.pairs_from_arrays`).
    config
        The run's options; bad ones raise :class:`InputError` before any work.
    out
        The checkpoint to write (``<out>.state`` is written beside it each epoch).
    progress
        ``(step, total steps, "epoch e/E loss x")`` callback; may raise ``Cancelled``.
    on_epoch
        Called with each epoch's :class:`EpochReport` (after its checkpoint is saved).
    resume
        Continue the run saved in ``<out>.state`` (same config but for
        ``epochs``, ``max_minutes``, ``patience`` and ``device``; same data). The
        state file stays after the run, so a finished run can be given more epochs.

    Notes
    -----
    One step is one training image. ``max_minutes`` is checked between epochs: the
    epoch in which the time runs out is finished, so every epoch is whole and a
    resumed run continues exactly where it stopped. A loss that is not finite stops
    the run with an ``InputError`` (the best epoch before it, if any, stays in ``out``).
    ``stopped`` is ``"epochs"``, ``"early_stop"`` (``patience`` epochs without a
    better monitored loss), ``"time"`` or ``"cancelled"``.
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
    return SamTrainer(config).fit(pairs, out, progress=progress, on_epoch=on_epoch, resume=resume)
