"""``sr-export --metadata foreign.onnx``: sr-deploy metadata written into a copy of an ONNX made elsewhere.

An ONNX exported by upstream's ``scripts/pytorch2onnx.py`` (or any plain ``torch.onnx.export``) runs in sr-run
as it is (:mod:`sr_runtime.probe` finds its scale), but it lacks what only metadata gives: the receptive radius
(which ``--tile-pad`` is exact, ``sr-run --info``), the architecture, and a file that TensorRT builds take.
:func:`write_metadata` finds them and writes a copy:

1. probe: the graph is checked and run once (:func:`sr_runtime.probe.probe_model`: scale, channels, size
   multiple; a classifier is refused);
2. architecture: the initializer names of a plain export are the state-dict keys, so the registry's ``detect``
   and ``infer_hparams`` read them as they read a checkpoint (architecture, hyperparameters, radius formula);
3. radius: otherwise measured from the response to a one-pixel change (:func:`sr_runtime.probe.measure_radius`);
4. the copy is written into a staging folder and run on the parity inputs next to the original: they must
   agree within the fp32 ONNX tolerance (they are one graph) before it is moved into place.

Torch is not needed: ONNX Runtime and the ``onnx`` package do all of it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from sr_runtime import __version__
from sr_runtime.compare import ParityReport
from sr_runtime.errors import ModelFileError, SrError
from sr_runtime.fileio import temp_folder
from sr_runtime.info import ModelInfo

METADATA_SUFFIX = "_sr"
"""The default copy of ``x.onnx`` is ``./x_sr.onnx``."""


def metadata_output(model: Path, out: str | Path | None) -> Path:
    """Where the copy goes: ``out`` (a file or a folder), else ``./<stem>_sr.onnx``.

    Raises:
        SrError: ``out`` is not an ``.onnx`` name, or it is the input itself.
    """
    from sr_export.pipeline import output_path

    dst = output_path(model.with_name(model.stem + METADATA_SUFFIX + model.suffix), out)
    if dst.exists() and dst.resolve() == model.resolve():
        raise SrError("the copy would replace the input", "Give another output with -o.", dst)
    return dst


def detect_arch(proto: Any, scale: int) -> tuple[Any, dict[str, Any]] | None:
    """``(ArchSpec, hparams)`` read from the initializer names and shapes, or None.

    A plain ``torch.onnx.export`` keeps the state-dict keys as initializer names; the registry then knows the
    network as it knows a checkpoint. A detection whose scale differs from the probed one is ignored.
    """
    from onnx import numpy_helper

    from sr_train.archs import REGISTRY

    shapes = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    spec = REGISTRY.detect(shapes)
    if spec is None:
        return None
    try:
        hparams = spec.infer_hparams(shapes)
        if "act_type" in hparams and any(n.op_type == "PRelu" for n in proto.graph.node):
            hparams["act_type"] = "prelu"  # the exporter renames PReLU slopes: the graph tells instead
        return (spec, hparams) if spec.scale(hparams) == scale else None
    except (KeyError, ValueError, TypeError, IndexError):
        return None


def _probe(src: Path, scale: int | None) -> tuple[ModelInfo, int | None]:
    """The probed info of ``src`` and its measured receptive radius (None: beyond the probe).

    Raises:
        SrError: ``src`` already carries sr-deploy metadata.
    """
    from sr_runtime.backends.ort import OrtBackend
    from sr_runtime.probe import measure_radius

    with OrtBackend(src, "cpu", scale=scale) as be:
        info = be.info
        if not info.extra.get("probed"):
            raise SrError("the model already carries sr-deploy metadata", "Nothing to do: sr-run runs it as it is.",
                          src)
        return info, measure_radius(be.run, info)


def model_info(src: Path, proto: Any, scale: int | None = None) -> ModelInfo:
    """The metadata to write for ``src``: probed, then the architecture read or the radius measured."""
    info, measured = _probe(src, scale)
    extra = {k: v for k, v in info.extra.items() if k != "probed"}
    extra["metadata_from"] = {"file": src.name, "sha256": hashlib.sha256(src.read_bytes()).hexdigest()}
    found = detect_arch(proto, info.scale)
    if found is not None:
        spec, hparams = found
        return info.replace(arch=spec.id, hparams=hparams, receptive_radius=int(spec.receptive_radius(hparams)),
                            size_multiple=spec.size_multiple(hparams), version=__version__, extra=extra)
    if measured is None:
        extra["radius_unknown"] = True
    return info.replace(receptive_radius=measured or 0, version=__version__, extra=extra)


def check_copy(original: Path, copy: Path) -> tuple[ParityReport, ...]:
    """Run the copy and the original on the parity inputs (:mod:`sr_export.parity`) and compare.

    Raises:
        ParityError: the copy differs (nothing is written).
    """
    from sr_export.errors import ParityError
    from sr_export.parity import TOL, parity_image, random_input
    from sr_runtime.backends.ort import OrtBackend
    from sr_runtime.compare import compare
    from sr_runtime.tiling import round_up

    with OrtBackend(original, "cpu") as a, OrtBackend(copy, "cpu") as b:
        m, c = max(1, b.info.size_multiple), b.info.in_channels
        fixed = b.info.extra.get("fixed_input")
        shapes = [(1, fixed[2], fixed[3])] if fixed else [(1, round_up(64, m), round_up(48, m)),
                                                          (2, round_up(32, m), round_up(24, m))]
        reports = []
        for i, (n, h, w) in enumerate(shapes):
            x = parity_image(h, w, c) if i == 0 else random_input(n, h, w, c)
            name = f"ort {b.info.precision} copy vs original {'test image' if i == 0 else 'random'} {n}x{c}x{h}x{w}"
            reports.append(compare(name, b.run(x), a.run(x), TOL[("ort", b.info.precision)]))
    bad = [r for r in reports if not r.passed]
    if bad:
        raise ParityError(f"the copy with metadata differs from the original: {bad[0].line()}",
                          "Nothing was written; report this with the model file.", reports=tuple(reports))
    return tuple(reports)


def write_metadata(model: str | Path, output: str | Path | None = None, *, scale: int | None = None,
                   check: bool = True, say: Any = None):
    """Write a copy of the ONNX ``model`` with sr-deploy metadata (see the module docstring).

    Args:
        model: an ONNX without sr-deploy metadata (e.g. upstream's ``pytorch2onnx.py`` export).
        output: the copy (a file or a folder); None: ``./<stem>_sr.onnx``.
        scale: the scale the caller expects: the probe must find it.
        check: run the copy next to the original before it is kept.
        say: receives progress lines (default: the ``sr_export`` logger).

    Returns:
        An :class:`~sr_export.pipeline.ExportResult` (``onnx``, ``info``, ``written``, ``parity``).

    Raises:
        ModelFileError: no such file, not an ONNX, not an SR model (a classifier), already with metadata.
        SrError: a bad output path; the probed scale differs from ``scale``.
        ParityError: the copy does not run like the original.
    """
    import onnx

    from sr_export.pipeline import LOG, STAGING_PREFIX, ExportResult, check_folder

    say = say or LOG.info
    src = Path(model)
    if not src.is_file():
        raise ModelFileError("file not found" if not src.exists() else "is not a file", "Check the path.", src)
    if src.suffix.lower() != ".onnx":
        raise ModelFileError("--metadata takes an .onnx file", "Export a checkpoint without --metadata.", src)
    dst = metadata_output(src, output)
    check_folder(dst.parent, "output", dst, create=True)
    proto = onnx.load(str(src))
    info = model_info(src, proto, scale)
    how = "from its initializer names" if info.hparams else "probed and measured"
    radius = "unknown (beyond the probe)" if info.extra.get("radius_unknown") else info.receptive_radius
    say(f"{src.name}: {info.arch} x{info.scale}, receptive radius {radius} ({how})")
    for k, v in info.to_metadata_props().items():
        proto.metadata_props.add(key=k, value=v)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with temp_folder(dst.parent, STAGING_PREFIX) as tmp:
        staged = tmp / "model.onnx"
        onnx.save(proto, str(staged))
        reports = check_copy(src, staged) if check else ()
        for r in reports:
            say(f"  parity {r.line()}")
        os.replace(staged, dst)
    return ExportResult(dst, info, written=(dst,), parity=reports)
