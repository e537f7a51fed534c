"""Output: a ``Profile`` to Austin collapsed, folded or speedscope text, and safe file opening.

Responsibility: (1) ``open_output``, which opens the destination the way a root process must
when the path may sit in a directory an unprivileged user controls; (2) one writer per format,
registered in ``WRITERS``; (3) the escaping that keeps hostile names and paths (they come from
target memory) from breaking any format's line grammar. It must not print to the terminal or
choose exit codes (errors are ``UsageError``); it knows nothing about BPF or /proc.

Escaping, the same in every format: a backslash, every C0/C1 control character (this includes
``\\n``, ``\\r`` and the other characters ``str.splitlines`` breaks on), U+2028/U+2029, lone
surrogates (undecodable bytes kept by ``surrogateescape``), and each format's separators (``;``
everywhere, ``:`` in Austin function names) become ``\\xHH`` or ``\\uHHHH``. Because the
backslash itself is escaped this is reversible (``unescape``), and parsers that know nothing
about it still see exactly one frame per frame. Format specs: notes anchors-and-formats.md §6.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import re
import stat
import sys
from importlib import metadata as _metadata
from typing import IO, Callable, Dict, Iterator, Optional

from .aggregate import Frame, Profile
from .errors import UsageError

# ---------------------------------------------------------------------------------------------
# Escaping

_UNSAFE = r"\x00-\x1f\x7f-\x9f\\\u2028\u2029\ud800-\udfff"


def _hex(match: "re.Match[str]") -> str:
    c = ord(match.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def _escaper(separators: str) -> Callable[[str], str]:
    rx = re.compile(f"[{_UNSAFE}{re.escape(separators)}]")
    return lambda s: rx.sub(_hex, s)


escape = _escaper("")  # metadata values, speedscope names (JSON has no separators of ours)
_esc_semi = _escaper(";")  # Austin file names, folded frames
_esc_semi_colon = _escaper(";:")  # Austin function names: the parser does rsplit(":", 2)


def unescape(s: str) -> str:
    """Invert the escaping above (for tests and for readers that want the raw name back)."""
    return re.sub(r"\\(?:x([0-9a-f]{2})|u([0-9a-f]{4}))",
                  lambda m: chr(int(m.group(1) or m.group(2), 16)), s)


def _tool_version() -> str:
    try:
        return _metadata.version("pyprof-ebpf")
    except _metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Writers. Each takes a Profile and a text stream and writes one complete document.

def write_austin(profile: Profile, out: IO[str]) -> None:
    """Austin 3.x collapsed stacks: header, ``P<pid>;T<iid>:<tid>;file:func:line;… <µs>``, footer.

    Read unchanged by austin-python's ``AustinFileReader`` (and so by austin-tui, austin-vscode
    and the austin2* converters). The only metadata those tools require is ``mode``, which must
    be one of cpu|wall|memory|full; we do not write ``# austin:``, which would claim to be Austin.
    """
    meta = profile.meta
    header = [("pyprof-ebpf", _tool_version()), ("mode", meta.mode),
              ("interval", str(meta.interval_us))]
    if meta.multiprocess:
        header.append(("multiprocess", "on"))
    versions = sorted(set(profile.python_versions.values()))
    if versions:
        header.append(("python", ",".join(versions)))
    if meta.command:
        header.append(("command", " ".join(meta.command)))
    for key, value in header:
        out.write(f"# {key}: {escape(value)}\n")
    out.write("\n")

    cache: Dict[Frame, str] = {}
    for key, _count, us in profile.stacks():
        parts = [f"P{key.pid};T{key.iid}:{key.tid}"]
        for frame in key.frames:
            text = cache.get(frame)
            if text is None:
                text = cache[frame] = (f"{_esc_semi(frame.filename)}:"
                                       f"{_esc_semi_colon(frame.function)}:{int(frame.line)}")
            parts.append(text)
        out.write(f"{';'.join(parts)} {us}\n")

    total = profile.sample_count + meta.errors
    out.write(f"\n# count: {total}\n# duration: {meta.duration_us}\n"
              f"# errors: {meta.errors}/{total}\n# lost: {meta.lost}\n"
              f"# left_running: {meta.left_running}\n")


def _folded_frame(frame: Frame) -> str:
    name = _esc_semi(frame.function)
    if frame.kind == "kernel":
        return f"{name}_[k]"  # flamegraph.pl colours the _[k] suffix as kernel
    if frame.kind == "marker":
        return name
    where = _esc_semi(frame.filename)
    return f"{name} ({where}:{frame.line})" if frame.line else f"{name} ({where})"


def write_folded(profile: Profile, out: IO[str], *, threads: bool = False) -> None:
    """Brendan Gregg folded stacks: ``comm (pid)[;thread (tid)];func (file:line);… <samples>``.

    No metadata lines: flamegraph.pl and speedscope's importer would read them as stacks.
    The count is samples (not µs) so flamegraph.pl's default "samples" label is true.
    """
    lines: Dict[str, int] = {}
    cache: Dict[Frame, str] = {}
    for key, count, _us in profile.stacks():
        comm = profile.process_names.get(key.pid, "process")
        parts = [f"{_esc_semi(comm)} ({key.pid})"]
        if threads:
            parts.append(f"thread ({key.iid}:{key.tid})" if key.iid else f"thread ({key.tid})")
        for frame in key.frames:
            text = cache.get(frame)
            if text is None:
                text = cache[frame] = _folded_frame(frame)
            parts.append(text)
        # Different stacks can fold to one line (threads merged, line-less frames): sum them.
        line = ";".join(parts)
        lines[line] = lines.get(line, 0) + count
    for line, count in lines.items():
        out.write(f"{line} {count}\n")


SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def write_speedscope(profile: Profile, out: IO[str]) -> None:
    """speedscope JSON: shared frames, one "sampled" profile per (pid, iid, tid), weights in µs."""
    frames: list = []
    index: Dict[Frame, int] = {}
    profiles = []
    for (pid, iid, tid), entries in profile.threads().items():
        samples, weights = [], []
        for stack, _count, us in entries:
            if us <= 0:
                continue  # speedscope ignores zero weights; keep the file minimal
            ids = []
            for frame in stack:
                i = index.get(frame)
                if i is None:
                    i = index[frame] = len(frames)
                    entry = {"name": escape(frame.function)}
                    if frame.filename:
                        entry["file"] = escape(frame.filename)
                    if frame.line > 0:
                        entry["line"] = int(frame.line)
                    frames.append(entry)
                ids.append(i)
            samples.append(ids)
            weights.append(us)
        if not samples:
            continue
        thread = f"{iid}:{tid}" if iid else str(tid)
        name = f"P{pid} T{thread} {profile.process_names.get(pid, '')}".rstrip()
        profiles.append({"type": "sampled", "name": escape(name), "unit": "microseconds",
                         "startValue": 0, "endValue": sum(weights),
                         "samples": samples, "weights": weights})
    doc = {"$schema": SPEEDSCOPE_SCHEMA, "shared": {"frames": frames}, "profiles": profiles,
           "name": escape("pyprof-ebpf " + " ".join(profile.meta.command)).rstrip(),
           "activeProfileIndex": 0, "exporter": f"pyprof-ebpf@{_tool_version()}"}
    json.dump(doc, out, ensure_ascii=False, separators=(",", ":"))
    out.write("\n")


WRITERS: Dict[str, Callable[[Profile, IO[str]], None]] = {
    "austin": write_austin,
    "folded": write_folded,
    "speedscope": write_speedscope,
}
EXTENSIONS = {"austin": "austin", "folded": "folded", "speedscope": "speedscope.json"}


def default_filename(command_name: str, fmt: str, when: Optional[_dt.datetime] = None) -> str:
    """``pyprof-<cmd>-<YYYYmmdd-HHMMSS>.<ext>``; the command name is reduced to ``[A-Za-z0-9._-]``."""
    if fmt not in EXTENSIONS:
        raise UsageError(f"unknown output format {fmt!r}",
                         f"use one of: {', '.join(EXTENSIONS)}")
    base = os.path.basename(command_name.rstrip("/"))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._-")[:40] or "profile"
    when = when or _dt.datetime.now()
    return f"pyprof-{safe}-{when:%Y%m%d-%H%M%S}.{EXTENSIONS[fmt]}"


# ---------------------------------------------------------------------------------------------
# Opening the destination safely

def _refuse(path: str, why: str, remedy: str = "choose an output path in a directory you own"):
    return UsageError(f"refusing to write {path}: {why}", remedy)


def _check_parents(path: str, trusted: set) -> None:
    """Refuse a path whose directory part goes through a symlink an untrusted user owns.

    O_NOFOLLOW only guards the last component; ``/tmp/d -> /etc`` planted by a user would
    otherwise send ``/tmp/d/shadow`` to /etc. Symlinks owned by root or the invoking user (e.g.
    ``/var/run -> /run``) are fine. A swap between this check and the open is still possible in
    a directory the attacker can write; in sticky dirs fs.protected_symlinks closes it.
    """
    # Not abspath(): it folds "d/.." lexically, while the kernel would follow d first.
    parent = os.path.dirname(os.path.join(os.getcwd(), path))
    prefix = "/"
    for part in parent.split("/"):
        if not part:
            continue
        prefix = os.path.join(prefix, part)
        try:
            st = os.lstat(prefix)
        except OSError:
            return  # the open below reports a missing directory with the real errno
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in trusted:
            raise _refuse(path, f"{prefix} is a symbolic link owned by uid {st.st_uid}")


def _open_fd(path: str, owner_uid: Optional[int], owner_gid: Optional[int]) -> int:
    owners = {os.geteuid()} | ({owner_uid} if owner_uid is not None else set())
    trusted = owners | {0}
    _check_parents(path, trusted)
    dirname, name = os.path.split(path)
    if not name:
        raise _refuse(path, "it names a directory", "give a file name")
    # O_NONBLOCK: opening a FIFO for writing would otherwise block until a reader appears.
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    try:
        dfd = os.open(dirname or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise UsageError(f"cannot open directory of {path}: {err.strerror}",
                         "create the directory or choose another output path") from err
    try:
        for _ in range(3):  # retry if the file appears/vanishes between the two opens
            try:
                # O_EXCL never follows a symlink, and a file we create is ours by definition.
                fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dfd)
                created = True
                break
            except FileExistsError:
                pass
            try:
                fd = os.open(name, flags, dir_fd=dfd)
                created = False
                break
            except FileNotFoundError:
                continue
        else:
            raise _refuse(path, "the file keeps appearing and vanishing")
    except OSError as err:
        raise _open_error(path, err) from err
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "it is not a regular file")
        if not created:
            if st.st_uid not in owners:
                # As fs.protected_regular does for sticky dirs: never truncate someone else's
                # file, e.g. one a user pre-created in /tmp hoping root fills it.
                raise _refuse(path, f"it exists and is owned by uid {st.st_uid}",
                              "delete it first or choose another output path")
            if st.st_nlink != 1:
                # A hard link planted next to a root-owned file (/etc/shadow) passes the owner
                # check, so refuse any file with a second name.
                raise _refuse(path, f"it has {st.st_nlink} hard links")
        elif owner_uid is not None:
            os.fchown(fd, owner_uid, -1 if owner_gid is None else owner_gid)
        os.ftruncate(fd, 0)
        os.set_blocking(fd, True)
        return fd
    except OSError as err:  # fchown without privilege, ftruncate on a read-only fs
        os.close(fd)
        raise _open_error(path, err) from err
    except BaseException:
        os.close(fd)
        raise


def _open_error(path: str, err: OSError) -> UsageError:
    if err.errno == errno.ELOOP:
        return _refuse(path, "it is a symbolic link", "remove the link or choose another path")
    if err.errno == errno.ENXIO:  # a FIFO with no reader, or a socket
        return _refuse(path, "it is not a regular file")
    if err.errno == errno.EISDIR:
        return _refuse(path, "it is a directory", "give a file name")
    return UsageError(f"cannot open {path} for writing: {err.strerror}",
                      "check the path and its permissions")


@contextlib.contextmanager
def open_output(path: Optional[str], *, owner_uid: Optional[int] = None,
                owner_gid: Optional[int] = None) -> Iterator[IO[str]]:
    """Open ``path`` for writing text (UTF-8, ``\\n``); ``None`` or ``"-"`` is stdout.

    Safe for a root process writing where other users can write: refuses a symlink as the last
    component, a parent symlink owned by another user, anything but a regular file (FIFOs
    included, without blocking), an existing file owned by another user, and an existing file
    with more than one hard link; only then truncates. A file it creates is chowned to
    ``owner_uid``/``owner_gid`` when given (running under sudo for a user). Raises UsageError.
    """
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    fd = _open_fd(os.fspath(path), owner_uid, owner_gid)
    # backslashreplace: the writers already escape everything unencodable, but a bug there must
    # not throw away a long profile at the last step.
    with open(fd, "w", encoding="utf-8", errors="backslashreplace", newline="\n") as stream:
        yield stream
