"""Benchmarks of the pool against the job queues users would otherwise pick: `python -m bench`."""
