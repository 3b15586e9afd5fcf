"""One image + one SAM model: the embedding is computed once and reused by
point prompts and by segment-everything."""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.convert import to_rgb_uint8
from napari_samphase.core.progress import Cancelled, ProgressCallback, report
from napari_samphase.core.sam.adapter import encoder_input
from napari_samphase.core.sam.registry import Thresholds


@dataclass
class PromptResult:
    mask: np.ndarray  # H x W bool
    score: float  # predicted IoU of the returned mask
    index: int  # which decoder output was chosen (0 = single-mask output)


def image_key(image: np.ndarray) -> str:
    """Content key of an image array (shape, dtype and a hash of the pixels)."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).view(np.uint8), digest_size=16)
    return f"{image.shape}{image.dtype}{digest.hexdigest()}"


PRECISIONS = ("auto", "fp32", "bf16")


class SamSession:
    """Holds a SAM model, the current image and its embedding.

    Points are (row, col) in image pixels, as napari and numpy index them.
    """

    def __init__(
        self,
        sam,
        name: str = "custom",
        precision: str = "auto",
        thresholds: Thresholds | None = None,
        checkpoint_id: str | None = None,
    ) -> None:
        """
        Parameters
        ----------
        sam
            A segment_anything ``Sam`` (its device is the session's).
        name
            Registered architecture name, or any label for an unregistered model.
        precision
            Image encoder precision: ``auto``, ``fp32`` or ``bf16``.
        thresholds
            Segment-everything defaults; None: the registered architecture's (SAM's
            own for an unregistered name). :meth:`from_name` passes the checkpoint's.
        checkpoint_id
            Identifies the weights in :meth:`embedding_key`; None: this ``sam`` object.
        """
        import torch
        from segment_anything.utils.transforms import ResizeLongestSide

        from napari_samphase.core.sam.fast_decoder import FastDecoder
        from napari_samphase.core.sam.registry import MODELS

        self.sam = sam.eval()
        self.name = name
        spec = MODELS.get(name)
        self.thresholds = thresholds or (spec.thresholds if spec else Thresholds())
        self.checkpoint_id = checkpoint_id or f"in-memory model {id(sam):x}"
        self.device = next(sam.parameters()).device
        self.img_size = sam.image_encoder.img_size
        self.transform = ResizeLongestSide(self.img_size)
        self.decoder = FastDecoder(sam)
        self._torch = torch
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self.key: str | None = None
        self.image: np.ndarray | None = None
        self.embedding = None
        self.frame = None  # LogitFrame of the current image

    @property
    def checkpoint_sha256(self) -> str | None:
        """SHA-256 of the checkpoint file the weights came from (:meth:`from_name`
        records it in ``checkpoint_id`` as ``PATH#SHA``); None for in-memory weights."""
        _, sep, digest = self.checkpoint_id.rpartition("#")
        return digest if sep and len(digest) == 64 else None

    @property
    def encoder_bf16(self) -> bool:
        """bf16 image encoder: on CUDA, and on CPUs with native bf16 (AVX512-BF16/AMX)
        under "auto"; the decoder always runs in fp32."""
        if self.precision != "auto":
            return self.precision == "bf16"
        if self.device.type == "cuda":
            return True
        if self.device.type == "cpu":
            mkldnn = getattr(self._torch.ops, "mkldnn", None)
            try:
                return bool(mkldnn._is_mkldnn_bf16_supported())
            except Exception:  # older torch or no oneDNN: stay in fp32
                return False
        return False

    @classmethod
    def from_name(
        cls,
        name: str = "vit_b",
        checkpoint=None,
        device="auto",
        fetch=True,
        progress: ProgressCallback | None = None,
        precision: str = "auto",
    ) -> SamSession:
        """Load a registered model (or ``checkpoint``, whose own architecture and
        thresholds win over ``name``'s) into a session; see ``loading.load_model``."""
        from napari_samphase.core.sam.loading import load_model

        model = load_model(name, checkpoint, device=device, fetch=fetch, progress=progress)
        return cls(model.sam, model.architecture, precision, model.thresholds, model.checkpoint_id)

    # -- embedding ---------------------------------------------------------------------
    def embedding_key(self, image: np.ndarray) -> str:
        """What the embedding of ``image`` depends on: the pixels, the model (name and
        checkpoint identity) and the encoder precision. Hashes the image (about a
        millisecond per megapixel); no conversion, no model call."""
        precision = "bf16" if self.encoder_bf16 else "fp32"
        return f"{image_key(np.asarray(image))}|{self.name}|{self.checkpoint_id}|{precision}"

    def has_embedding_for(self, image: np.ndarray) -> bool:
        """True if :meth:`set_image` would reuse the current embedding for ``image``."""
        return self.embedding is not None and self.embedding_key(image) == self.key

    def set_image(self, image: np.ndarray, progress: ProgressCallback | None = None) -> None:
        """Compute the image embedding (skipped when :meth:`has_embedding_for` it)."""
        key = self.embedding_key(image)
        if self.embedding is not None and key == self.key:
            return
        rgb = to_rgb_uint8(image)
        torch = self._torch
        resized = self.transform.apply_image(rgb)
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1)[None].float()
        blocks = self.sam.image_encoder.blocks
        handles = []
        if progress is not None:  # per-block progress; a callback may cancel between blocks
            for i, block in enumerate(blocks):
                handles.append(
                    block.register_forward_hook(
                        lambda *_, i=i: report(progress, i + 1, len(blocks), "image embedding")
                    )
                )
        autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.encoder_bf16
            else nullcontext()
        )
        try:
            with torch.inference_mode():
                # input adapter (if any) and normalisation in fp32, outside autocast
                x = encoder_input(self.sam, x)
                with autocast:
                    emb = self.sam.image_encoder(x).float()
        finally:
            for h in handles:
                h.remove()
        from napari_samphase.core.sam.fast_decoder import LogitFrame

        self.original_size = rgb.shape[:2]
        self.input_size = resized.shape[:2]
        self.decoder.prepare(emb)
        self.frame = LogitFrame(
            tuple(self.decoder.low_res_size), self.img_size, self.input_size, self.original_size
        )
        self.embedding, self.image, self.key = emb, rgb, key

    def embedding_array(self) -> np.ndarray:
        """The current image embedding as a C x h x w float32 array (for features)."""
        self._require_image()
        return self.embedding[0].float().cpu().numpy()

    def _require_image(self) -> None:
        if self.embedding is None:
            raise InputError("no image set: call set_image() first")

    def to_model_coords(self, points_rc: np.ndarray) -> np.ndarray:
        """(row, col) image pixels -> SAM's (x, y) input coordinates (pixel centres)."""
        xy = np.asarray(points_rc, np.float64)[..., ::-1] + 0.5
        return self.transform.apply_coords(xy, self.original_size)

    # -- point and box prompts ---------------------------------------------------------
    def predict(self, points=None, labels=None, box=None) -> PromptResult:
        """Positive (label 1) and negative (label 0) clicks and/or a box -> one mask and
        its score.

        One click alone: the best of SAM's three outputs; anything more (several
        clicks, or a box) makes the prompt unambiguous: the single-mask output.

        Parameters
        ----------
        points : array-like, optional
            N x 2 (row, col) image pixels; may be empty or None when ``box`` is given.
        labels : array-like, optional
            One label per point (1 positive, 0 negative); None: all positive.
        box : array-like, optional
            ``(x0, y0, x1, y1)`` in image pixels as segment-anything's predictor takes
            it (x = column, y = row; pixel ``(r, c)`` spans ``[c, c + 1) x [r, r + 1)``).
            Clipped to the image.
        """
        self._require_image()
        torch = self._torch
        pts = np.zeros((0, 2)) if points is None else np.asarray(points, np.float64)
        pts = pts.reshape(-1, 2)
        if len(pts) == 0 and box is None:
            raise InputError("at least one point or a box is needed")
        lab = np.ones(len(pts), int) if labels is None else np.asarray(labels, int).ravel()
        if len(lab) != len(pts):
            raise InputError("one label per point is needed")
        h, w = self.original_size
        if (pts < 0).any() or (pts[:, 0] >= h).any() or (pts[:, 1] >= w).any():
            raise InputError("a point lies outside the image")
        dev = self.device
        point_prompt = None
        if len(pts):
            coords = self.to_model_coords(pts)
            point_prompt = (
                torch.as_tensor(coords[None], dtype=torch.float32, device=dev),
                torch.as_tensor(lab[None], dtype=torch.int64, device=dev),
            )
        box_prompt = None
        if box is not None:
            xyxy = self._check_box(box)
            box_prompt = torch.as_tensor(
                self.transform.apply_boxes(xyxy[None], self.original_size),
                dtype=torch.float32,
                device=dev,
            )
        with torch.inference_mode():
            # without a box, the prompt encoder appends SAM's padding point itself
            sparse, _ = self.sam.prompt_encoder(points=point_prompt, boxes=box_prompt, masks=None)
        iou, hyper, keys = self.decoder.transformer(sparse)
        iou = iou[0].float().cpu().numpy()
        ambiguous = len(pts) == 1 and box is None
        idx = int(np.argmax(iou[1:]) + 1) if ambiguous else 0
        low = self.decoder.upscale(keys, hyper[:, idx : idx + 1])
        mask = self.upsample(low)[0, 0] > self.sam.mask_threshold
        return PromptResult(mask.cpu().numpy(), float(iou[idx]), idx)

    def _check_box(self, box) -> np.ndarray:
        """``(x0, y0, x1, y1)`` clipped to the image; InputError when nothing is left."""
        xyxy = np.asarray(box, np.float64).ravel()
        if xyxy.shape != (4,) or not np.isfinite(xyxy).all():
            raise InputError("a box is four numbers: x0, y0, x1, y1")
        h, w = self.original_size
        xyxy = np.clip(xyxy, 0, [w, h, w, h])
        if not (xyxy[2] > xyxy[0] and xyxy[3] > xyxy[1]):
            raise InputError("the box is empty or lies outside the image (x0 < x1, y0 < y1)")
        return xyxy

    def upsample(self, low):
        """Low-res logits (B x M x h x w) -> image size, as SAM's ``postprocess_masks``."""
        self._require_image()
        return self.frame.upsample(low)

    # -- segment everything ------------------------------------------------------------
    def segment_everything(self, image=None, progress: ProgressCallback | None = None, **kw):
        """Whole-image instance masks; see :func:`amg.segment_everything`."""
        from napari_samphase.core.sam.amg import segment_everything

        if image is not None:
            self.set_image(image, progress=progress)
        self._require_image()
        return segment_everything(self, progress=progress, **kw)


__all__ = ["SamSession", "PromptResult", "Cancelled"]
