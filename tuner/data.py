"""Input and output data files, and atomic writes.

Inputs: ``.npy`` (rows are items; loaded without pickle), ``.npz`` (one array per input name of a
model with several inputs, rows aligned: read into :class:`~tuner.models.columns.Columns`) or
``.jsonl`` (one JSON value per non-empty line). Outputs: the same three formats; a ``.npz`` output
holds one array per output name (a model with several outputs gives a tuple per item). Every write is atomic — a temporary file in the same folder,
fsync, ``os.replace`` — so a reader sees the old file or the new one, never half of one, and a failed
write leaves nothing behind. Errors are one-line :class:`~tuner.errors.DataError` naming file and place.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tuner.errors import DataError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FORMATS",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_inputs",
    "save_jsonl_records",
    "save_outputs",
]

FORMATS = (".npy", ".npz", ".jsonl")
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


# --------------------------------------------------------------------------- reading


def load_inputs(path: str | os.PathLike[str]) -> Any:
    """Read the items of an input file: a numpy array (rows are items), Columns (.npz: one array per
    input name) or a list of JSON values."""
    p = Path(path)
    suffix = _suffix(p, "input")
    if not p.exists():
        raise DataError(f"{path}: file not found")
    if p.is_dir():
        raise DataError(f"{path}: is a folder, not a file")
    try:
        if suffix == ".npz":
            return _load_npz(p, str(path))
        return _load_npy(p, str(path)) if suffix == ".npy" else _load_jsonl(p, str(path))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e


def _suffix(p: Path, what: str) -> str:
    suffix = p.suffix.lower()
    if suffix not in FORMATS:
        shown = f"'{p.suffix}'" if p.suffix else "(no extension)"
        raise DataError(f"{p}: unsupported {what} format {shown} (use .npy, .npz or .jsonl)")
    return suffix


def _load_npy(p: Path, name: str) -> np.ndarray:
    import numpy as np

    with open(p, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    # Check the magic ourselves: np.load would otherwise report "pickled data" for any text file.
    if head[:4] == _ZIP_MAGIC:
        raise DataError(f"{name}: not a .npy file (it is a .npz archive; save one array with np.save)")
    if head != _NPY_MAGIC:
        raise DataError(f"{name}: not a .npy file (no NUMPY header)")
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataError(f"{name}: holds Python objects (object dtype); save a numeric array") from e
        raise DataError(f"{name}: not a .npy file ({_first_line(e)})") from e
    except EOFError as e:
        raise DataError(f"{name}: not a .npy file (truncated)") from e
    if arr.ndim < 1:
        raise DataError(f"{name}: holds a single value (0-d array); expected rows of items")
    if len(arr) == 0:
        raise DataError(f"{name}: empty (0 rows)")
    return arr


def _load_npz(p: Path, name: str) -> Any:
    import zipfile

    import numpy as np

    from tuner.models.columns import Columns

    with open(p, "rb") as f:
        if f.read(4) != _ZIP_MAGIC:
            raise DataError(f"{name}: not a .npz archive (save one with np.savez(path, name=array, ...))")
    try:
        with np.load(p, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        if "allow_pickle" in str(e):
            raise DataError(f"{name}: holds Python objects (object dtype); save numeric arrays") from e
        raise DataError(f"{name}: not a readable .npz archive ({_first_line(e)})") from e
    if not arrays:
        raise DataError(f"{name}: holds no arrays")
    for k, a in arrays.items():
        if a.ndim < 1:
            raise DataError(f"{name}: array '{k}' holds a single value (0-d); expected one row per item")
    cols = Columns(arrays, name)
    if len(cols) == 0:
        raise DataError(f"{name}: empty (0 rows)")
    return cols


def _load_jsonl(p: Path, name: str) -> list[Any]:
    items: list[Any] = []
    decoder = json.JSONDecoder()
    # Binary lines decoded one at a time: a text-mode file decodes in chunks, so a bad byte
    # would be reported on the wrong line.
    with open(p, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):  # written by some Windows editors
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{name} line {lineno}: not UTF-8 text ({e.reason})") from e
            if not text.strip():
                continue
            # Decoded unstripped so the column in an error counts from the start of the line.
            try:
                items.append(decoder.decode(text))
            except json.JSONDecodeError as e:
                raise DataError(f"{name} line {lineno}: invalid JSON ({e.msg}: column {e.colno})") from e
    if not items:
        raise DataError(f"{name}: empty (0 items)")
    return items


# --------------------------------------------------------------------------- writing


def save_outputs(
    path: str | os.PathLike[str],
    outputs: Any,
    names: list[str] | None = None,
    failed: list[bool] | None = None,
) -> None:
    """Write one output per item as ``.npy`` (stacked into one array), ``.npz`` (one array per output
    name: ``names``, else output_0, output_1 ...; a tuple per item for several outputs) or
    ``.jsonl``, atomically. Several outputs per item (tuples) cannot go to one ``.npy``.

    ``failed``: which items failed (their outputs are placeholders): a ``failed`` array in the .npz
    (``failed_mask`` if an output has that name), ``<output>.failed.npy`` beside a .npy."""
    p = Path(path)
    suffix = _suffix(p, "output")
    multi = _is_multi(outputs)
    if suffix == ".npz":
        columns = _columns(str(path), outputs, multi)
        labels = list(names or [])
        if len(labels) != len(columns):
            labels = (
                [f"output_{i}" for i in range(len(columns))]
                if len(columns) > 1
                else (labels[:1] or ["output"])
            )
        arrays = {k: _stack(str(path), c) for k, c in zip(labels, columns, strict=True)}
        if failed is not None:
            import numpy as np

            arrays["failed_mask" if "failed" in arrays else "failed"] = np.asarray(failed, dtype=bool)

        def write_npz(f: IO[bytes]) -> None:
            import numpy as np

            np.savez(f, allow_pickle=False, **arrays)

        _atomic_write(p, write_npz)
        return
    if multi and suffix == ".npy":
        n = len(outputs[0]) if len(outputs) else 0
        raise DataError(
            f"{path}: each item has {n} outputs (a tuple); write .npz (one array per output) or .jsonl"
        )
    if suffix == ".npy":
        arr = _stack(str(path), outputs)

        def write_npy(f: IO[bytes]) -> None:
            import numpy as np

            np.save(f, arr, allow_pickle=False)

        _atomic_write(p, write_npy)
        mask_path = p.with_name(p.stem + ".failed.npy")
        if failed is not None:
            import numpy as np

            mask = np.asarray(failed, dtype=bool)
            _atomic_write(mask_path, lambda f: np.save(f, mask, allow_pickle=False))
        elif mask_path.exists():  # a mask from an earlier run must not describe these outputs
            mask_path.unlink()
    else:
        rows = outputs.tolist() if hasattr(outputs, "tolist") and hasattr(outputs, "ndim") else outputs
        _atomic_write(p, lambda f: _write_jsonl(f, str(path), rows, "output"))


def save_jsonl_records(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> None:
    """Write one JSON object per line (e.g. a failure sidecar), atomically; numpy values converted."""
    _atomic_write(Path(path), lambda f: _write_jsonl(f, str(path), records, "record"))


def atomic_write_text(
    path: str | os.PathLike[str], text: str, encoding: str = "utf-8", *, parents: bool = False
) -> None:
    """Replace ``path`` with ``text`` atomically (see :func:`atomic_write_bytes`)."""
    data = text.encode(encoding)
    _atomic_write(Path(path), lambda f: f.write(data), parents=parents)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, parents: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically: a reader sees the old file or the new one, never half.

    A temporary file in the same folder, fsync, ``os.replace``, fsync of the folder. The new file
    keeps the mode of the one it replaces, or gets the mode a plain ``open()`` would give (umask
    applied). On any failure, Ctrl-C included, the temporary file is removed and the old file is
    untouched. ``parents=True`` creates missing folders; otherwise a missing folder is an error.
    Raises :class:`~tuner.errors.DataError` (one line) when the file cannot be written.
    """
    _atomic_write(Path(path), lambda f: f.write(data), parents=parents)


def _atomic_write(p: Path, write: Callable[[IO[bytes]], Any], parents: bool = False) -> None:
    folder = p.parent
    if parents and not folder.is_dir():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"{p}: cannot create folder {folder} ({e.strerror or e})") from e
    if not folder.is_dir():
        raise DataError(f"{p}: folder not found: {folder.absolute()}")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, not a file")
    try:
        # Same folder as the target: os.replace is atomic only within one filesystem.
        fd, tmp = _create_temp(folder, p.name)
    except OSError as e:
        raise DataError(f"{p}: cannot write ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):  # a replaced file keeps its mode
            os.chmod(tmp, os.stat(p).st_mode & 0o7777)
        os.replace(tmp, p)
    except BaseException as e:
        # Suppress any OSError here: failing to remove the temporary file must not hide why
        # the write failed.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise DataError(f"{p}: cannot write ({e.strerror or e})") from e
        raise
    _fsync_folder(folder)


def _create_temp(folder: Path, name: str) -> tuple[int, Path]:
    """A new, empty file beside ``name``, opened for writing, with a plain ``open()``'s mode.

    Not ``tempfile.mkstemp``: it makes 0600 files, and learning the umask to widen them means
    setting it, process-wide and racing any other thread creating a file. ``O_EXCL`` with mode
    0666 lets the kernel apply the umask, as it does for ``open()``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = folder / f".{name}.{os.urandom(4).hex()}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def _fsync_folder(folder: Path) -> None:
    # The rename itself is durable only once the folder entry is on disk (POSIX); best effort.
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _stack(name: str, outputs: Any) -> np.ndarray:
    import numpy as np

    try:
        if isinstance(outputs, np.ndarray):
            arr = outputs
        elif len(outputs) == 0:
            arr = np.asarray([])
        else:
            arr = np.stack([np.asarray(o) for o in outputs])
    except (ValueError, TypeError) as e:
        raise DataError(
            f"{name}: outputs cannot be stacked into one array ({_first_line(e)}); use .jsonl"
        ) from e
    if arr.dtype == object:
        raise DataError(f"{name}: outputs are Python objects, not numbers; use .jsonl")
    return arr


def _is_multi(outputs: Any) -> bool:
    """Several outputs per item: :class:`~tuner.models.columns.Rows`, or a list whose items are tuples."""
    from tuner.models.columns import Rows

    if isinstance(outputs, Rows):
        return True
    if hasattr(outputs, "dtype") or not len(outputs):
        return False
    first = next((o for o in outputs if o is not None), None)
    return isinstance(first, tuple)


def _columns(name: str, outputs: Any, multi: bool) -> list[Any]:
    """Outputs as one sequence per output: the tuples' elements side by side."""
    if not multi:
        return [outputs]
    from tuner.models.columns import Rows

    if isinstance(outputs, Rows):  # the arrays whole, as the model gave them
        return list(outputs.outputs)
    width = len(next(o for o in outputs if o is not None))
    cols: list[list[Any]] = [[] for _ in range(width)]
    for o in outputs:
        if not isinstance(o, tuple) or len(o) != width:
            raise DataError(f"{name}: items have different numbers of outputs; use .jsonl")
        for c, v in zip(cols, o, strict=True):
            c.append(v)
    return cols


def _write_jsonl(f: IO[bytes], name: str, values: Iterable[Any], noun: str) -> None:
    for i, value in enumerate(values):
        try:
            line = json.dumps(value, default=_jsonable, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise DataError(f"{name}: {noun} {i} cannot be written as JSON ({_first_line(e)})") from e
        f.write(line.encode("utf-8"))
        f.write(b"\n")


def _jsonable(value: Any) -> Any:
    """json.dumps hook: numpy arrays become lists, numpy scalars Python scalars."""
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _first_line(e: BaseException) -> str:
    msg = str(e).strip()
    return msg.splitlines()[0] if msg else type(e).__name__
