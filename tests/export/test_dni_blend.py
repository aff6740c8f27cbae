"""DNI: w*a + (1-w)*b per tensor; mismatches name the first key."""

from __future__ import annotations

import pytest
import torch

from sr_export.dni import interpolate
from sr_runtime.errors import ModelFileError
from sr_train.archs import REGISTRY


@pytest.mark.parametrize("arch_id", REGISTRY.ids())
@pytest.mark.parametrize("w", [0.0, 0.3, 1.0])
def test_blend_values(arch_id, w, tiny_generator):
    a = tiny_generator(arch_id).state_dict()
    b = {k: v * 2 + 1 for k, v in a.items()}
    out = interpolate(a, b, w)
    assert list(out) == list(a)
    for k in a:
        torch.testing.assert_close(out[k], w * a[k] + (1 - w) * b[k], rtol=0, atol=1e-6)


def test_mismatches_name_first_key(tiny_generator):
    a = tiny_generator("SRVGGNetCompact").state_dict()
    b = dict(a)
    b["body.2.weight"] = torch.zeros(1, 1, 3, 3)
    with pytest.raises(ModelFileError, match=r"'body\.2\.weight' has shape"):
        interpolate(a, b, 0.5)
    other = tiny_generator("RRDBNet").state_dict()
    with pytest.raises(ModelFileError, match=r"key 'body\.0\.weight' of the first model is missing"):
        interpolate(a, other, 0.5)
    with pytest.raises(ModelFileError, match="outside"):
        interpolate(a, a, 1.5)
