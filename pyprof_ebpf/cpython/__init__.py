"""CPython knowledge for pyprof_ebpf: pure Python, no BPF, no root needed by itself.

This package answers, for a target process or an ELF file, "which CPython is this and how is it
laid out": ``elf`` finds ``_PyRuntime``/``Py_Version``/``_Py_DebugOffsets`` with pyelftools and
locates the runtime in a live process via ``/proc``; ``detect`` runs the version ladder and spots
free-threaded and debug builds; ``offsets`` (with the data in ``tables``) produces the validated
``Offsets`` record, named with CPython's ``Struct_field`` names and carrying the per-version
behaviour as data flags so the BPF frame walker never branches on a version; ``linetable`` turns a
recorded instruction offset into a line number. ``detect.inspect_process(pid)`` ties them together.
Version knowledge lives here and nowhere else (house style, rule 4).
"""
