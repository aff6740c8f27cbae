"""TrainingPairPool: the shuffled queue of (LQ, GT) pairs of RealESRGANModel (``_dequeue_and_enqueue``).

A batch shares its resize factor, noise type and blur/no-blur choice, so upstream mixes pairs across
batches: the first ``queue_size / batch`` calls only fill the queue (and return their own batch); once it
is full, every call shuffles the queue, returns its first ``batch`` pairs and puts the new batch there.
The shuffle uses the ``torch.Generator`` passed in, not the global RNG.
"""

from __future__ import annotations

from typing import Any

import torch

Tensor = torch.Tensor


class TrainingPairPool:
    """The training-pair pool.

    Args:
        queue_size: pairs held (upstream default 180); must be a multiple of the batch size.
        generator: default generator for the shuffles (a call may pass its own).
    """

    def __init__(self, queue_size: int = 180, generator: torch.Generator | None = None) -> None:
        if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 1:
            raise ValueError(f"queue_size: {queue_size!r} must be a positive integer")
        self.queue_size = queue_size
        self.generator = generator
        self.queue_lq: Tensor | None = None
        self.queue_gt: Tensor | None = None
        self.ptr = 0

    @property
    def full(self) -> bool:
        """Whether the queue is full (calls now return shuffled pool pairs)."""
        return self.queue_lq is not None and self.ptr == self.queue_size

    def check_batch_size(self, batch_size: int) -> None:
        """Raise ``ValueError`` unless ``queue_size`` is a multiple of ``batch_size`` (call it at start-up)."""
        if batch_size < 1 or self.queue_size % batch_size:
            raise ValueError(
                f"queue_size: {self.queue_size} is not divisible by the batch size {batch_size}; "
                f"use a multiple of it (e.g. {max(1, self.queue_size // max(batch_size, 1)) * batch_size})"
            )

    @torch.no_grad()
    def __call__(self, lq: Tensor, gt: Tensor, gen: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Enqueue a batch and return the batch to train on.

        Args:
            lq: (B, C, h, w) LQ batch.
            gt: (B, C, H, W) GT batch (same B).
            gen: generator for the shuffle (defaults to the constructor's).

        Returns:
            ``(lq, gt)``: the input batch itself while the queue fills, then ``B`` pairs drawn from the
            shuffled queue. New tensors; the inputs are not modified.
        """
        b = lq.shape[0]
        if gt.shape[0] != b:
            raise ValueError(f"lq has {b} samples but gt has {gt.shape[0]}")
        if self.queue_lq is None:
            self.check_batch_size(b)
            self.queue_lq = lq.new_zeros((self.queue_size, *lq.shape[1:]))
            self.queue_gt = gt.new_zeros((self.queue_size, *gt.shape[1:]))
            self.ptr = 0
        if self.queue_gt is None:  # pragma: no cover - set together with queue_lq
            raise RuntimeError("training-pair pool in an inconsistent state")
        if tuple(lq.shape[1:]) != tuple(self.queue_lq.shape[1:]) or tuple(gt.shape[1:]) != tuple(
            self.queue_gt.shape[1:]
        ):
            raise ValueError(
                f"batch shapes {tuple(lq.shape)}/{tuple(gt.shape)} differ from the pool's "
                f"{tuple(self.queue_lq.shape[1:])}/{tuple(self.queue_gt.shape[1:])}"
            )
        if self.queue_size % b:
            raise ValueError(
                f"batch of {b} does not divide queue_size {self.queue_size} (use drop_last=True)"
            )
        if self.ptr == self.queue_size:
            gen = gen if gen is not None else self.generator
            if gen is None:
                raise ValueError("TrainingPairPool needs a torch.Generator (pass gen= or generator=)")
            idx = torch.randperm(self.queue_size, generator=gen, device=gen.device).to(self.queue_lq.device)
            self.queue_lq = self.queue_lq[idx]
            self.queue_gt = self.queue_gt[idx]
            lq_out = self.queue_lq[:b].clone()
            gt_out = self.queue_gt[:b].clone()
            self.queue_lq[:b] = lq
            self.queue_gt[:b] = gt
            return lq_out, gt_out
        self.queue_lq[self.ptr : self.ptr + b] = lq
        self.queue_gt[self.ptr : self.ptr + b] = gt
        self.ptr += b
        return lq.clone(), gt.clone()

    def state_dict(self) -> dict[str, Any]:
        """The queue contents and pointer, for exact resume (large: queue_size full crops)."""
        return {
            "queue_size": self.queue_size,
            "ptr": self.ptr,
            "queue_lq": self.queue_lq,
            "queue_gt": self.queue_gt,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (tensors are kept on the device they are given on)."""
        if int(state["queue_size"]) != self.queue_size:
            raise ValueError(f"saved pool has queue_size {state['queue_size']}, this one {self.queue_size}")
        self.ptr = int(state["ptr"])
        self.queue_lq = state["queue_lq"]
        self.queue_gt = state["queue_gt"]
