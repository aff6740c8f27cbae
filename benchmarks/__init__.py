"""Benchmarks of sr-deploy against the upstream algorithm (``make bench``); not part of the installed packages."""
