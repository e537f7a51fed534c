"""pyprof-ebpf: a system-wide eBPF sampling profiler for Python with exact process-tree tracking.

See docs/internals.md for the components and how data flows between them.
"""

__version__ = "0.1.0"
