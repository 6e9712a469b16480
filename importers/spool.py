"""A temporary file of validated rows, so a file is validated whole before anything is written.

Validation streams the file once; the rows that will be inserted or updated are pickled here in
batches and replayed by the write phase. Memory stays at one batch, whatever the file's size.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator

INSERT = "insert"
UPDATE = "update"
BATCH = 5_000


class Spool:
    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="inspectbot-import-")
        self._buffers: dict[str, list] = {INSERT: [], UPDATE: []}
        self.counts = {INSERT: 0, UPDATE: 0}

    def add(self, op: str, item) -> None:
        buffer = self._buffers[op]
        buffer.append(item)
        self.counts[op] += 1
        if len(buffer) >= BATCH:
            self._flush(op)

    def _flush(self, op: str) -> None:
        if self._buffers[op]:
            pickle.dump((op, self._buffers[op]), self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._buffers[op] = []

    def batches(self) -> Iterator[tuple[str, list]]:
        """Every batch written, in order (inserts and updates interleaved as they came)."""
        for op in (INSERT, UPDATE):
            self._flush(op)
        self._file.seek(0)
        while True:
            try:
                yield pickle.load(self._file)
            except EOFError:
                return

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
