"""int8 export: calibration images -> quantized generator -> QDQ ONNX, refused below a measured quality.

``sr-export MODEL.pth --int8 --calib FOLDER`` runs :func:`export_int8` (the pipeline's ``int8`` stage):

1. :func:`read_calibration` cuts deterministic crops from the images of FOLDER (model inputs, like the images
   to be upscaled) and holds out every fifth image for the quality check.
2. :func:`sr_train.quant.quantize` equalizes channels, calibrates activation ranges and corrects biases on the
   calibration crops (post-training quantization); a checkpoint written by the ``qat`` config of sr-train
   carries its learned ranges (:func:`sr_train.qat.read_int8_entry`) and is only read.
3. The float model (equalized, biases corrected) is exported as usual and :func:`insert_qdq` puts
   ``QuantizeLinear``/``DequantizeLinear`` pairs in front of every quantized ``Conv``: the input per tensor
   (uint8), the weight per output channel (int8 initializer, symmetric). The file is exactly the fake-quant
   model of :mod:`sr_train.quant` (same grid, same ranges), opset >= 13.
4. :func:`measure` runs the file through sr_runtime's ONNX Runtime backend on the held-out crops and compares
   the 8-bit outputs with the float model's; below ``min_psnr`` nothing is written.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sr_export.errors import ParityError
from sr_runtime.compare import ParityReport, Tol, compare
from sr_runtime.errors import SrError
from sr_runtime.image import IMAGE_SUFFIXES, read_image

Say = Callable[[str], None]

MIN_IMAGES = 5
"""Fewest calibration images: four to calibrate on and one held out for the quality check."""
CROP = 64
"""Side of a calibration crop in input pixels (larger than any receptive radius of the registry's defaults)."""
CROPS_PER_IMAGE = 4
MAX_CALIB_CROPS = 32
"""At most this many crops calibrate (more cost time and barely move the ranges, docs/int8.md)."""
HELDOUT_EVERY = 5
DEFAULT_MIN_PSNR = 40.0
"""The quality gate: PSNR of the int8 output against the float output on held-out crops (8-bit, dB)."""


# ---------------------------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class CalibrationSet:
    """Crops for calibration and for the quality check, float32 ``(1, C, h, w)`` in [0, 1]."""

    calib: list[np.ndarray]
    heldout: list[np.ndarray]
    summary: dict[str, Any]
    """Folder name, image and crop counts, crop size (the ONNX metadata's ``int8.calibration``)."""


def _image_files(folder: Path) -> list[Path]:
    if not folder.exists():
        raise SrError("calibration folder not found", "Pass --calib FOLDER with images like those you will "
                      "upscale.", folder)
    if not folder.is_dir():
        raise SrError("--calib must be a folder of images, not a file", "Pass the folder that holds it.", folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SrError(f"the calibration folder has no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...)",
                      f"Put at least {MIN_IMAGES} images like those you will upscale in it.", folder)
    if len(files) < MIN_IMAGES:
        raise SrError(f"the calibration set is too small: {len(files)} image(s), int8 needs at least {MIN_IMAGES} "
                      "(one in five is held out to measure the quality)",
                      "Add images like those you will upscale (tens of them calibrate better).", folder)
    return files


def _as_model_input(pixels: np.ndarray, channels: int) -> np.ndarray:
    """OpenCV pixels (gray/BGR/BGRA, uint8/uint16) -> float32 ``(channels, h, w)`` RGB in [0, 1]."""
    scale = 65535.0 if pixels.dtype == np.uint16 else 255.0
    img = pixels.astype(np.float32) / scale
    if img.ndim == 2:
        img = img[..., None]
    img = img[..., :3] if img.shape[2] >= 3 else img[..., :1]
    if channels == 1:
        img = img.mean(axis=2, keepdims=True) if img.shape[2] == 3 else img
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    else:
        img = img[..., ::-1]
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def _crops(img: np.ndarray, n: int, crop: int, multiple: int, rng: np.random.Generator) -> list[np.ndarray]:
    c, h, w = img.shape
    ch, cw = min(crop, h - h % multiple), min(crop, w - w % multiple)
    if ch < multiple or cw < multiple:
        return []
    out = []
    for _ in range(n if (h > ch or w > cw) else 1):
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out.append(np.ascontiguousarray(img[None, :, y:y + ch, x:x + cw]))
    return out


def read_calibration(folder: str | Path, channels: int = 3, size_multiple: int = 1, *, crop: int = CROP,
                     per_image: int = CROPS_PER_IMAGE, max_crops: int = MAX_CALIB_CROPS,
                     seed: int = 0) -> CalibrationSet:
    """Read the images of ``folder`` and cut calibration and held-out crops (held out: every fifth image).

    Raises:
        SrError: the folder is missing, not a folder, has no images or fewer than :data:`MIN_IMAGES`.
        ImageError: an image cannot be read (names the file).
    """
    folder = Path(folder)
    files = _image_files(folder)
    rng = np.random.default_rng(seed)
    calib: list[np.ndarray] = []
    held: list[np.ndarray] = []
    n_held = 0
    for i, f in enumerate(files):
        img = _as_model_input(read_image(f).pixels, channels)
        is_held = i % HELDOUT_EVERY == HELDOUT_EVERY - 1
        n_held += is_held
        (held if is_held else calib).extend(_crops(img, per_image, crop, size_multiple, rng))
    if len(calib) > max_crops:
        calib = [calib[int(i)] for i in np.linspace(0, len(calib) - 1, max_crops)]
    summary = {"folder": folder.name, "images": len(files), "heldout_images": n_held, "calib_crops": len(calib),
               "heldout_crops": len(held), "crop": crop, "seed": seed}
    return CalibrationSet(calib, held, summary)


# ---------------------------------------------------------------------------------------------- QDQ graph
def _const(name: str, array: np.ndarray) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(array, name)


def insert_qdq(proto: Any, convs: dict[str, dict[str, Any]]) -> int:
    """Quantize the ``Conv`` nodes whose weight initializer is ``<name>.weight`` for a name in ``convs`` (in place).

    Each gets ``QuantizeLinear -> DequantizeLinear`` on its input (``convs[name]["scale"]``, ``["zero_point"]``,
    uint8) and its weight replaced by an int8 initializer with a per-output-channel ``DequantizeLinear``
    (``axis=0``, symmetric scale ``max|w| / 127``, as :func:`sr_train.quant.quantize_weight`).

    Returns:
        The number of convs quantized.
    """
    from onnx import helper, numpy_helper

    from sr_train.quant import QMAX_W, QMIN_W, W_LEVELS

    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    new_nodes = []
    done = 0
    for node in graph.node:
        name = node.input[1].removesuffix(".weight") if node.op_type == "Conv" and len(node.input) > 1 else ""
        q = convs.get(name)
        if q is None or node.input[1] not in inits:
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        scale = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(axis=1) / W_LEVELS, 1e-12).astype(np.float32)
        wq = np.clip(np.round(w / scale[:, None, None, None]), QMIN_W, QMAX_W).astype(np.int8)
        graph.initializer.remove(inits[node.input[1]])
        graph.initializer.extend([
            _const(f"{name}.weight_quantized", wq), _const(f"{name}.weight_scale", scale),
            _const(f"{name}.weight_zero_point", np.zeros(w.shape[0], np.int8)),
            _const(f"{name}.input_scale", np.array(q["scale"], np.float32)),
            _const(f"{name}.input_zero_point", np.array(q["zero_point"], np.uint8)),
        ])
        x = node.input[0]
        new_nodes += [
            helper.make_node("QuantizeLinear", [x, f"{name}.input_scale", f"{name}.input_zero_point"],
                             [f"{name}.input_q"], name=f"{name}/input/QuantizeLinear"),
            helper.make_node("DequantizeLinear", [f"{name}.input_q", f"{name}.input_scale",
                                                  f"{name}.input_zero_point"], [f"{name}.input_dq"],
                             name=f"{name}/input/DequantizeLinear"),
            helper.make_node("DequantizeLinear", [f"{name}.weight_quantized", f"{name}.weight_scale",
                                                  f"{name}.weight_zero_point"], [f"{name}.weight_dq"],
                             name=f"{name}/weight/DequantizeLinear", axis=0),
        ]
        node.input[0], node.input[1] = f"{name}.input_dq", f"{name}.weight_dq"
        new_nodes.append(node)
        done += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    return done


# ---------------------------------------------------------------------------------------------- quality
def _to_8bit(y: np.ndarray) -> np.ndarray:
    return np.round(np.clip(y, 0.0, 1.0) * 255.0) / 255.0


def measure(reference: Any, onnx_path: Path, crops: Sequence[np.ndarray], min_psnr: float | None,
            threads: int | None = None) -> ParityReport:
    """PSNR of the ONNX's 8-bit output against the float model's on ``crops`` (pooled over all of them).

    The file runs through :class:`~sr_runtime.backends.ort.OrtBackend`, as sr-run runs it.
    """
    import torch

    from sr_runtime.backends.ort import OrtBackend

    outs, refs = [], []
    with OrtBackend(onnx_path, device="cpu", threads=threads) as backend, torch.no_grad():
        for x in crops:
            outs.append(_to_8bit(backend.run(x)).ravel())
            refs.append(_to_8bit(reference(torch.from_numpy(x)).numpy()).ravel())
    tol = None if min_psnr is None else Tol(max_abs=1.0, min_psnr=min_psnr)
    return compare(f"int8 vs float, {len(crops)} held-out crops (8-bit)", np.concatenate(outs),
                   np.concatenate(refs), tol)


def quality_dict(r: ParityReport) -> dict[str, Any]:
    """The report as the ONNX metadata's ``int8.quality`` (8-bit levels, dB)."""
    return {"psnr_db": round(r.psnr, 3) if math.isfinite(r.psnr) else None, "what": r.name,
            "max_abs_levels": round(r.max_abs * 255), "mean_abs_levels": round(r.mean_abs * 255, 3)}


# ---------------------------------------------------------------------------------------------- the stage
@dataclass(frozen=True)
class Int8Result:
    """What :func:`export_int8` wrote and measured."""

    path: Path
    info: Any
    report: ParityReport


def _quantized_model(loaded: Any, source: Path, cal: CalibrationSet, say: Say) -> tuple[Any, dict[str, Any]]:
    """The fake-quant model: QAT ranges from the checkpoint if it has them, else post-training quantization."""
    import torch

    from sr_train import quant
    from sr_train.qat import read_int8_entry

    model = copy.deepcopy(loaded.model).eval().float()
    entry = read_int8_entry(source)
    if entry is not None:
        recipe = quant.Recipe(**{**entry["recipe"], "fp32_convs": tuple(entry["recipe"]["fp32_convs"])})
        quant.prepare(model, recipe.fp32_convs)
        quant.load_act_ranges(model, entry["ranges"])
        say(f"int8: ranges learned by quantization-aware training ({len(entry['ranges'])} convs)")
        return model, {"method": "qat", "recipe": recipe.to_dict(), "qat": entry.get("summary", {})}
    batches = [torch.from_numpy(x) for x in cal.calib]
    recipe = quant.Recipe()
    c = quant.quantize(model, batches, recipe)
    say(f"int8: post-training quantization on {len(batches)} crops: {len(c.quantized)} convs int8, "
        f"{len(c.fp32)} float ({', '.join(c.fp32) or 'none'}), {c.equalized_chains} chains equalized")
    return model, {"method": "ptq", "recipe": recipe.to_dict(), "fp32": c.fp32}


def _reference(loaded: Any, source: Path) -> Any:
    """The float model the int8 one is measured against: a QAT checkpoint's teacher when it names one."""
    from sr_train.qat import teacher_model

    return teacher_model(source) or loaded.model.eval().float()


def export_int8(loaded: Any, source: Path, calib_folder: str | Path, path: Path, *, min_psnr: float | None,
                opset: int | None, exporter: str, say: Say) -> Int8Result:
    """Quantize ``loaded`` on the images of ``calib_folder`` and write the QDQ ONNX ``path`` (in a staging folder).

    Args:
        loaded: the :class:`~sr_export.pipeline.LoadedModel`.
        source: its checkpoint (a QAT checkpoint's ranges and teacher are read from it).
        calib_folder: images like those to be upscaled.
        path: the ONNX to write.
        min_psnr: the quality gate in dB (None: measure only).
        opset: ONNX opset (>= 13; None: the exporter's default).
        exporter: the torch exporter.
        say: progress lines.

    Raises:
        SrError: a bad calibration folder or opset.
        ParityError: the int8 model misses ``min_psnr`` (the message says what was measured).
    """
    import onnx

    from sr_export.onnx import export_onnx
    from sr_train import quant

    if opset is not None and opset < 13:
        raise SrError(f"int8 needs opset 13 or later (per-channel DequantizeLinear), got --opset {opset}",
                      "Drop --opset or pass 13 or more.")
    hp = loaded.hparams
    cal = read_calibration(calib_folder, int(hp.get("num_in_ch", 3)), loaded.spec.size_multiple(hp))
    s = cal.summary
    if not cal.calib or not cal.heldout:
        raise SrError(f"the calibration images gave {s['calib_crops']} calibration and {s['heldout_crops']} "
                      f"held-out crops", "Use images of at least 16x16 pixels.", calib_folder)
    say(f"int8: {s['images']} calibration images -> {s['calib_crops']} crops, {s['heldout_images']} images held "
        f"out ({s['heldout_crops']} crops)")
    model, how = _quantized_model(loaded, source, cal, say)
    qparams = {n: {"scale": float(q.act.scale), "zero_point": int(q.act.zero_point)}
               for n, q in quant.quant_convs(model)}
    float_model = quant.strip(copy.deepcopy(model))
    fields = {**loaded.fields, "precision": "int8",
              "extra": {"int8": {**how, "calibration": s, "ranges": quant.act_ranges(model)}}}
    info = export_onnx(float_model, loaded.spec, hp, path, opset, fields, exporter=exporter)  # type: ignore[arg-type]
    proto = onnx.load(str(path))
    n = insert_qdq(proto, qparams)
    if n != len(qparams):
        raise SrError(f"int8: {n} of {len(qparams)} quantized convs found in the exported graph",
                      "Use --exporter torchscript.")
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    report = measure(_reference(loaded, source), path, cal.heldout, min_psnr)
    say(f"  quality {report.line()}")
    if not report.passed:
        raise ParityError(f"int8 quality {report.psnr:.2f} dB PSNR against the float model on "
                          f"{len(cal.heldout)} held-out crops is below --min-psnr {min_psnr:g} dB (max error "
                          f"{round(report.max_abs * 255)} levels)",
                          "Nothing was written. Fine-tune with sr-train --config qat, or lower --min-psnr.",
                          reports=(report,))
    info = _with_quality(path, info, report)
    return Int8Result(path, info, report)


def _with_quality(path: Path, info: Any, report: ParityReport) -> Any:
    """Store the measured quality in the file's metadata (``int8.quality``) and return the new ModelInfo."""
    import onnx

    from sr_runtime.fileio import atomic_write
    from sr_runtime.info import PREFIX

    extra = dict(info.extra)
    extra["int8"] = {**extra["int8"], "quality": quality_dict(report)}
    info = info.replace(extra=extra)
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props if not p.key.startswith(PREFIX)}
    del proto.metadata_props[:]
    for k, v in {**props, **info.to_metadata_props()}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    atomic_write(path, lambda tmp: onnx.save(proto, tmp))
    return info
