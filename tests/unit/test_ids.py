"""Random UUIDs from the pooled CSPRNG read: version 4, unique across pool refills and threads, and never
shared with a forked child."""

from __future__ import annotations

import os
import threading
import uuid

from cds_service import ids


def test_ids_are_version_4_uuids_with_the_rfc_variant() -> None:
    for _ in range(600):  # more than two pool reads
        value = ids.uuid4()
        assert value.version == 4
        assert value.variant == uuid.RFC_4122
        assert uuid.UUID(str(value)) == value


def test_ids_do_not_repeat_across_pool_refills() -> None:
    drawn = [ids.uuid4() for _ in range(5_000)]  # about 20 reads of the pool
    assert len(set(drawn)) == len(drawn)


def test_threads_drawing_together_get_distinct_ids() -> None:
    drawn: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def draw(into: list[uuid.UUID]) -> None:
        into.extend(ids.uuid4() for _ in range(2_000))

    threads = [threading.Thread(target=draw, args=(bucket,)) for bucket in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for bucket in drawn for value in bucket]
    assert len(every) == 8_000
    assert len(set(every)) == 8_000


def test_a_forked_child_does_not_hand_out_its_parents_next_ids() -> None:
    ids.uuid4()  # the pool is filled and has ids left
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(reader)
        os.write(writer, b"".join(ids.uuid4().bytes for _ in range(10)))
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        received = pipe.read()
    os.waitpid(child, 0)
    child_ids = {received[i : i + 16] for i in range(0, len(received), 16)}
    assert len(child_ids) == 10
    parent_ids = {ids.uuid4().bytes for _ in range(10)}
    assert not child_ids & parent_ids
