"""The emulator's state in a JSON file: every data field of ``EmulatorState``, written
atomically (a temporary file, then a rename) and read back at start.

Fields are found generically (``dataclasses.fields``); what is not data (callables such as
``clock``, the fault settings, contract violations) is left out by type, not by name. Values
are tagged where JSON has no type of their own (tuples, bytes, counters, dicts with non-string
keys, webhooks), and a container reached twice (``events_by_transaction`` shares the records
of ``events``) is written once and referred to, so that it is shared again once loaded. The
RSA key that signs JWT webhooks is written as PEM beside the fields: the file holds signing
keys and is made readable by its owner only.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .faults import Faults
from .outbox import Webhook
from .state import EmulatorState

FORMAT = 1
_NOT_DATA = (Faults,)
_TRANSIENT = frozenset({"contract_violations"})
_CONTAINERS = (dict, list)


def _data_fields(state: EmulatorState) -> dict[str, Any]:
    found = {}
    for spec in dataclasses.fields(state):
        value = getattr(state, spec.name)
        if spec.name in _TRANSIENT or callable(value) or isinstance(value, _NOT_DATA):
            continue
        found[spec.name] = value
    return found


def _count(value: Any, seen: Counter[int]) -> None:
    """First pass: how often each container is reached (shared ones are written once)."""
    # A webhook's fields are its own (never shared): not counted, so no temporary is.
    if isinstance(value, _CONTAINERS):
        seen[id(value)] += 1
        if seen[id(value)] > 1:
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _count(key, seen)
            _count(item, seen)
    elif isinstance(value, (tuple, set, frozenset)):
        for item in value:
            _count(item, seen)


class _Encoder:
    def __init__(self, shared: set[int]) -> None:
        self.shared = shared
        self.ids: dict[int, int] = {}

    def encode(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, _CONTAINERS) and id(value) in self.shared:
            if id(value) in self.ids:
                return {"__ref__": self.ids[id(value)]}
            self.ids[id(value)] = len(self.ids)
            return {"__id__": self.ids[id(value)], "value": self._plain(value)}
        return self._plain(value)

    def _plain(self, value: Any) -> Any:
        if isinstance(value, Counter):
            return {"__counter__": [[self.encode(k), n] for k, n in value.items()]}
        if isinstance(value, dict):
            if all(isinstance(key, str) and not key.startswith("__") for key in value):
                return {key: self.encode(item) for key, item in value.items()}
            return {"__dict__": [[self.encode(k), self.encode(v)] for k, v in value.items()]}
        if isinstance(value, list):
            return [self.encode(item) for item in value]
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(item) for item in value]}
        if isinstance(value, (set, frozenset)):
            return {"__set__": [self.encode(item) for item in value]}
        if isinstance(value, bytes):
            return {"__bytes__": base64.b64encode(value).decode()}
        if isinstance(value, Decimal):
            return {"__decimal__": str(value)}
        if isinstance(value, Webhook):
            return {"__webhook__": self.encode(dataclasses.asdict(value))}
        raise TypeError(f"cannot persist a {type(value).__name__}")


class _Decoder:
    def __init__(self) -> None:
        self.ids: dict[int, Any] = {}

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "__ref__" in value:
            return self.ids[value["__ref__"]]
        if "__id__" in value:
            return self._shared(value["__id__"], value["value"])
        return self._tagged(value)

    def _shared(self, number: int, raw: Any) -> Any:
        # Registered before its items are read, so that a later reference finds it.
        if isinstance(raw, list):
            items: list[Any] = []
            self.ids[number] = items
            items.extend(self.decode(item) for item in raw)
            return items
        fields: dict[Any, Any] = {}
        self.ids[number] = fields
        fields.update(self.decode(raw))
        return fields

    def _tagged(self, value: dict[str, Any]) -> Any:
        if "__counter__" in value:
            return Counter({self.decode(k): n for k, n in value["__counter__"]})
        if "__dict__" in value:
            return {self.decode(k): self.decode(v) for k, v in value["__dict__"]}
        if "__tuple__" in value:
            return tuple(self.decode(item) for item in value["__tuple__"])
        if "__set__" in value:
            return {self.decode(item) for item in value["__set__"]}
        if "__bytes__" in value:
            return base64.b64decode(value["__bytes__"])
        if "__decimal__" in value:
            return Decimal(value["__decimal__"])
        if "__webhook__" in value:
            return Webhook(**self.decode(value["__webhook__"]))
        return {key: self.decode(item) for key, item in value.items()}


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def dump(state: EmulatorState) -> bytes:
    """The state as the file's bytes."""
    fields = _data_fields(state)
    seen: Counter[int] = Counter()
    _count(list(fields.values()), seen)
    encoder = _Encoder({key for key, n in seen.items() if n > 1})
    document = {
        "format": FORMAT,
        "fields": {name: encoder.encode(value) for name, value in fields.items()},
        "rsa_private_key": _pem(state.rsa_private_key),
    }
    return orjson.dumps(document)


def restore(state: EmulatorState, raw: bytes) -> None:
    """Put the file's fields into ``state`` (fields it does not name keep their defaults)."""
    document = orjson.loads(raw)
    if document.get("format") != FORMAT:
        raise ValueError(f"unknown emulator state format {document.get('format')!r}")
    known = {spec.name for spec in dataclasses.fields(state)}
    decoder = _Decoder()
    for name, value in document["fields"].items():
        if name in known:
            setattr(state, name, decoder.decode(value))
    key = serialization.load_pem_private_key(document["rsa_private_key"].encode(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the emulator state's signing key is not an RSA key")
    state.rsa_private_key = key


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file beside it, flushed to
    disk, then renamed over it (owner-only permissions: the file holds signing keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save(state: EmulatorState, path: Path) -> None:
    """Write the state to ``path`` atomically."""
    write_atomically(path, dump(state))


def load(state: EmulatorState, path: Path) -> bool:
    """Read ``path`` into ``state`` when it exists; ``False`` when there is no file yet."""
    if not path.exists():
        return False
    restore(state, path.read_bytes())
    return True
