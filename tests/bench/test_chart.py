"""The PNG writer and the results chart, decoded back with zlib and struct."""

from __future__ import annotations

import struct
import zlib

from bench import font, plot
from bench.png import Canvas


def decode(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGB pixels of an 8-bit RGB PNG without filters, as Canvas writes it."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + data)
        chunks[kind] = data
        pos += 12 + length
    width, height, depth, color, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, color) == (8, 2) and b"IEND" in chunks
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * 3 + 1
    assert all(raw[y * stride] == 0 for y in range(height))
    return width, height, b"".join(raw[y * stride + 1 : (y + 1) * stride] for y in range(height))


def test_rectangles_and_text_land_where_drawn() -> None:
    canvas = Canvas(40, 20)
    canvas.rect(2, 3, 4, 5, (10, 20, 30))
    canvas.rect(35, 15, 10, 10, (1, 2, 3))  # clipped at the edges
    end = canvas.text(10, 0, "I", scale=1)
    width, height, pixels = decode(canvas.png())
    assert (width, height) == (40, 20)

    def at(x: int, y: int) -> tuple[int, ...]:
        return tuple(pixels[(y * width + x) * 3 : (y * width + x) * 3 + 3])

    assert at(2, 3) == at(5, 7) == (10, 20, 30) and at(6, 3) == at(2, 8) == (255, 255, 255)
    assert at(39, 19) == (1, 2, 3)
    assert at(12, 1) == (0, 0, 0) and at(10, 1) == (255, 255, 255)  # "I": its stem is the middle column
    assert end == 10 + (font.WIDTH + 1)


def test_unknown_characters_draw_as_a_question_mark() -> None:
    assert font.glyph("~") == font.glyph("?") and font.glyph("b") == font.glyph("B")


RESULTS = {
    "date": "2026-11-21 10:00:00 UTC",
    "machine": {"cores": 2, "ram_gib": 23.5, "cpu_model": "AMD EPYC"},
    "load_average": {"start": [0.5, 0.4, 0.3], "end": [1.5, 0.6, 0.4]},
    "workload": {"trades": 100_000},
    "backfill": {"median": {"runs": 3, "layers": {"bronze": 90_000.0, "silver": 60_000.0, "gold": None}}},
    "backfill_trades_per_s": 40_000.0,
    "floor_trades_per_s": 300_000,
    "live": {
        "rates": {
            "500": {"silver_freshness_s": {"p50": 4.0, "p99": 8.0}, "gold_freshness_s": {"p50": 20.0, "p99": None}}
        }
    },
    "memory": {"peak_rss_gib": {"bronze": 1.1, "load generator": 0.1}, "in_stack": ["bronze"]},
    "stack_peak_rss_gib": 3.5,
}


def test_chart_has_a_row_per_figure_and_renders() -> None:
    panels = plot.panels(RESULTS)
    assert [len(p.rows) for p in panels] == [5, 2, 3]
    assert [p.target for p in panels] == [50_000, 10, 4]
    assert panels[2].rows[1].color == plot.FLOOR  # the load generator is not part of the stack
    width, height, _ = decode(plot.render(RESULTS))
    assert width == plot.WIDTH and height > 300
