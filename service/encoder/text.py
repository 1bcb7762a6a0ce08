"""Text encoding over the real tokens only: the one implementation the CLIP wrapper and loupe-tiny share."""

from __future__ import annotations

from typing import Any

import open_clip
import torch


def can_trim(model: Any) -> bool:
    """Only the standard CLIP text tower with a causal mask and EOT pooling trims exactly."""
    return (
        isinstance(model, open_clip.CLIP)
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", "argmax") in ("argmax", "eos")
    )


def trim(tokens: torch.Tensor) -> torch.Tensor:
    """Drop the columns after the longest row's end-of-text token.

    With a causal mask, position i attends to positions <= i, so the end-of-text
    token's features do not depend on the padding after it.
    """
    length = int((tokens != 0).sum(dim=1).max().item())
    # argmax finds the end-of-text token (the largest id), which a row's count of non-zero ids
    # could miss if a real token were ever id 0.
    length = max(length, int(tokens.argmax(dim=-1).max().item()) + 1)
    return tokens[:, :length]


def encode_trimmed(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """`model.encode_text(tokens)` (unnormalised) computed over the real tokens only.

    The same vectors as the padded tower at a fraction of the cost: a short query
    runs a handful of positions instead of the full context of 77.
    """
    text = trim(tokens)
    n = text.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(text).to(cast_dtype)
    x = x + model.positional_embedding[:n].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = model.ln_final(x)
    x = open_clip.transformer.text_global_pool(
        x, text, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None)
    )
    if model.text_projection is not None:
        if isinstance(model.text_projection, torch.nn.Linear):
            x = model.text_projection(x)
        else:
            x = x @ model.text_projection
    return x


def encode_text(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """`model.encode_text(tokens, normalize=True)`, trimmed where that is exact."""
    feats = encode_trimmed(model, tokens) if can_trim(model) else model.encode_text(tokens)
    return torch.nn.functional.normalize(feats, dim=-1)
