"""SAM architectures by name, built with random weights from segment-anything's classes."""

from __future__ import annotations

from functools import partial


def _build_official(kind: str):
    from segment_anything import sam_model_registry

    return sam_model_registry[kind]()


def build_demo_sam():
    """Small SAM architecture (img_size 256, patch 16) from segment-anything's classes."""
    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    img_size, patch, dim = 256, 16, 128
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=patch,
            embed_dim=96,
            depth=4,
            num_heads=4,
            mlp_ratio=3,
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=0,
            global_attn_indexes=(),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(img_size // patch, img_size // patch),
            input_image_size=(img_size, img_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=512, num_heads=4),
            transformer_dim=dim,
            iou_head_depth=3,
            iou_head_hidden_dim=128,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()
