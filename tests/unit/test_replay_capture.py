"""The capture format: what the archive sink writes and `replay serve FILE` reads."""

from __future__ import annotations

import gzip
from pathlib import Path

from upbitpipe.archive.capture import CaptureWriter, capture_files, read_capture

HOUR_MS = 3_600_000
T0 = 1_730_336_400_000  # 2024-10-31T01:00:00Z


def test_round_trip_with_partitions(tmp_path: Path) -> None:
    frames = [(T0 + i * 600_000, f'{{"ty":"trade","n":{i}}}'.encode()) for i in range(12)]
    with CaptureWriter(tmp_path, prefix="c1") as writer:
        for recv_ms, frame in frames:
            writer.write(recv_ms, frame)
    assert list(read_capture(tmp_path)) == frames
    names = [str(p.relative_to(tmp_path)) for p in capture_files(tmp_path)]
    assert names == [
        "dt=2024-10-31/hour=01/c1-0.jsonl.gz",
        "dt=2024-10-31/hour=02/c1-0.jsonl.gz",
    ]


def test_flush_makes_lines_readable_and_crash_loses_only_unflushed(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path)
    writer.write(T0, b'{"a":1}')
    writer.write(T0 + 1, b'{"a":2}')
    writer.flush()
    writer.write(T0 + 2, b'{"a":3}')  # never flushed: "crash" now
    assert writer.current_path is not None
    assert [frame for _, frame in read_capture(writer.current_path)] == [b'{"a":1}', b'{"a":2}']
    writer.flush()
    assert len(list(read_capture(tmp_path))) == 3


def test_truncated_member_reads_up_to_last_complete_one(tmp_path: Path) -> None:
    with CaptureWriter(tmp_path) as writer:
        writer.write(T0, b"first")
        writer.flush()
        path = capture_files(tmp_path)[0]
        first_member = path.stat().st_size
        writer.write(T0 + 1, b"second")
    data = path.read_bytes()
    path.write_bytes(data[: first_member + 12])  # cut the second member short
    assert list(read_capture(path)) == [(T0, b"first")]


def test_rotation_by_size_and_numbering_continues(tmp_path: Path) -> None:
    with CaptureWriter(tmp_path, max_file_bytes=200) as writer:
        for i in range(20):
            writer.write(T0 + i, (f"frame-{i}-" + "x" * 100).encode())
            writer.flush()
        assert writer.files_opened > 1
    with CaptureWriter(tmp_path, max_file_bytes=200) as again:
        again.write(T0 + 100, b"later")
    assert again.current_path is not None
    files = capture_files(tmp_path)
    assert files[-1] == again.current_path
    assert [ms for ms, _ in read_capture(tmp_path)] == [*range(T0, T0 + 20), T0 + 100]


def test_non_utf8_frames_survive(tmp_path: Path) -> None:
    with CaptureWriter(tmp_path) as writer:
        writer.write(T0, b"\xff\x00garbage")
    assert list(read_capture(tmp_path)) == [(T0, b"\xff\x00garbage")]


def test_two_writers_same_hour_are_merged_by_time(tmp_path: Path) -> None:
    with CaptureWriter(tmp_path, prefix="a") as a, CaptureWriter(tmp_path, prefix="b") as b:
        for i in range(5):
            a.write(T0 + 2 * i, b"a")
            b.write(T0 + 2 * i + 1, b"b")
    assert [ms for ms, _ in read_capture(tmp_path)] == list(range(T0, T0 + 10))


def test_plain_file_lines_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "cap.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"recv_ms": 5, "frame": "x"}\nnot json\n'))
    assert list(read_capture(path)) == [(5, b"x")]


def test_each_frame_lands_in_its_hour_at_the_edges_and_going_back(tmp_path: Path) -> None:
    stamps = [T0 - 1, T0, T0 + HOUR_MS - 1, T0 + HOUR_MS, T0 - 1, T0 + 5]
    with CaptureWriter(tmp_path, prefix="c1") as writer:
        for n, recv_ms in enumerate(stamps):
            writer.write(recv_ms, f'{{"n":{n}}}'.encode())
    by_hour: dict[str, list[int]] = {}
    for path in capture_files(tmp_path):  # going back to an hour opens a new file there
        stamps_here = by_hour.setdefault(str(path.parent.relative_to(tmp_path)), [])
        stamps_here.extend(r for r, _ in read_capture(path))
    by_hour = {hour: sorted(found) for hour, found in by_hour.items()}
    assert by_hour == {
        "dt=2024-10-31/hour=00": [T0 - 1, T0 - 1],
        "dt=2024-10-31/hour=01": [T0, T0 + 5, T0 + HOUR_MS - 1],
        "dt=2024-10-31/hour=02": [T0 + HOUR_MS],
    }
