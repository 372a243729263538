"""Commit leases: every blob a commit claims stays visible to a gc, however many it claims."""

from __future__ import annotations

import os
import time

import pytest

from checkpoint_magic.store import layout
from checkpoint_magic.store.backends import open_backend
from checkpoint_magic.store.leases import LEASE_DIGESTS, CommitLease, live_claims


def digests(n: int, start: int = 0) -> list[str]:
    return [f"{i:032x}" for i in range(start, start + n)]


def test_a_commit_of_many_blobs_keeps_every_claim_readable_by_a_gc(tmp_path):
    backend = open_backend(str(tmp_path))
    lease = CommitLease(backend)
    many = digests(40_000)  # one file of them would be 1.4 MB: more than a gc reads of a lease
    lease.claim_all(many[:100])
    for digest in many[100:3_000]:  # one by one, as a commit claims them
        lease.claim(digest)
    lease.claim_all(many[3_000:] + many[:10])  # claimed again: no-ops
    claimed, stale = live_claims(backend)
    assert claimed == set(many) and stale == []
    files = backend.list_files(layout.LEASES)
    assert len(files) == -(-40_000 // LEASE_DIGESTS)
    assert all(st.size < 1 << 20 for _, st in files)
    lease.release()
    assert live_claims(backend) == (set(), []) and backend.list_files(layout.LEASES) == []


def test_a_claim_that_cannot_be_written_is_not_counted_as_claimed(tmp_path, monkeypatch):
    backend = open_backend(str(tmp_path))
    lease = CommitLease(backend)
    lease.claim_all(digests(3))

    def fail(*args: object, **kwargs: object) -> bool:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(backend), "write", fail)
    with pytest.raises(OSError, match="No space"):
        lease.claim("f" * 32)
    monkeypatch.undo()
    assert "f" * 32 not in lease.claimed and lease.digests == digests(3)
    lease.claim("f" * 32)  # claimed again once the store can be written
    assert live_claims(backend)[0] == {*digests(3), "f" * 32}
    lease.release()


def test_a_long_commit_keeps_the_claims_of_its_filled_lease_files(tmp_path, monkeypatch):
    # A commit of many blobs that runs for over LEASE_TTL: its first files were filled (last
    # written) long ago, its current one is refreshed by every claim. The commit is alive,
    # so a gc must count every claim and remove none of its files.
    from checkpoint_magic.store import leases

    monkeypatch.setattr(leases, "LEASE_DIGESTS", 2)
    backend = open_backend(str(tmp_path))
    lease = CommitLease(backend)
    lease.claim_all(digests(4))  # two full files
    old = time.time() - leases.LEASE_TTL - 600
    for name in lease.names:
        os.utime(tmp_path / name, (old, old))
    lease.claim("f" * 32)  # the commit goes on: a third file, written now
    claimed, stale = live_claims(backend)
    assert claimed == {*digests(4), "f" * 32} and stale == []
    lease.release()
    # A commit whose every file is that old is stale, as before.
    lease = CommitLease(backend)
    lease.claim_all(digests(4))
    for name in lease.names:
        os.utime(tmp_path / name, (old, old))
    claimed, stale = live_claims(backend)
    assert claimed == set() and sorted(stale) == sorted(lease.names)
