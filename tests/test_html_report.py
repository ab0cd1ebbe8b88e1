"""The report as a person sees it: the HTML file opened in headless Chromium, the PNG, the
terminal; and being told: NOTIFY embedding_gate and `embedding-gate watch`."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import psycopg
import pytest

from loader.cli import main
from tests.cases import D, unit_random
from tests.helpers import ROOT, chunk, write_chunks

CHROMIUM = shutil.which("chromium")
KOREAN = "임베딩 품질은 데이터베이스가 지킵니다"
HOSTILE_ID = '<script>alert("id")</script>'
HOSTILE_CONTENT = "<img src=x onerror=alert(1)>"
ANSI = "\x1b[31mred\x1b[0m"


def chromium(*args: str, home) -> str:
    """Headless Chromium on a local file, with the flags this closed network needs."""
    if CHROMIUM is None:
        pytest.fail(
            "chromium is not installed: make test installs it (scripts/install-test-tools.sh)"
        )
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
    cmd += ["--no-first-run", "--disable-background-networking", "--disable-component-update"]
    cmd += ["--disable-sync", f"--user-data-dir={home}", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture
def stored(doc):
    """Clean and flagged chunks, Korean and English, ids and content that would be markup
    or terminal control if they were not escaped, one model with a blank reference."""
    blank = unit_random()
    doc.execute("SELECT set_blank_reference('m', %s)", [vec_text(blank)])
    doc.execute("SELECT set_blank_calibration('m', %s, 40)", [vec_text(np.zeros(D))])
    rows = [
        chunk(f"ok-{i}", unit_random(), content=f"paragraph {i}", embedding_model="m")
        for i in range(20)
    ]
    rows += [
        chunk("ko-blank", blank, content=KOREAN, embedding_model="m"),
        chunk(HOSTILE_ID, np.zeros(D), content=HOSTILE_CONTENT, embedding_model="m"),
        chunk(ANSI, np.zeros(D), content="ansi", embedding_model="m"),
    ]
    write_chunks(doc, rows)
    return doc


def vec_text(x) -> str:
    from tests.helpers import vec

    return vec(x)


def test_the_html_report_shows_the_database_s_numbers_in_chromium(stored, db_url, tmp_path):
    html_file, png = tmp_path / "report.html", tmp_path / "shot.png"
    assert main(["--database-url", db_url, "report", "--html", str(html_file)]) == 0
    text = html_file.read_text(encoding="utf-8")
    # self-contained: no tag fetches anything or runs anything (xmlns names fetch nothing)
    tags = re.findall(r"<[a-zA-Z][^>]*>", text)
    assert not [t for t in tags if re.search(r"\s(src|href)=", t) and "#" not in t]
    assert not [t for t in tags if re.match(r"<(script|link|iframe|object|embed)\b", t)]
    assert "@import" not in text and not re.search(r"url\((?!#)", text)  # url(#clip) is local
    dom = chromium("--dump-dom", html_file.as_uri(), home=tmp_path / "a")
    summary = stored.execute("SELECT embedded, low_quality FROM embedding_quality_summary")
    embedded, low = summary.fetchone()
    assert (embedded, low) == (23, 3)
    assert f"<b>{embedded}</b>embedded" in dom and f"<b>{low} (13.04%)</b>low quality" in dom
    assert KOREAN in dom  # the Korean chunk's preview, flagged blank_like
    assert "blank_like" in dom and "public.chunks" in dom
    # the hostile id and content are text on the page, not elements
    assert '&lt;script&gt;alert("id")&lt;/script&gt;' in dom
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert "<img" not in dom and dom.count("<script") == 0
    chromium(
        "--hide-scrollbars",
        "--window-size=1300,2600",
        f"--screenshot={png}",
        html_file.as_uri(),
        home=tmp_path / "b",
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000


def test_a_cjk_font_is_there_for_the_korean_previews():
    fonts = subprocess.run(["fc-list", ":lang=ko", "family"], capture_output=True, text=True)
    assert fonts.stdout.strip(), "no Korean font: make test installs fonts-noto-cjk"


@pytest.mark.parametrize("state", ["empty", "clean", "no blank reference"])
def test_the_report_of_a_database_with_nothing_to_show(db, db_url, tmp_path, state, capsys):
    if state != "empty":
        db.execute("INSERT INTO documents (doc_id) VALUES ('d1')")
        write_chunks(db, [chunk(f"c{i}", unit_random(), embedding_model="m") for i in range(5)])
    if state == "no blank reference":
        write_chunks(db, [chunk("z", np.zeros(D))])
    html_file, png = tmp_path / "r.html", tmp_path / "r.png"
    args = ["--database-url", db_url, "report", "--html", str(html_file), "--png", str(png)]
    assert main(args) == 0
    text = html_file.read_text(encoding="utf-8")
    # the blank_like panel says why it is empty (the text is drawn as paths; SVG notes it)
    assert "<!-- no model with a blank reference and a calibration -->" in text
    if state == "empty":
        assert "No chunk is flagged." in text and "<b>0</b>embedded" in text
    elif state == "clean":
        assert "No chunk is flagged." in text and "<b>5</b>embedded" in text
    else:
        assert "low_norm" in text and ">z<" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_terminal_report_prints_control_characters_as_escapes(stored, db_url, capsys):
    assert main(["--database-url", db_url, "report", "--limit", "50"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "chunk \\x1b[31mred\\x1b[0m (document d1)" in out
    assert f"chunk {HOSTILE_ID} (document d1)" in out  # the terminal shows markup as it is


def test_quality_by_day_counts_per_table_and_model(stored):
    rows = stored.execute(
        "SELECT table_name, embedding_model, checked, flagged, issue_counts"
        " FROM embedding_quality_by_day"
    ).fetchall()
    assert rows == [
        (
            "public.chunks",
            "m",
            23,
            3,
            {"blank_like": 1, "duplicate_vector": 1, "low_norm": 2, "low_variance": 2, "sparse": 2},
        )
    ]


def listen(conn) -> list:
    """The payloads of the notifications that arrived on embedding_gate."""
    return [json.loads(n.payload) for n in conn.notifies(timeout=0.5)]


def test_a_statement_that_stores_flagged_rows_notifies_and_a_clean_one_does_not(doc, db_url):
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN embedding_gate")
        write_chunks(doc, [chunk(f"ok-{i}", unit_random()) for i in range(50)])
        assert listen(listener) == []
        bad = [chunk(f"b-{i}", unit_random()) for i in range(8)]
        bad += [chunk("zero", np.zeros(D)), chunk("nan", embedding_raw=np.full(D, np.nan))]
        write_chunks(doc, bad, "copy")
        (event,) = listen(listener)
        assert event == {
            "table": "public.chunks",
            "mode": "flag",
            "checked": 10,
            "flagged": 2,
            "flagged_share": 0.2,
            "issues": {"nan_or_inf": 1, "low_norm": 1, "low_variance": 1, "sparse": 1},
        }
        doc.execute(
            "UPDATE chunks SET embedding = %s WHERE chunk_id = 'ok-1'", [vec_text(np.zeros(D))]
        )
        (event,) = listen(listener)
        assert (event["checked"], event["flagged"]) == (1, 1)


def watch(db_url, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "loader", "--database-url", db_url, "watch", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "listening on embedding_gate\n"
    return proc


def test_watch_prints_a_line_per_event_and_exits_when_a_statement_passes_the_share(doc, db_url):
    proc = watch(db_url, "--max-flagged-share", "0.5")
    write_chunks(
        doc, [chunk(f"a-{i}", unit_random()) for i in range(9)] + [chunk("z1", np.zeros(D))]
    )
    line = proc.stdout.readline()
    assert (
        "public.chunks: 1 of 10 flagged (10.0%, mode flag): low_norm 1, low_variance 1, sparse 1"
        in line
    )
    assert proc.poll() is None  # 10% is under the 50% bar: it goes on
    write_chunks(
        doc, [chunk(f"z-{i}", np.zeros(D)) for i in range(4)] + [chunk("b1", unit_random())]
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert "4 of 5 flagged (80.0%" in out and "flagged share 0.8000 passed 0.5" in err


def test_watch_runs_a_command_with_the_event_when_the_share_is_passed(doc, db_url, tmp_path):
    seen = tmp_path / "paged.json"
    proc = watch(db_url, "--max-flagged-share", "0", "--exec", f"cat > {seen}", "--events", "1")
    write_chunks(doc, [chunk("z", np.zeros(D))])
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert json.loads(seen.read_text())["flagged"] == 1
