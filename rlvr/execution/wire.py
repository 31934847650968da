"""The channel between the judge and the program: plain data in length-prefixed JSON frames.

Both sides use this module: the trusted judge imports it, and the sandboxed
interpreter gets it compiled with the runner (it imports nothing of rlvr), so
it must stay self-contained, standard library only. Frames are an 8-digit
length, then the body. From the program's side a body is JSON, decoded by the
judge with ``json`` under the limits below; from the judge's side it is
``marshal`` data, which only the program's side ever loads (``marshal`` is not
safe against a hostile sender, so it never travels the other way).

A value crosses as JSON with tags for what JSON lacks: ``{"f": hex}`` floats
(exact, ``inf`` and ``nan`` included), ``{"t": [...]}`` tuples, ``{"s": [...]}``
sets, ``{"z": [...]}`` frozensets, ``{"d": [[k, v], ...]}`` dicts (any hashable
keys), ``{"b": hex}`` bytes, ``{"c": [re, im]}`` complex numbers and
``{"o": [class name, {attribute: value}]}`` instances of a class the caller
allows (the tests' own helper classes). JSON strings, integers, booleans, null
and arrays (lists) are themselves. Nothing else can be expressed, so decoding
never runs code of the sender's and never builds an object of a type the
receiver did not name.

Limits: a frame is at most ``max_bytes`` (checked before it is read); a value
at most ``MAX_DEPTH`` deep and ``MAX_NODES`` elements; integers at most 4300
digits (Python's own limit on ``int`` from text).
"""

import os
import select
import time

MAX_DEPTH = 100
MAX_NODES = 1_000_000
HEADER = 8  # ASCII decimal length, zero-padded


class WireError(ValueError):
    """A frame or value that breaks the format or its limits."""


class ChannelClosed(EOFError):
    """The other side closed the channel (or died)."""


class ChannelTimeout(TimeoutError):
    """The deadline passed before a whole frame arrived."""


def to_wire(value, classes=None):
    """``value`` as JSON-ready data; raises WireError for anything not plain (or over the limits).

    ``classes`` maps names to the classes whose instances may cross (by name and
    ``__dict__``); instances of any other class, and subclasses of built-in types, are refused.
    """
    nodes = [0]
    by_type = {cls: name for name, cls in (classes or {}).items()}

    def walk(item, depth):
        nodes[0] += 1
        if depth > MAX_DEPTH or nodes[0] > MAX_NODES:
            raise WireError(f"a value deeper than {MAX_DEPTH} or larger than {MAX_NODES} elements")
        kind = type(item)
        if item is None or kind is bool or kind is int or kind is str:
            return item
        if kind is float:
            return {"f": item.hex()}
        if kind is list:
            return [walk(x, depth + 1) for x in item]
        if kind is tuple:
            return {"t": [walk(x, depth + 1) for x in item]}
        if kind is set or kind is frozenset:
            return {"s" if kind is set else "z": [walk(x, depth + 1) for x in item]}
        if kind is dict:
            return {"d": [[walk(k, depth + 1), walk(v, depth + 1)] for k, v in item.items()]}
        if kind is bytes:
            return {"b": item.hex()}
        if kind is complex:
            return {"c": [item.real.hex(), item.imag.hex()]}
        if kind in by_type and type(getattr(item, "__dict__", None)) is dict:
            return {"o": [by_type[kind], walk(dict(item.__dict__), depth + 1)]}
        raise WireError(f"an object of type {kind.__module__}.{kind.__qualname__}, not plain built-in data")

    return walk(value, 0)


def _reject(token):
    raise WireError(f"unexpected JSON token {token!r}")


def from_wire(data, classes=None):
    """The value ``data`` (JSON-ready, as :func:`to_wire` makes it) stands for; strict.

    Raises:
        WireError: a malformed tag, an unhashable key, an unknown class, a value over the limits.
    """
    nodes = [0]
    classes = classes or {}

    def walk(item, depth):
        nodes[0] += 1
        if depth > MAX_DEPTH or nodes[0] > MAX_NODES:
            raise WireError(f"a value deeper than {MAX_DEPTH} or larger than {MAX_NODES} elements")
        kind = type(item)
        if item is None or kind is bool or kind is int or kind is str:
            return item
        if kind is list:
            return [walk(x, depth + 1) for x in item]
        if kind is not dict or len(item) != 1:
            raise WireError("a malformed value")
        ((tag, body),) = item.items()
        try:
            return _TAGS[tag](body, lambda x: walk(x, depth + 1), classes)
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise WireError(f"a malformed {tag!r} value: {type(exc).__name__}") from None

    return walk(data, 0)


def _items(body, walk):
    if type(body) is not list:
        raise TypeError("not a list")
    return [walk(x) for x in body]


def _float(body):
    if type(body) is not str:
        raise TypeError("not a string")
    return float.fromhex(body)


def _object(body, walk, classes):
    name, state = body
    cls = classes[name]
    value = cls.__new__(cls)
    attributes = walk(state)
    if type(attributes) is not dict or not all(type(k) is str for k in attributes):
        raise TypeError("attributes")
    value.__dict__.update(attributes)
    return value


_TAGS = {
    "f": lambda body, walk, classes: _float(body),
    "t": lambda body, walk, classes: tuple(_items(body, walk)),
    "s": lambda body, walk, classes: set(_items(body, walk)),
    "z": lambda body, walk, classes: frozenset(_items(body, walk)),
    "d": lambda body, walk, classes: {k: v for k, v in (_pair(p, walk) for p in _items(body, lambda x: x))},
    "b": lambda body, walk, classes: bytes.fromhex(body),
    "c": lambda body, walk, classes: complex(_float(body[0]), _float(body[1])),
    "o": _object,
}


def _pair(pair, walk):
    if type(pair) is not list or len(pair) != 2:
        raise TypeError("not a pair")
    return walk(pair[0]), walk(pair[1])


_ESCAPES = {i: f"\\u{i:04x}" for i in [*range(32), *range(0xD800, 0xE000)]}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})


def to_json(message):
    """JSON text of JSON-ready data (what :func:`to_wire` makes), without the ``json`` module.

    The sandboxed runner uses this: importing ``json`` (and ``re``) would cost
    each run more than the rest of its start-up. Non-ASCII text stays
    UTF-8; control characters and lone surrogates are escaped.

    Raises:
        WireError: something that is not JSON-ready.
        ValueError: an integer over Python's 4300-digit limit.
    """
    kind = type(message)
    if message is None:
        return "null"
    if kind is bool:
        return "true" if message else "false"
    if kind is int:
        return int.__repr__(message)
    if kind is str:
        return '"' + message.translate(_ESCAPES) + '"'
    if kind is list:
        return "[" + ",".join([to_json(x) for x in message]) + "]"
    if kind is dict and all(type(k) is str for k in message):
        return "{" + ",".join([to_json(k) + ":" + to_json(v) for k, v in message.items()]) + "}"
    raise WireError(f"cannot write {kind.__name__} as JSON")


def loads(body):
    """The message in a frame's body from the program's side: strict JSON, floats only as tags.

    Raises:
        WireError: not UTF-8, not JSON, a float or NaN/Infinity literal, nesting too deep.
    """
    import json  # the judge's side only: the sandboxed interpreter never pays for it

    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject, parse_float=_reject)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WireError(f"an undecodable frame ({type(exc).__name__})") from None


def write_all(fd, data):
    """Write all of ``data`` to ``fd`` (blocking)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send(fd, message):
    """Send one frame of JSON (the program's side to the judge's)."""
    body = to_json(message).encode("utf-8", "surrogatepass")
    write_all(fd, b"%08d" % len(body) + body)


def send_trusted(fd, message):
    """Send one frame of ``marshal`` data (the judge's side to the program's: never the other way)."""
    import marshal

    body = marshal.dumps(message)
    write_all(fd, b"%08d" % len(body) + body)


def read_exactly(fd, size, deadline):
    """``size`` bytes from ``fd``; raises ChannelClosed at end of file, ChannelTimeout past ``deadline``."""
    chunks, got = [], 0
    while got < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise ChannelTimeout("deadline passed")
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            raise ChannelClosed("channel closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive_trusted(fd, max_bytes):
    """Read one frame the judge sent (``marshal``; only the sandboxed side reads these)."""
    import marshal

    header = read_exactly(fd, HEADER, None)
    return marshal.loads(read_exactly(fd, int(header), None)) if header.isdigit() else None


def receive(fd, max_bytes, deadline=None):
    """Read one frame from the program's side and decode it strictly (see :func:`loads`).

    Args:
        fd: the descriptor to read.
        max_bytes: the largest body accepted; a longer one is refused before it is read.
        deadline: ``time.monotonic()`` value after which :class:`ChannelTimeout` is raised.

    Raises:
        ChannelClosed: the other side closed the channel.
        ChannelTimeout: the deadline passed.
        WireError: a malformed or oversized frame.
    """
    header = read_exactly(fd, HEADER, deadline)
    if not header.isdigit():
        raise WireError("a malformed frame header")
    size = int(header)
    if size > max_bytes:
        raise WireError(f"a frame of {size} bytes, over the {max_bytes}-byte limit")
    return loads(read_exactly(fd, size, deadline))
