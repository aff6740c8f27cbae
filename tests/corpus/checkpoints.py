"""Checkpoint cases for ``sr-export`` (and ``sr-train``'s pretrained weights): hostile pickles, lying safetensors.

A hostile pickle would create ``extra["marker"]`` when unpickled without ``weights_only`` (proved once by hand,
never in the tests); the tests assert the marker never appears. The zip form is torch's own archive with its
``data.pkl`` swapped, so it takes the same path as a real ``torch.save`` file.
"""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

from tests.corpus import Case

REFUSED = r"refused: the file holds pickled Python objects"


class _Payload:
    """Unpickles into a call of ``exec`` that writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.code = f"open({str(marker)!r}, 'w').write('pwned')"

    def __reduce__(self):
        return (exec, (self.code,))


def hostile_pickle(marker: Path) -> bytes:
    """A pickle (protocol 2) of ``{"params": <payload>}``."""
    return pickle.dumps({"params": _Payload(marker)}, protocol=2)


def hostile_torch_zip(marker: Path) -> bytes:
    """torch's zip archive of an empty state dict with ``data.pkl`` replaced by :func:`hostile_pickle`."""
    import torch

    buf = io.BytesIO()
    torch.save({"params": {}}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = hostile_pickle(marker) if item.filename.endswith("/data.pkl") else src.read(item)
            dst.writestr(item, data)
    return out.getvalue()


def safetensors_bytes(header: dict | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors file: 8-byte little-endian header length (``length`` may lie), the header, the data."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(head) if length is None else length) + head + data


def _safetensors_cases(d: Path) -> list[Case]:
    f32 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    lies = {
        "header length 2^60": safetensors_bytes({"w": f32}, b"\0" * 16, length=1 << 60),
        "header length past the end": safetensors_bytes({"w": f32}, b"\0" * 16, length=10_000),
        "offsets past the end": safetensors_bytes({"w": {**f32, "data_offsets": [0, 1 << 40]}}, b"\0" * 16),
        "shape bigger than its bytes": safetensors_bytes({"w": {**f32, "shape": [1 << 20, 1 << 20]}}, b"\0" * 16),
        "overlapping tensors": safetensors_bytes({"a": f32, "b": {**f32, "data_offsets": [8, 24]}}, b"\0" * 24),
        "header not JSON": safetensors_bytes(b"{not json at all", b""),
        "unknown dtype": safetensors_bytes({"w": {**f32, "dtype": "Q99"}}, b"\0" * 16),
    }
    cases = []
    for i, (name, data) in enumerate(lies.items()):
        p = d / f"lie{i}.safetensors"
        p.write_bytes(data)
        cases.append(Case(f"safetensors: {name}", "checkpoint", p, "error", r"not a valid safetensors file",
                          what=name))
    return cases


def build(d: Path) -> list[Case]:
    """Write the checkpoint cases into ``d`` (the zip pickle only where torch is installed)."""
    d.mkdir(parents=True, exist_ok=True)
    cases = []
    marker = d / "PWNED"
    (d / "payload_raw.pth").write_bytes(hostile_pickle(marker))
    (d / "payload_raw.ckpt").write_bytes(hostile_pickle(marker))
    for name in ("payload_raw.pth", "payload_raw.ckpt"):
        cases.append(Case(f"pickle payload ({Path(name).suffix})", "checkpoint", d / name, "error", REFUSED,
                          what="legacy pickle calling exec() on load", extra={"marker": marker}))
    if importlib.util.find_spec("torch") is not None:
        (d / "payload_zip.pth").write_bytes(hostile_torch_zip(marker))
        cases.append(Case("pickle payload (torch zip)", "checkpoint", d / "payload_zip.pth", "error", REFUSED,
                          what="torch.save archive whose data.pkl calls exec()", extra={"marker": marker}))
    cases += _safetensors_cases(d)
    (d / "empty.pth").write_bytes(b"")
    cases.append(Case("zero-byte .pth", "checkpoint", d / "empty.pth", "error", r"empty", what="0 bytes"))
    (d / "text.pth").write_text("hello\n")
    cases.append(Case("text as .pth", "checkpoint", d / "text.pth", "error", r"not a PyTorch checkpoint",
                      what="a text file named .pth"))
    if importlib.util.find_spec("torch") is not None:
        import torch

        buf = io.BytesIO()
        torch.save({"params": {"conv.weight": torch.zeros(4, 3, 3, 3)}}, buf)
        (d / "truncated.pth").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        cases.append(Case("truncated .pth", "checkpoint", d / "truncated.pth", "error", r"truncated or corrupt",
                          what="torch zip cut in half"))
        (d / "unknown_arch.pth").write_bytes(buf.getvalue())
        cases.append(Case("unknown architecture", "checkpoint", d / "unknown_arch.pth", "error",
                          r"(architecture|arch)", what="a state dict no registered arch matches"))
    return cases
