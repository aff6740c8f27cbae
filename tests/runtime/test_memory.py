"""--tile auto sizing and --max-memory parsing."""

from __future__ import annotations

import pytest

from sr_runtime.errors import SrError
from sr_runtime.info import ModelInfo
from sr_runtime.memory import auto_tile, bytes_per_pixel, parse_memory

SRVGG = ModelInfo("SRVGGNetCompact", 4, hparams={"num_feat": 64, "num_conv": 16})
RRDB_X1 = ModelInfo("RRDBNet", 1, hparams={"num_feat": 64}, size_multiple=4)


def test_parse_memory():
    assert parse_memory("4G") == 4 << 30
    assert parse_memory("512m") == 512 << 20
    assert parse_memory("1.5GiB") == int(1.5 * (1 << 30))
    assert parse_memory("1000") == 1000
    for bad in ("", "-1G", "lots", "0"):
        with pytest.raises(SrError):
            parse_memory(bad)


def test_bytes_per_pixel_scales_with_arch():
    rrdb4 = ModelInfo("RRDBNet", 4, hparams={"num_feat": 64})
    assert bytes_per_pixel(rrdb4) > 8 * bytes_per_pixel(SRVGG)
    assert bytes_per_pixel(SRVGG.replace(precision="float16")) < bytes_per_pixel(SRVGG)


def test_auto_tile():
    bpp = bytes_per_pixel(SRVGG)
    assert auto_tile(SRVGG, 100, 100, pad=10, budget=int(100 * 100 * bpp)) == 0  # whole image fits
    t = auto_tile(SRVGG, 4000, 3000, pad=10, batch=2, budget=256 << 20)
    assert t % 16 == 0 and 2 * (t + 20) ** 2 * bpp <= 256 << 20 < 2 * (t + 36) ** 2 * bpp
    assert auto_tile(SRVGG, 4000, 3000, pad=10, batch=1, budget=1) == 32  # floor
    assert auto_tile(SRVGG, 4000, 3000, pad=10, budget=1 << 40, max_tile=300) <= 300
    assert auto_tile(RRDB_X1, 4000, 3000, pad=10, budget=64 << 20) % 16 == 0
    smaller = auto_tile(SRVGG, 4000, 3000, pad=10, batch=4, budget=256 << 20)
    assert smaller < t
