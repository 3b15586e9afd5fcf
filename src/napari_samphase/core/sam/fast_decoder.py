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

    @torch.inference_mode()
    def upscale(self, keys: torch.Tensor, hyper_in: torch.Tensor, chunk: int = 16):
        """Low-res mask logits (B x M x 4h x 4w) for the prompts given."""
        h, w = self.hw
        outs = []
        for s in range(0, keys.shape[0], chunk):
            k = keys[s : s + chunk]
            up = self.dec.output_upscaling(k.transpose(1, 2).reshape(k.shape[0], -1, h, w))
            hi = hyper_in[s : s + chunk]
            outs.append((hi @ up.flatten(2)).view(k.shape[0], hi.shape[1], *up.shape[-2:]))
        return torch.cat(outs) if outs else keys.new_zeros((0, hyper_in.shape[1], 4 * h, 4 * w))

    def sparse(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Prompt-encoder tokens for points in model-input (x, y) coordinates, B x N x 2.

        With no box, the prompt encoder appends SAM's padding point itself."""
        with torch.inference_mode():
            sparse, _ = self.sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        return sparse


def upsample_logits(low: torch.Tensor, input_size, original_size, img_size: int) -> torch.Tensor:
    """Low-res logits (B x M x h x w) -> original image size, cropping SAM's padding."""
    scale = low.shape[-1] / img_size
    ch, cw = round(input_size[0] * scale), round(input_size[1] * scale)
    low = low[..., :ch, :cw]
    return F.interpolate(low, size=tuple(original_size), mode="bilinear", align_corners=False)
