"""``/v1/predict``'s bodies: a request read into items the runtime takes, outcomes written back.

A request is JSON (``{"inputs": [item, ...]}`` or ``{"input": item}``) or a ``.npy`` array whose
rows are items (``application/x-npy``). Items are checked against the item the profile was measured
with (``model.input.item``) with :mod:`tuner.models.signature`, so a mismatch is the one line
``tuner run`` gives for a data file (without its command-line hint), e.g.

    request: items are float32[3], the profile was measured with float32[256] (each item is [3], not [256])

JSON has no float32: its numbers are cast to the item's dtype when the cast is exact in kind —
integers to a float item, yes; integral floats (``2.0``) to an integer item, yes; ``1.5`` to an
integer item, no (the message says float values, not integer); true/false only to a bool item; a
value outside the dtype's range, no. A ``.npy`` body is typed already: it is checked as ``tuner run``
checks a ``.npy`` file (float64 rows for a float32 profile are refused, not cast). Items measured
as a list of Python values (``int``, ``float``, ``str``) stay Python values; an item the profile
does not describe (``json``, or no record) is passed as JSON gives it.

Every refusal is a :class:`BadRequest`: its status (400, or 413 for a body too large) and one line.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner.engine import Failure
from tuner.errors import BadInput
from tuner.models.signature import ItemSignature, parse_named

__all__ = [
    "MEDIA_JSON",
    "MEDIA_NPY",
    "Answer",
    "BadRequest",
    "ItemSpec",
    "Parsed",
    "encode",
    "media_of",
    "parse",
]

MEDIA_JSON = "application/json"
MEDIA_NPY = "application/x-npy"
#: what a request's body holds, in the words of every 400 that says so
FORMS = '{"inputs": [item, ...]} or {"input": item} as application/json, or .npy rows as application/x-npy'
#: the most bytes one number takes in JSON, with its separator ("-1.2345678901234567e-308, ")
_JSON_NUMBER_BYTES = {"f": 26, "i": 22, "u": 22, "b": 7}
#: numpy dtypes of the Python values a list-of-values profile records (``int``, ``float`` ...)
_PYTHON_DTYPES = {"i": "int64", "f": "float64", "b": "bool", "c": "complex128"}


class BadRequest(BadInput):
    """A request the server refuses: ``status`` (400, or 413: too large) and one line saying why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ItemSpec:
    """One item as the profile records it: its signature (None: not recorded, not checked), the
    numpy dtype JSON numbers are cast to (None: no cast), and whether items are Python values."""

    signature: ItemSignature | None
    dtype: np.dtype[Any] | None
    python: bool

    @classmethod
    def of_profile(cls, profile: Any) -> ItemSpec:
        """The profile's item. A model with several named inputs is refused (BadInput): a request
        holds one array."""
        model = getattr(profile, "model", None)
        text = getattr(getattr(model, "input", None), "item", None)
        if not text:
            return cls(None, None, False)
        named = parse_named(text)
        if named is not None:
            raise BadInput(
                f"tuner serve takes a model with one input; this profile's has {len(named)} "
                f"({', '.join(named)}): serve it with Runtime.asubmit_all in your own app"
            )
        sig = ItemSignature.parse(text)
        if not sig.checkable:
            return cls(sig, None, False)
        python = sig.itemsize is None
        if python:
            name = _PYTHON_DTYPES.get(sig.kind or "")
            return cls(sig, np.dtype(name) if name else None, True)
        numeric = sig.kind is not None and sig.kind in "iufcb"
        return cls(sig, np.dtype(f"{sig.kind}{sig.itemsize}") if numeric else None, False)

    @property
    def dynamic(self) -> bool:
        """Some dimension of the item may take any size (``float32[?x256]``)."""
        return (
            self.signature is not None and self.signature.shape is not None and None in self.signature.shape
        )

    def json_bytes(self) -> int:
        """The most bytes one item takes in JSON, or 0 when the profile does not say."""
        sig = self.signature
        per = _JSON_NUMBER_BYTES.get(sig.kind or "") if sig is not None else None
        if sig is None or per is None or sig.shape is None or self.dynamic:
            return 0
        return per * math.prod(d or 1 for d in sig.shape) + 2 * len(sig.shape) + 2

    def warm_partition(self) -> Any:
        """A partition of one zero item, as the batcher would send it, or None when the profile
        does not say what an item is."""
        sig = self.signature
        if sig is None or self.dtype is None or sig.shape is None or self.dynamic:
            return None
        zeros = np.zeros((1, *(d or 1 for d in sig.shape)), dtype=self.dtype)
        return zeros.tolist() if self.python else zeros


@dataclass(frozen=True)
class Parsed:
    """A request's items, and the form it came in ("inputs", "input" or "npy": the answer's form)."""

    form: str
    items: Any

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Answer:
    """A response: status, body, media type."""

    status: int
    body: bytes
    media: str


# ---------------------------------------------------------------------------------------- requests


def media_of(content_type: str | None) -> str:
    """The request's media type, MEDIA_JSON or MEDIA_NPY; BadRequest for anything else."""
    if not content_type or not content_type.strip():
        raise BadRequest(f"no Content-Type: send {FORMS}")
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media not in (MEDIA_JSON, MEDIA_NPY):
        raise BadRequest(f"Content-Type {media}: send {FORMS}")
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise BadRequest(f"charset {value.strip()}: JSON bodies are UTF-8")
    return media


def parse(body: bytes, media: str, spec: ItemSpec, check: bool = True) -> Parsed:
    """The items of a request body; BadRequest (400) naming what is wrong."""
    if not body:
        raise BadRequest(f"empty body: send {FORMS}")
    if media == MEDIA_NPY:
        return Parsed("npy", _npy_items(body, spec, check))
    doc = _json(body)
    if not isinstance(doc, dict) or set(doc) not in ({"inputs"}, {"input"}):
        got = (
            f"an object with keys {', '.join(sorted(doc)) or '(none)'}"
            if isinstance(doc, dict)
            else _what(doc)
        )
        raise BadRequest(f'expected {{"inputs": [item, ...]}} or {{"input": item}}, got {got}')
    if "input" in doc:
        return Parsed("input", _typed([doc["input"]], spec, check, body))
    items = doc["inputs"]
    if not isinstance(items, list):
        raise BadRequest(f'"inputs" must be a list of items, got {_what(items)}')
    if not items:
        raise BadRequest('"inputs" is empty: send at least one item')
    return Parsed("inputs", _typed(items, spec, check, body))


def _json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"the body is not UTF-8 text (byte {e.start}: {e.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadRequest(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise BadRequest("malformed JSON: nested too deep") from None


def _what(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number"
    )


def _npy_items(body: bytes, spec: ItemSpec, check: bool) -> Any:
    try:
        arr = np.lib.format.read_array(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BadRequest(f"not a .npy array: {_line(e)}") from None
    if arr.ndim == 0:
        raise BadRequest("a .npy body holds rows of items: this one is a single value (0-d)")
    if len(arr) == 0:
        raise BadRequest("the .npy array has no rows: send at least one item")
    if check and spec.signature is not None:
        spec.signature.check(arr, "request", error=BadRequest)
    return arr


def _typed(items: list[Any], spec: ItemSpec, check: bool, body: bytes) -> Any:
    """JSON items as the model takes them: cast to the profile's dtype where exact, checked."""
    sig, dtype = spec.signature, spec.dtype
    if sig is None or not sig.checkable:
        return items  # json, or not recorded: as JSON gives them
    if dtype is None:  # text: nothing to cast; judged by the first item, as tuner run judges a .jsonl
        if check:
            sig.check(items, "request", error=BadRequest)
        return items
    if spec.dynamic:  # items may differ in size: each its own array
        return [_typed_array([x], spec, check, body)[0] for x in items]
    arr = _typed_array(items, spec, check, body)
    return arr.tolist() if spec.python else arr


def _typed_array(items: list[Any], spec: ItemSpec, check: bool, body: bytes) -> Any:
    sig, dtype = spec.signature, spec.dtype
    assert sig is not None and dtype is not None
    try:
        arr = np.array(items)
    except (ValueError, OverflowError, TypeError):
        if not check:
            return np.array(items, dtype=object)
        raise BadRequest(_uneven(items, sig)) from None
    if arr.dtype == object:
        if not check:
            return arr
        raise BadRequest(
            f"request: items hold values that are not numbers of one kind (null, an object, or an "
            f"integer beyond 64 bits); the profile was measured with {sig}"
        )
    if check and arr.dtype.kind in "iuf" and (b"true" in body or b"false" in body) and _has_bool(items):
        # numpy reads true/false among numbers as 1/0: refuse them as the bool values they are
        sig.check(np.zeros((len(items), *arr.shape[1:]), dtype=bool), "request", error=BadRequest)
    cast = _cast(arr, dtype, sig)
    if cast is None:
        if check:
            sig.check(arr, "request", error=BadRequest)  # says the kind of value and the shape
        return arr
    if check:
        sig.check(cast, "request", error=BadRequest)  # the shape
    return cast


def _cast(arr: Any, dtype: np.dtype[Any], sig: ItemSignature) -> Any:
    """``arr`` as ``dtype`` when the cast is exact in kind (None when it is not); BadRequest for a
    value outside the dtype's range."""
    src, dst = arr.dtype.kind, dtype.kind
    if arr.dtype == dtype or (src == dst == "U"):
        return arr
    if dst in "fc" and src in "iuf":
        with np.errstate(over="ignore"):  # said below, in the client's words
            out = arr.astype(dtype)
        if src == "f" and bool(np.any(np.isinf(out) & np.isfinite(arr))):
            raise BadRequest(
                f"request: a value is out of range for {dtype} (the profile was measured with {sig})"
            )
        return out
    if dst in "iu" and src in "iuf":
        if src == "f" and not bool(np.all(np.isfinite(arr) & (arr == np.trunc(arr)))):
            return None  # 1.5 for an integer item: not exact
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise BadRequest(
                f"request: a value is out of range for {dtype} (the profile was measured with {sig})"
            )
        return arr.astype(dtype)
    return None


def _uneven(items: list[Any], sig: ItemSignature) -> str:
    """Why items do not make one array: the first item whose shape differs from the first's."""
    try:
        first = np.shape(items[0])
        for i, x in enumerate(items[1:], 1):
            if np.shape(x) != first:
                return (
                    f"request: items differ in shape (item 0 is {_dims(first)}, item {i} is {_dims(np.shape(x))}); "
                    f"the profile was measured with {sig}"
                )
    except (ValueError, TypeError):
        pass
    return f"request: items are not arrays of one shape; the profile was measured with {sig}"


def _dims(shape: tuple[int, ...]) -> str:
    return f"[{'x'.join(str(d) for d in shape)}]" if shape else "a scalar"


def _has_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    return isinstance(value, list) and any(_has_bool(v) for v in value)


def _line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# ---------------------------------------------------------------------------------------- answers


def encode(form: str, outcomes: list[Any]) -> Answer:
    """The response to a request whose items came to ``outcomes`` (outputs, Failure records):
    200 in the request's form when every item succeeded; else 500, JSON, with every outcome."""
    failures = [{"index": i, **_failure(o)} for i, o in enumerate(outcomes) if isinstance(o, Failure)]
    if failures:
        outputs = [None if isinstance(o, Failure) else o for o in outcomes]
        doc: dict[str, Any] = (
            {"output": _plain(outputs)[0]} if form == "input" else {"outputs": _plain(outputs)}
        )
        doc["failures"] = failures
        return _json_answer(500, doc)
    if form == "npy":
        return _npy_answer(outcomes)
    if form == "input":
        return _json_answer(200, {"output": _plain(outcomes)[0]})
    return _json_answer(200, {"outputs": _plain(outcomes)})


def error(status: int, message: str) -> Answer:
    """``{"error": message}`` with ``status``."""
    return Answer(status, json.dumps({"error": message}).encode(), MEDIA_JSON)


def _failure(f: Failure) -> dict[str, Any]:
    record: dict[str, Any] = {"cause": f.cause, "attempts": f.attempts, "message": f.message}
    if f.exc_type:
        record["exc_type"] = f.exc_type
    return record  # never the traceback: the model's, from inside a worker, is the server's log's


def _json_answer(status: int, doc: dict[str, Any]) -> Answer:
    try:
        body = json.dumps(doc, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        return error(500, f"the model's output is not JSON ({_line(e)}): ask with {MEDIA_NPY}")
    return Answer(status, body, MEDIA_JSON)


def _npy_answer(outputs: list[Any]) -> Answer:
    try:
        arr = _stacked(outputs)
    except ValueError as e:
        return error(
            500, f"the model's outputs do not stack into one array ({_line(e)}): ask with {MEDIA_JSON}"
        )
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return Answer(200, buf.getvalue(), MEDIA_NPY)


def _stacked(outputs: list[Any]) -> Any:
    first = outputs[0]
    if isinstance(first, np.ndarray) and all(
        isinstance(y, np.ndarray) and y.shape == first.shape and y.dtype == first.dtype for y in outputs
    ):
        return np.stack(outputs)
    arr = np.asarray(outputs)
    if arr.dtype == object:
        raise ValueError("outputs of different shapes or types")
    return arr


def _plain(outputs: list[Any]) -> list[Any]:
    """Outputs as JSON values: arrays as nested lists, numpy scalars as numbers (one numpy call for
    outputs of one shape and dtype)."""
    first = outputs[0] if outputs else None
    if isinstance(first, (np.ndarray, np.generic)) and all(
        type(y) is type(first) and y.shape == first.shape and y.dtype == first.dtype for y in outputs
    ):
        return np.stack(outputs).tolist() if isinstance(first, np.ndarray) else np.array(outputs).tolist()
    return [_plain_one(y) for y in outputs]


def _plain_one(y: Any) -> Any:
    if isinstance(y, (np.ndarray, np.generic)):
        return y.tolist()
    if isinstance(y, (list, tuple)):
        return [_plain_one(v) for v in y]
    if isinstance(y, dict):
        return {str(k): _plain_one(v) for k, v in y.items()}
    return y
