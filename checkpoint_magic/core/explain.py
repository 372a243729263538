"""Explain a miss: why a call, block or cell recomputes although entries exist for it.

The answer compares what is being looked up (code fingerprint, its parts, input
fingerprints) with the entries already stored under the same namespace, and says the
closest thing that differs, in one line:

* ``code changed: helper (mod.helper)`` — the code of the function or one of its helpers;
* ``input changed: x`` — a watched input or argument has a new value;
* ``global changed: CONFIG`` — a data global the code reads has a new value;
* ``file changed: data.csv`` — a file or folder the call names has new content;
* ``new input: n_components`` — an input that no stored entry had;
* ``no entry yet`` — nothing was ever stored under this name.

Examples
--------
>>> from checkpoint_magic.core.explain import describe_difference
>>> old = {"code": "c1", "code_parts": {"m.f": "1", "m.helper": "2"}}
>>> old["inputs"] = {"x": "a", "y": "b"}
>>> describe_difference(old, "c2", {"m.f": "1", "m.helper": "3"}, {"x": "a", "y": "b"})
'code changed: m.helper'
>>> describe_difference(old, "c1", None, {"x": "a", "y": "z"})
'input changed: y'
>>> old["inputs"].update({"file:data.csv": "1", "global:CONFIG": "2"})
>>> new = {"x": "a", "y": "b", "file:data.csv": "3", "global:CONFIG": "2"}
>>> describe_difference(old, "c1", None, new)
'file changed: data.csv'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ..store.core import Store
from ..store.deferred import BatchWriter
from ..store.layout import LAST_MISS

__all__ = ["describe_difference", "explain_miss", "last_miss", "record_miss"]

logger = logging.getLogger(__name__)

#: At most this many recent entries of a namespace are compared (misses stay cheap).
MAX_CANDIDATES = 200
#: Seconds a deferred miss record waits before a timer thread writes it (exit writes the rest).
FLUSH_INTERVAL = 1.0


def _write_miss(slot: tuple[int, str], value: tuple[Store, dict[str, Any]]) -> None:
    store, record = value
    if store.backend.exists():  # never re-create a store deleted meanwhile
        store.write_record(slot[1], LAST_MISS, json.dumps(record).encode("utf-8"))


#: The last miss of each namespace, written by a thread: a miss costs no write of its own,
#: and a burst of misses of one namespace (a loop over new arguments) writes it once.
_miss_writer = BatchWriter("misses", FLUSH_INTERVAL)


def describe_difference(
    entry: Mapping[str, Any],
    code_fp: str,
    code_parts: Mapping[str, str] | None,
    input_fps: Mapping[str, str],
) -> str:
    """Say in one line how a lookup differs from a stored entry's manifest.

    Parameters
    ----------
    entry : Mapping of str to object
        The stored manifest (its ``code``, ``code_parts`` and ``inputs``).
    code_fp : str
        The code fingerprint of the lookup.
    code_parts : Mapping of str to str or None
        The own-code digest of each function the lookup reached, to name the one that changed.
    input_fps : Mapping of str to str
        The input fingerprints of the lookup, by name.

    Returns
    -------
    str
        The differences, ``"; "``-separated (``"input changed: x"``).

    Examples
    --------
    >>> describe_difference({"code": "c", "inputs": {"x": "1"}}, "c", None, {"x": "2"})
    'input changed: x'
    """
    reasons = []
    if entry.get("code") != code_fp:
        old_parts: Mapping[str, str] = entry.get("code_parts") or {}
        if code_parts and old_parts:
            changed = sorted(
                n for n in code_parts if n in old_parts and old_parts[n] != code_parts[n]
            )
            added = sorted(n for n in code_parts if n not in old_parts)
            removed = sorted(n for n in old_parts if n not in code_parts)
            detail = ", ".join(changed + [f"+{n}" for n in added] + [f"-{n}" for n in removed])
            reasons.append(f"code changed: {detail}" if detail else "code changed")
        else:
            reasons.append("code changed")
    old_inputs: Mapping[str, str] = entry.get("inputs") or {}
    changed_inputs = sorted(
        n for n in input_fps if n in old_inputs and old_inputs[n] != input_fps[n]
    )
    new_inputs = sorted(n for n in input_fps if n not in old_inputs)
    gone_inputs = sorted(n for n in old_inputs if n not in input_fps)
    for kind, prefix in (("file", "file:"), ("global", "global:"), ("input", "")):
        mine = [n[len(prefix) :] for n in changed_inputs if n.startswith(prefix)]
        changed_inputs = [n for n in changed_inputs if not n.startswith(prefix)]
        if mine:
            reasons.append(f"{kind} changed: " + ", ".join(mine))
    if new_inputs:
        reasons.append("new input: " + ", ".join(new_inputs))
    if gone_inputs:
        reasons.append("input no longer used: " + ", ".join(gone_inputs))
    return "; ".join(reasons) or "same code and inputs (the entry was removed or unreadable)"


def _score(
    entry: Mapping[str, Any], code_fp: str, input_fps: Mapping[str, str]
) -> tuple[int, bool, float]:
    """Closeness of an entry to a lookup: matching inputs first, then code; newer wins ties.

    Inputs come first: when an entry for these very inputs exists under other code, the
    answer to "why did it recompute?" is that the code changed, even if entries of the
    current code exist for other inputs.
    """
    inputs = entry.get("inputs") or {}
    same = sum(1 for n, fp in input_fps.items() if inputs.get(n) == fp)
    return (same, entry.get("code") == code_fp, float(entry.get("created", 0.0)))


def _recent_manifests(store: Store, namespace: str) -> list[dict[str, Any]]:
    try:
        keys = store.entry_keys_by_age(namespace)
    except OSError as exc:
        logger.debug("cannot list the entries of %s: %s", namespace, exc)
        return []
    manifests = []
    for key in keys[:MAX_CANDIDATES]:
        try:
            manifest = store.read_entry(namespace, key)
        except Exception as exc:  # a damaged or refused entry explains nothing; skip it
            logger.debug("skipping %s/%s while explaining a miss: %s", namespace, key, exc)
            continue
        if manifest is not None:
            manifests.append(manifest)
    return manifests


def explain_miss(
    store: Store,
    namespace: str,
    code_fp: str,
    input_fps: Mapping[str, str],
    code_parts: Mapping[str, str] | None = None,
    *,
    exclude_key: str | None = None,
    before: float | None = None,
) -> str:
    """Explain why a lookup missed: compared with the closest stored entry of the same namespace.

    ``exclude_key`` leaves out the entry the miss itself produced, and ``before`` the entries
    created after the miss, when the explanation is computed later (see :func:`last_miss`).

    Parameters
    ----------
    store : Store
        The checkpoint store.
    namespace : str
        The namespace whose entries are compared.
    code_fp : str
        The code fingerprint of the lookup.
    input_fps : Mapping of str to str
        The input fingerprints of the lookup, by name.
    code_parts : Mapping of str to str, optional
        The own-code digest of each function the lookup reached.
    exclude_key : str, optional
        The key of an entry to leave out.
    before : float, optional
        Leave out entries created at or after this time (seconds since the epoch).

    Returns
    -------
    str
        One line, e.g. ``"code changed: mod.helper"``.
    """
    candidates = [
        m
        for m in _recent_manifests(store, namespace)
        if m.get("key") != exclude_key and (before is None or float(m.get("created", 0.0)) < before)
    ]
    if not candidates:
        return "no entry yet"
    closest = max(candidates, key=lambda m: _score(m, code_fp, input_fps))
    return describe_difference(closest, code_fp, code_parts, input_fps)


def record_miss(
    store: Store,
    namespace: str,
    reason: str | None,
    when: float,
    *,
    request: Mapping[str, Any] | None = None,
    defer: bool = False,
) -> None:
    """Remember the last miss of a namespace, for ``checkpoint-magic why NAME`` (best effort).

    Either the ``reason`` is known already (it was logged), or the ``request`` (key, code,
    inputs, code parts) is kept so that :func:`last_miss` can explain it when asked: a miss
    costs one small write, not a comparison with every stored entry. With ``defer`` the
    write happens in a background thread (within :data:`FLUSH_INTERVAL`, at exit, or when
    :func:`last_miss` is asked in this process), only the namespace's latest miss is written.

    Parameters
    ----------
    store : Store
        The checkpoint store.
    namespace : str
        The namespace whose entries are compared.
    reason : str or None
        The explanation, when it was computed already.
    when : float
        The time of the miss (seconds since the epoch).
    request : Mapping of str to object, optional
        ``key``, ``code``, ``inputs`` and ``parts`` of the lookup, to explain it later.
    defer : bool, default False
        Write it from a background thread (the miss path of a call) instead of now.
    """
    record: dict[str, Any] = {"namespace": namespace, "time": when}
    if reason is not None:
        record["reason"] = reason
    if request is not None:
        record["request"] = dict(request)
    if defer:
        # Serialized by the writer: a burst of misses of one namespace encodes only its last.
        _miss_writer.submit((id(store), namespace), (store, record), _write_miss)
        return
    try:
        store.write_record(namespace, LAST_MISS, json.dumps(record).encode("utf-8"))
    except OSError as exc:
        logger.debug("could not record the miss of %s: %s", namespace, exc)


def last_miss(store: Store, namespace: str) -> dict[str, Any] | None:
    """Return the last recorded miss of a namespace (``{"namespace", "reason", "time"}``), if any.

    A miss recorded without its reason is explained now, against the entries that existed
    before it.

    Parameters
    ----------
    store : Store
        The checkpoint store.
    namespace : str
        The namespace whose entries are compared.

    Returns
    -------
    dict of str to object, or None
        The record; None when no miss was recorded or the record is unreadable.
    """
    _miss_writer.flush()
    try:
        raw = store.read_record(namespace, LAST_MISS)
        data = json.loads(raw) if raw is not None else None
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    request = data.get("request")
    if "reason" not in data and isinstance(request, dict):
        data["reason"] = explain_miss(
            store,
            namespace,
            str(request.get("code", "")),
            request.get("inputs") or {},
            request.get("parts"),
            exclude_key=request.get("key"),
            before=float(data.get("time", 0.0)),
        )
    return data
