"""The CLIP encoder: the only package that imports torch and open_clip."""

from service.encoder.clip import ClipEncoder, load_encoder

__all__ = ["ClipEncoder", "load_encoder"]
