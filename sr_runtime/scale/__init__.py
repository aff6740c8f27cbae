"""Scale-out for ``sr-run``: many files on a Ray cluster, remote file systems (pyarrow), a remote model server.

- :mod:`~sr_runtime.scale.locations`: local paths and URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://``) read
  and written through pyarrow's file systems, with the local path's atomic-write rule.
- :mod:`~sr_runtime.scale.ray_batch`: ``upscale_files_ray(IN, OUT, RunOptions, RayOptions)``: files read and
  decoded in Ray tasks, upscaled and written by an actor pool, one :class:`~sr_runtime.api.Upscaler` per actor.

Ray and pyarrow (extra ``ray``) are imported inside functions only: importing this package loads neither.
"""
