"""The ``.npz`` container under minidl's files: atomic writes and bounded reads.

Writing goes to a short hidden temporary file in the target's folder, is
flushed to disk, then moved over the target with :func:`os.replace`, so the
target is always either the old file or the complete new one. Temporaries
left behind by a process that was killed (SIGKILL cannot be caught) are
removed by the next save to the same target; SIGTERM during a save is
handled like Ctrl-C: the temporary is removed, then the process ends as
SIGTERM would have ended it.

Reading never trusts the file: member sizes and ``.npy`` headers are checked
against limits and against what the caller expects *before* any member is
decompressed, and no member is read past its declared size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import tempfile
import threading
import zipfile

import numpy as np

__all__ = ["write_npz", "write_atomic", "open_npz", "member_header", "read_member", "MAX_MEMBERS"]

#: Most members a file may have (a model with 50,000 parameters is far beyond any real use).
MAX_MEMBERS = 100_000


# ------------------------------------------------------------------ writing
class _Terminated(BaseException):
    """Raised inside a save when SIGTERM arrives; the save cleans up, then SIGTERM is re-raised."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While active (main thread, default SIGTERM disposition only), SIGTERM raises
    :class:`_Terminated` so ``finally``/``except`` blocks run; on the way out the
    default disposition is restored and the signal delivered again."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    received = []

    def handler(signum, frame):
        received.append(signum)
        raise _Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if received:
            signal.raise_signal(signal.SIGTERM)  # end as SIGTERM would have


def _temp_tag(path: str) -> str:
    """``.mdl-<hash of the target's name>``: short (a 250-character target still fits
    NAME_MAX) and the same for every save to that target, so stale ones can be found."""
    digest = hashlib.sha256(os.path.basename(path).encode("utf-8", "surrogateescape")).hexdigest()
    return f".mdl-{digest[:16]}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # exists but is not ours / nonsense pid: leave it alone unless <= 0
    return True


def remove_stale_temporaries(path: str) -> list[str]:
    """Delete temporaries of earlier saves to ``path`` whose writing process is gone.

    Temporaries are named ``.mdl-<hash>.<pid>.<random>.tmp``; one is stale when
    no process ``pid`` exists (its writer was killed). Returns the removed paths.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tag, removed = _temp_tag(path), []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(tag) and name.endswith(".tmp")):
            continue
        pid = name[len(tag):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.path)
    return removed


def _file_mode(path: str) -> int:
    """The mode a plain ``open(path, 'w')`` would give: keep an existing file's, else 0o666 & ~umask.

    ``mkstemp`` creates 0o600 files; without this every saved model would be owner-only.
    """
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _named_error(exc: OSError, path: str, where: str) -> OSError:
    """The same OSError type, naming the target ``path`` (never the temporary file)."""
    reason = exc.strerror or str(exc)
    folder = os.path.dirname(path)
    if isinstance(exc, FileNotFoundError) and folder and not os.path.isdir(folder):
        # without the filename argument, which str() would append after the hint
        return FileNotFoundError(exc.errno, f"{where}: cannot write {path!r}: the folder {folder!r} does not exist. "
                                            f"Create it first (os.makedirs({folder!r}, exist_ok=True)) or choose "
                                            "another path.")
    hint = ""
    if isinstance(exc, PermissionError):
        hint = " Check that the folder exists and is writable, or choose another path."
    elif isinstance(exc, FileNotFoundError):
        hint = " Create the folder first (os.makedirs(folder, exist_ok=True))."
    new = type(exc)(exc.errno, f"{where}: cannot write {path!r}: {reason}.{hint}", path)
    return new


def write_npz(path, arrays: dict, where: str = "minidl.save") -> None:
    """Write ``arrays`` as an uncompressed, pickle-free ``.npz`` at ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Used exactly as given (no suffix added).
    arrays : dict of str -> ndarray
    where : str
        Names the caller in error messages.

    Raises
    ------
    OSError (PermissionError, FileNotFoundError, ...)
        Naming ``path``; the previous file at ``path``, if any, is intact and
        no temporary file is left behind.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_npz(os.path.join(tmp, "a.npz"), {"w": np.arange(3.0)})
    ...     with open_npz(os.path.join(tmp, "a.npz")) as zf:
    ...         shape, dtype, info = member_header(zf, "w")
    ...         print(shape, dtype, read_member(zf, info))
    (3,) float64 [0. 1. 2.]
    """
    # through a file object: np.savez adds no suffix
    write_atomic(path, lambda f: np.savez(f, allow_pickle=False, **arrays), where)


def write_atomic(path, write, where: str) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, then move it over ``path``.

    The rules of every minidl file (model files, checkpoints, ONNX exports): the
    target is either the old file or the complete new one; the new file gets the
    mode a plain ``open(path, "w")`` would give; a temporary left by a killed
    writer is removed by the next write to the same target; SIGTERM during the
    write removes the temporary, then ends the process as SIGTERM would.

    Parameters
    ----------
    path : str or os.PathLike
        Used exactly as given (no suffix added).
    write : callable
        ``write(f)`` writes the whole content to the binary file object ``f``.
    where : str
        Names the caller in error messages.

    Raises
    ------
    OSError (PermissionError, FileNotFoundError, ...)
        Naming ``path``; the previous file at ``path``, if any, is intact and
        no temporary file is left behind.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_atomic(os.path.join(tmp, "a.bin"), lambda f: f.write(b"abc"), "example")
    ...     print(open(os.path.join(tmp, "a.bin"), "rb").read(), os.listdir(tmp))
    b'abc' ['a.bin']
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(path)
    with _sigterm_as_interrupt():
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{_temp_tag(path)}{os.getpid()}.",
                                       suffix=".tmp")
        except OSError as exc:
            raise _named_error(exc, path, where) from exc
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _file_mode(path))
            os.replace(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError) and exc.filename in (tmp, None):
                raise _named_error(exc, path, where) from exc
            raise


# ------------------------------------------------------------------ reading
def open_npz(path) -> zipfile.ZipFile:
    """Open ``path`` as a zip archive after cheap sanity checks (raises ValueError).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    zipfile.ZipFile
        Close it (or use it in a ``with`` block).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a zip file, more than ``MAX_MEMBERS`` members, duplicate names.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with open(os.path.join(tmp, "x.npz"), "wb") as f:
    ...         _ = f.write(b"not a zip")
    ...     open_npz(os.path.join(tmp, "x.npz"))
    Traceback (most recent call last):
    ...
    ValueError: not a .npz (zip) file; minidl models are written by model.save()
    """
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # before numpy guesses (and suggests unpickling)
            raise ValueError("not a .npz (zip) file; minidl models are written by model.save()")
    zf = zipfile.ZipFile(path)
    try:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ValueError(f"the file has {len(infos)} members; at most {MAX_MEMBERS} are allowed")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise ValueError("the file has duplicate member names")
    except BaseException:
        zf.close()
        raise
    return zf


#: Deflate expands at most about 1032:1; a member declaring more than this per stored byte lies.
MAX_DEFLATE_RATIO = 1100


def _check_compression(name: str, info: zipfile.ZipInfo) -> None:
    """Only what numpy writes (``savez``: stored, ``savez_compressed``: deflated), at sizes deflate can
    reach: a bzip2 or lzma member can declare gigabytes in a few hundred bytes (a zip bomb)."""
    if info.compress_type == zipfile.ZIP_STORED:
        if info.compress_size != info.file_size:
            raise ValueError(f"member {name!r} is stored uncompressed but declares {info.file_size:,} bytes "
                             f"in {info.compress_size:,}")
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        if info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 1024:
            raise ValueError(f"member {name!r} declares {info.file_size:,} bytes in {info.compress_size:,} "
                             "deflated bytes, more than deflate can expand (about 1032:1)")
    else:
        raise ValueError(f"member {name!r} uses zip compression method {info.compress_type}; numpy's savez and "
                         "savez_compressed write only stored (0) or deflated (8) members")


def member_header(zf: zipfile.ZipFile, name: str):
    """``(shape, dtype, info)`` of the ``.npy`` member ``name`` (without the ``.npy``).

    Reads only the header; checks that the declared uncompressed size equals
    header + data exactly, so the member cannot decompress to more than its
    shape and dtype say. Refuses object and other non-numeric/str dtypes.

    Parameters
    ----------
    zf : zipfile.ZipFile
        From :func:`open_npz`.
    name : str
        The member's name without ``.npy``.

    Returns
    -------
    shape : tuple of int
    dtype : numpy.dtype
    info : zipfile.ZipInfo
        For :func:`read_member`.

    Raises
    ------
    ValueError
        Missing member, bad header, Fortran order, a dtype minidl never writes, a size mismatch.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_npz(os.path.join(tmp, "a.npz"), {"w": np.zeros((2, 3), np.float32)})
    ...     with open_npz(os.path.join(tmp, "a.npz")) as zf:
    ...         shape, dtype, info = member_header(zf, "w")
    >>> shape, dtype
    ((2, 3), dtype('float32'))
    """
    try:
        info = zf.getinfo(name + ".npy")
    except KeyError:
        raise ValueError(f"member {name!r} is missing") from None
    _check_compression(name, info)
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=10_000)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=10_000)
        else:
            raise ValueError(f"member {name!r} has unsupported .npy version {version}")
        header = f.tell()
    if dtype.hasobject or dtype.kind not in "biufU" or dtype.fields is not None:
        raise ValueError(f"member {name!r} has dtype {dtype}, which minidl files never contain")
    if fortran:
        raise ValueError(f"member {name!r} is stored in Fortran order; minidl writes C order")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if info.file_size != header + nbytes:
        raise ValueError(
            f"member {name!r} declares {info.file_size} bytes but its header says shape "
            f"{shape} {dtype} ({header + nbytes} bytes with the header)")
    return tuple(int(s) for s in shape), dtype, info


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """Read one member whose header :func:`member_header` already checked.

    Parameters
    ----------
    zf : zipfile.ZipFile
    info : zipfile.ZipInfo
        From :func:`member_header`.

    Returns
    -------
    ndarray
        Writable, owned memory.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_npz(os.path.join(tmp, "a.npz"), {"w": np.arange(3)})
    ...     with open_npz(os.path.join(tmp, "a.npz")) as zf:
    ...         array = read_member(zf, member_header(zf, "w")[2])
    >>> array, array.flags.writeable
    (array([0, 1, 2]), True)
    """
    with zf.open(info) as f:
        array = np.lib.format.read_array(f, allow_pickle=False, max_header_size=10_000)
    if not array.flags.writeable:  # pragma: no cover - read_array returns owned memory
        array = array.copy()
    return array
