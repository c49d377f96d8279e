"""Reading a segment's end backwards (the writer's head and the shipper's committed part)
finds what reading it whole would: blocks of any size, lines longer than a block, a torn
tail, or no complete line at all."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.audit.log import last_complete_line

lines = st.lists(st.binary(max_size=9000).map(lambda b: b.replace(b"\n", b"x")), max_size=5)


@settings(max_examples=150, deadline=None)
@given(lines, st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), st.data())
def test_matches_a_whole_read(body_lines, torn, data):
    content = b"".join(line + b"\n" for line in body_lines) + torn
    size = data.draw(st.integers(0, len(content)))
    prefix = content[:size]
    end = prefix.rfind(b"\n")
    expected = (None, 0) if end == -1 else (prefix[prefix.rfind(b"\n", 0, end) + 1:end],
                                            end + 1)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "segment-00000001.jsonl"
        path.write_bytes(content)
        assert last_complete_line(path, size) == expected
        whole = content.rfind(b"\n")
        assert last_complete_line(path)[1] == whole + 1
