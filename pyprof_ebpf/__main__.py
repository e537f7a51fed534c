"""``python -m pyprof_ebpf``: the same entry point as the ``pyprof-ebpf`` script."""

from .cli import main

if __name__ == "__main__":
    main()
