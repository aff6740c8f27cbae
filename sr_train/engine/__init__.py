"""Training engine: the Trainer loop and the per-stage steps (RealESRNet, RealESRGAN). No side-effect imports."""

from __future__ import annotations
