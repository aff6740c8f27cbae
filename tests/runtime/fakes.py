"""Fake models of known receptive radius for exact tiling tests (numpy only, bit-for-bit deterministic)."""

from __future__ import annotations

import numpy as np

from sr_runtime.backends.base import BackendBase


def _unshuffle(x: np.ndarray, m: int) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // m, m, w // m, m).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * m * m, h // m, w // m)


def _shuffle(x: np.ndarray, m: int) -> np.ndarray:
    n, cm, h, w = x.shape
    c = cm // (m * m)
    return x.reshape(n, c, m, m, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c, h * m, w * m)


class FakeModel:
    """``layers`` zero-padded 3x3 convs (depthwise + a neighbour-channel term, leaky ReLU) at 1/``m``
    resolution, then nearest x``scale`` with a sub-pixel pattern.

    Only elementwise float32 ufuncs in a fixed order, so every output pixel is computed identically
    whatever the array size: tiled and whole-image runs can be compared bit for bit.
    Receptive radius in input pixels: ``m * (layers + 1) - 1``.
    """

    def __init__(self, scale: int = 2, layers: int = 3, m: int = 1, channels: int = 3, seed: int = 0,
                 out_channels: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.scale, self.layers, self.m = scale, layers, m
        self.c = channels * m * m
        self.out_channels = out_channels or channels
        self.w = rng.uniform(-0.3, 0.3, (layers, self.c, 9)).astype(np.float32)
        self.w[:, :, 4] += 0.6
        self.b = rng.uniform(-0.05, 0.05, (layers, self.c)).astype(np.float32)
        self.pattern = rng.uniform(0.9, 1.1, (scale, scale)).astype(np.float32)
        self.calls: list[tuple[int, ...]] = []

    @property
    def radius(self) -> int:
        return self.m * (self.layers + 1) - 1

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(tuple(x.shape))
        x = x.astype(np.float32)
        if self.m > 1:
            x = _unshuffle(x, self.m)
        for k in range(self.layers):
            _, c, h, w = x.shape
            xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
            y = np.empty_like(x)
            for ch in range(c):
                acc = np.zeros_like(x[:, 0]) + self.b[k, ch]
                for t in range(9):
                    dy, dx = divmod(t, 3)
                    acc = acc + self.w[k, ch, t] * xp[:, ch, dy:dy + h, dx:dx + w]
                acc = acc + np.float32(0.2) * x[:, (ch + 1) % c]
                y[:, ch] = np.maximum(acc, np.float32(0.1) * acc)
            x = y
        if self.m > 1:
            x = _shuffle(x, self.m)
        x = x[:, : self.out_channels] if self.out_channels <= x.shape[1] else np.repeat(x[:, :1], self.out_channels, 1)
        s = self.scale
        up = np.repeat(np.repeat(x, s, axis=2), s, axis=3)
        return up * np.tile(self.pattern, (x.shape[2], x.shape[3]))


class FakeBackend(BackendBase):
    """A Backend over a numpy function: ``run`` and ``close``; the rest of the protocol from BackendBase, except
    ``max_shape`` (a TensorRT-like profile limit when given)."""

    max_shape = None

    def __init__(self, fn=None, scale: int = 2, radius: int = 0, size_multiple: int = 1,
                 precision: str = "float32", arch: str = "SRVGGNetCompact", hparams: dict | None = None,
                 max_shape: tuple[int, int, int, int] | None = None) -> None:
        from sr_runtime.info import ModelInfo

        self.max_shape = max_shape
        self.fn = fn if fn is not None else nearest(scale)
        self.info = ModelInfo(arch=arch, scale=scale, receptive_radius=radius, size_multiple=size_multiple,
                              precision=precision, hparams=hparams or {"num_feat": 8})
        self.provider = "FakeProvider"
        self.calls: list[tuple[int, ...]] = []
        self.closed = False

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(tuple(batch.shape))
        return np.asarray(self.fn(batch), np.float32)

    def close(self) -> None:
        self.closed = True


def nearest(scale: int):
    """Nearest-neighbour x``scale`` on NCHW (radius 0): the golden model whose output is known exactly."""

    def fn(x: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(x, scale, axis=2), scale, axis=3)

    return fn
