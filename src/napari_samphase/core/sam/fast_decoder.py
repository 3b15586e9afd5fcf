"""SAM's mask decoder, reorganised so a prompt never re-projects the image.

The stock decoder repeats the 64x64 image embedding for every prompt and runs
full linear projections over all 4,096 image tokens in every attention. Two
exact rewrites remove most of that work:

* Layer 0 sees the same image tokens for every prompt (no mask input), so its
  image-side projections are computed once per image (:meth:`prepare`).
* In every other attention one side holds only ~7 prompt tokens. By
  associativity, ``(X Wk^T) q^T == X (Wk^T q^T)`` and ``A (X Wv^T) == (A X) Wv^T``,
  so the projection matrices are applied to the few tokens instead of the image.

The result equals the stock decoder up to float rounding (tests check this).
IoU predictions come out of the transformer alone, so callers can drop prompts
before paying for the upscaling (:meth:`upscale`), which is per prompt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.view(b, n, h, c // h).transpose(1, 2)  # B, h, N, d


def _weights(linear: torch.nn.Linear, h: int):
    out_f, in_f = linear.weight.shape
    return linear.weight.view(h, out_f // h, in_f), linear.bias.view(h, out_f // h)


def tokens_to_image(attn, q_tok, img, pe, k_proj=None, v_proj=None):
    """Tokens (B,T,C) attend to the image: keys ``img + pe``, values ``img``.

    img: (B or 1, HW, C), pe: (1, HW, C); ``img + pe`` is never materialised.
    ``k_proj``/``v_proj``: image projections computed once (1, HW, internal), if shared.
    """
    h = attn.num_heads
    q = _heads(attn.q_proj(q_tok), h)  # B, h, T, d
    b, _, t, d = q.shape
    q = q / math.sqrt(d)  # scale the few tokens, not the B x T x HW scores
    if k_proj is not None:
        scores = q @ _heads(k_proj, h).transpose(-1, -2)  # B, h, T, HW
    else:
        wk, _ = _weights(attn.k_proj, h)  # h, d, C; the key bias is constant per row of
        qk = torch.einsum("bhtd,hdc->bhtc", q, wk).flatten(1, 2)  # the softmax: dropped
        scores = torch.baddbmm(qk @ pe.transpose(-1, -2), qk, img.transpose(-1, -2))
        scores = scores.view(b, h, t, -1)
    a = torch.softmax(scores, dim=-1)
    if v_proj is not None:
        out = a @ _heads(v_proj, h)  # B, h, T, d
    else:
        wv, bv = _weights(attn.v_proj, h)
        ax = (a.flatten(1, 2) @ img).view(b, h, t, -1)  # B, h, T, C
        out = torch.einsum("bhtc,hdc->bhtd", ax, wv) + bv[None, :, None, :]
    return attn.out_proj(out.transpose(1, 2).reshape(b, t, h * d))


def image_to_tokens(attn, img, pe, tok_k, tok_v, q_proj=None):
    """The image attends to the tokens (B,T,C): queries ``img + pe``.

    Returns ``img + attention output`` (B, HW, C), the residual sum, in one pass.
    """
    h = attn.num_heads
    k = _heads(attn.k_proj(tok_k), h)  # B, h, T, d
    v = _heads(attn.v_proj(tok_v), h)
    b, _, t, d = k.shape
    k = k / math.sqrt(d)
    if q_proj is not None:
        scores = torch.einsum("nhd,bhtd->bnht", _heads(q_proj, h)[0].transpose(0, 1), k)
        scores = scores.flatten(2)
    else:
        wq, bq = _weights(attn.q_proj, h)  # h, d, C
        m = torch.einsum("hdc,bhtd->bcht", wq, k).flatten(2)  # B, C, h*T
        bias = torch.einsum("hd,bhtd->bht", bq, k).flatten(1)  # B, h*T
        scores = torch.baddbmm(pe @ m + bias[:, None, :], img.expand(b, -1, -1), m)
    a = torch.softmax(scores.view(b, -1, h, t), dim=-1).flatten(2)  # B, HW, h*T
    wo = attn.out_proj.weight  # C, h*d
    vw = torch.einsum("bhtd,chd->bhtc", v, wo.view(wo.shape[0], h, d)).flatten(1, 2)
    # Each head's weights sum to 1, so adding bias/h to every row of vw adds the bias.
    vw = vw + attn.out_proj.bias / h
    return torch.baddbmm(img.expand(b, -1, -1), a, vw)


class FastDecoder:
    """Decodes many point prompts against one image embedding."""

    def __init__(self, sam) -> None:
        self.sam = sam
        self.dec = sam.mask_decoder
        self.tf = sam.mask_decoder.transformer

    @torch.inference_mode()
    def prepare(self, embedding: torch.Tensor) -> None:
        """Per-image work shared by all prompts. ``embedding``: (1, C, h, w)."""
        _, c, h, w = embedding.shape
        self.hw = (h, w)
        dense = self.sam.prompt_encoder.no_mask_embed.weight.reshape(1, c, 1, 1)
        self.src = (embedding + dense).flatten(2).transpose(1, 2)  # 1, HW, C
        self.pe = self.sam.prompt_encoder.get_dense_pe().flatten(2).transpose(1, 2)
        layer0 = self.tf.layers[0]
        src_pe = self.src + self.pe
        self.k0 = layer0.cross_attn_token_to_image.k_proj(src_pe)
        self.v0 = layer0.cross_attn_token_to_image.v_proj(self.src)
        self.q0 = layer0.cross_attn_image_to_token.q_proj(src_pe)

    @torch.inference_mode()
    def transformer(self, sparse: torch.Tensor):
        """Two-way transformer for B prompts -> (iou_pred B x 4, hyper_in B x 4 x c', keys)."""
        dec = self.dec
        out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.expand(sparse.shape[0], -1, -1), sparse], dim=1)
        queries, keys, qpe = tokens, self.src, tokens
        for i, layer in enumerate(self.tf.layers):
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(q=queries, k=queries, v=queries)
            else:
                q = queries + qpe
                queries = queries + layer.self_attn(q=q, k=q, v=queries)
            queries = layer.norm1(queries)
            shared = i == 0  # layer 0's image side is the same for every prompt
            queries = queries + tokens_to_image(
                layer.cross_attn_token_to_image,
                queries + qpe,
                keys,
                self.pe,
                k_proj=self.k0 if shared else None,
                v_proj=self.v0 if shared else None,
            )
            queries = layer.norm2(queries)
            queries = layer.norm3(queries + layer.mlp(queries))
            keys = layer.norm4(
                image_to_tokens(
                    layer.cross_attn_image_to_token,
                    keys,
                    self.pe,
                    queries + qpe,
                    queries,
                    q_proj=self.q0 if shared else None,
                )
            )
        queries = queries + tokens_to_image(
            self.tf.final_attn_token_to_image, queries + qpe, keys, self.pe
        )
        queries = self.tf.norm_final_attn(queries)
        iou_pred = dec.iou_prediction_head(queries[:, 0])
        hyper_in = torch.stack(
            [mlp(queries[:, 1 + j]) for j, mlp in enumerate(dec.output_hypernetworks_mlps)], 1
        )
        return iou_pred, hyper_in, keys

    @property
    def low_res_size(self) -> tuple[int, int]:
        """Size of the low-res mask logits (two stride-2 upscaling layers)."""
        h, w = self.hw
        return 4 * h, 4 * w

    @torch.inference_mode()
    def upscale(self, keys: torch.Tensor, hyper_in: torch.Tensor, chunk: int = 16):
        """Low-res mask logits (B x M x 4h x 4w) for the prompts given."""
        h, w = self.hw
        outs = []
        for s in range(0, keys.shape[0], chunk):
            k, hi = keys[s : s + chunk], hyper_in[s : s + chunk]
            if self._gemm is not None:
                outs.append(self._upscale_gemm(k, hi))
                continue
            up = self.dec.output_upscaling(k.transpose(1, 2).reshape(k.shape[0], -1, h, w))
            outs.append((hi @ up.flatten(2)).view(k.shape[0], hi.shape[1], *up.shape[-2:]))
        return torch.cat(outs) if outs else keys.new_zeros((0, hyper_in.shape[1], 4 * h, 4 * w))

    @cached_property
    def _gemm(self):
        """SAM's upscaling (2x2 stride-2 transposed conv, LayerNorm2d, activation, again
        2x2 stride-2, activation) as matrices: each token's 4x4 output pixels depend on
        that token only, so it runs as two matrix products on the tokens as they are
        (no transpose to an image, no per-pixel LayerNorm2d arithmetic). None for
        another layout (the module is used as it is)."""
        seq = list(self.dec.output_upscaling)
        kinds = [type(m).__name__ for m in seq]
        if kinds[0::3] != ["ConvTranspose2d", "ConvTranspose2d"] or kinds[1] != "LayerNorm2d":
            return None
        c1, norm, act1, c2, act2 = seq
        if any(
            c.kernel_size != (2, 2) or c.stride != (2, 2) or c.padding != (0, 0) for c in (c1, c2)
        ):
            return None
        # (in, out, dy, dx) -> (in, dy * dx * out): one column per output sub-pixel channel
        w1 = c1.weight.detach().permute(0, 2, 3, 1).reshape(c1.in_channels, -1)
        w2 = c2.weight.detach().permute(0, 2, 3, 1).reshape(c2.in_channels, -1)
        return w1, c1.bias.detach().repeat(4), norm, act1, w2, c2.bias.detach().repeat(4), act2

    def _upscale_gemm(self, keys: torch.Tensor, hyper_in: torch.Tensor) -> torch.Tensor:
        w1, b1, norm, act1, w2, b2, act2 = self._gemm
        b, (h, w), m = keys.shape[0], self.hw, hyper_in.shape[1]
        x = torch.addmm(b1, keys.reshape(-1, keys.shape[-1]), w1).view(-1, norm.weight.numel())
        x = act1(F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, norm.eps))
        x = act2(torch.addmm(b2, x, w2)).view(b, -1, w2.shape[1] // 4)
        out = x @ hyper_in.transpose(1, 2)  # B x (y, x, dy1, dx1, dy2, dx2) x M
        out = out.view(b, h, w, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return out.reshape(b, m, 4 * h, 4 * w)

    def sparse(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Prompt-encoder tokens for points in model-input (x, y) coordinates, B x N x 2.

        With no box, the prompt encoder appends SAM's padding point itself."""
        with torch.inference_mode():
            sparse, _ = self.sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        return sparse


@dataclass(frozen=True)
class LogitFrame:
    """Where the decoder's low-res logits lie in the image.

    SAM's ``postprocess_masks`` maps them in three steps: bilinear from the low-res
    grid to the square model input (``img_size``), crop the padding down to the
    resized image (``input_size``), bilinear to the image (``original_size``). Every
    image-size logit here is computed that way; :attr:`crop` is the one place that
    says which low-res rows and columns are not padding.
    """

    low_size: tuple[int, int]  # decoder output, e.g. 256 x 256 for SAM
    img_size: int  # square model input, e.g. 1024
    input_size: tuple[int, int]  # the resized image inside it (the rest is padding)
    original_size: tuple[int, int]  # the image

    @property
    def up(self) -> float:
        """Low-res -> model input scale (4 for SAM)."""
        return self.img_size / self.low_size[0]

    @cached_property
    def crop(self) -> tuple[int, int]:
        """Low-res rows and columns the unpadded input frame reads (including the
        neighbours its bilinear interpolation uses); the rest is padding."""
        return tuple(
            min(int(np.floor(max((n_in - 0.5) / self.up - 0.5, 0.0))) + 2, n_low)
            for n_in, n_low in zip(self.input_size, self.low_size, strict=True)
        )

    def upsample(self, low: torch.Tensor) -> torch.Tensor:
        """Low-res logits (B x M x h x w) -> image size, as ``postprocess_masks`` (the
        same numbers; the padding is cropped before upsampling, not after)."""
        (ch, cw), (ih, iw) = self.crop, self.input_size
        up = round(self.up)
        x = low[..., :ch, :cw]
        x = F.interpolate(x, size=(ch * up, cw * up), mode="bilinear", align_corners=False)
        x = x[..., :ih, :iw]
        size = tuple(self.original_size)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    @cached_property
    def reads(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Per image axis: the first and the last low-res index each position reads
        (both non-decreasing)."""
        out = []
        for first, weights in self.taps:
            last = first + 2 - np.argmax(weights[:, ::-1] > 0, axis=1)
            out.append((first, np.maximum.accumulate(last)))
        return out[0], out[1]

    @cached_property
    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """Per image axis (rows, cols): the two bilinear steps as one matrix, image
        positions x low-res positions (float32); image logits = Mr @ low @ Mc.T."""
        out = []
        for first, weights in self.taps:
            n, n_crop = len(first), self.crop[len(out)]
            m = np.zeros((n, n_crop + 2), np.float32)  # two spare columns: zero taps
            m[np.arange(n)[:, None], first[:, None] + np.arange(3)] = weights
            out.append(np.ascontiguousarray(m[:, :n_crop]))
        return out[0], out[1]

    @cached_property
    def taps(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Per image axis (rows, cols): the two bilinear steps composed into one 1D
        interpolation, as (first low-res index (n,), weights (n, 3)): image index i
        reads low-res indices first[i] .. first[i] + 2."""
        return tuple(
            _composed_taps(n, n_in, n_crop, self.up)
            for n, n_in, n_crop in zip(self.original_size, self.input_size, self.crop, strict=True)
        )


def _linear_taps(n_out: int, n_in: int, scale: float):
    """1D bilinear (``align_corners=False``) from ``n_in`` to ``n_out`` samples, with
    source step ``scale``: (lower index, upper index, upper weight) per output."""
    src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
    lo = np.floor(src).astype(np.int64)
    lo = np.minimum(lo, n_in - 1)
    return lo, np.minimum(lo + 1, n_in - 1), src - lo


def _composed_taps(n: int, n_in: int, n_crop: int, up: float):
    """Image axis (n) <- input frame (n_in) <- low-res (n_crop rows read)."""
    a0, a1, wa = _linear_taps(n, n_in, n_in / n)  # step 2: image <- input frame
    b0, b1, wb = _linear_taps(n_in, n_crop, 1 / up)  # step 1: input frame <- low-res
    dense = np.zeros((n, n_crop + 2))
    rows = np.arange(n)
    for a, w in ((a0, 1 - wa), (a1, wa)):
        np.add.at(dense, (rows, b0[a]), w * (1 - wb[a]))
        np.add.at(dense, (rows, b1[a]), w * wb[a])
    first = b0[a0]
    weights = dense[rows[:, None], first[:, None] + np.arange(3)]
    # adjacent input samples read at most three low-res samples: nothing is left out
    assert np.allclose(weights.sum(1), 1.0)
    return first, weights.astype(np.float32)


def upsample_logits(low: torch.Tensor, input_size, original_size, img_size: int) -> torch.Tensor:
    """Low-res logits (B x M x h x w) -> original image size (see :class:`LogitFrame`)."""
    return LogitFrame(tuple(low.shape[-2:]), img_size, input_size, original_size).upsample(low)
