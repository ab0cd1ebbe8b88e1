"""The input: the reference pipeline's transformed JSON files, read and validated.

A file is `.json` (a list of documents, or an object with a "documents" list) or `.jsonl`
(one document per line). A document:

    {"doc_id": "doc-1",                 required, non-empty string
     "title": "...", "source": "...",   optional strings
     "metadata": {...},                 optional object
     "chunks": [                        required list (may be empty)
        {"chunk_id": "doc-1-0",         required, non-empty string, unique across all files
         "doc_id": "doc-1",             optional; when given, equal to the document's
         "content": "text",             required string (may be empty: stored, not embedded);
                                        no NUL characters (PostgreSQL text cannot hold them)
         "drop": false,                 optional boolean, default false (stored, not embedded)
         "chunk_index": 0,              optional integer (-2**31 .. 2**31-1, PostgreSQL's
                                        integer), default its position in the list
         "metadata": {...}}]}           optional object

A document with any error is skipped whole (nothing of it is loaded) and the error names
the file, the document and the field; the other documents load.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import orjson

# chunks.chunk_index is a PostgreSQL integer
INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1


class Chunk(NamedTuple):
    """One chunk, validated. A named tuple, not a frozen dataclass: the reader makes one a
    chunk, and a tuple is made in 0.1 µs against the dataclass's 0.4-0.5 µs."""

    chunk_id: str
    doc_id: str
    chunk_index: int
    content: str
    drop: bool
    metadata: dict

    @property
    def embeddable(self) -> bool:
        """Dropped and empty chunks are stored but not embedded."""
        return not self.drop and self.content != ""


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: "str | None"
    source: "str | None"
    metadata: dict
    chunks: tuple
    file: str


@dataclass
class Corpus:
    documents: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # readable, one line each

    @property
    def chunks(self) -> list:
        return [c for d in self.documents for c in d.chunks]


class InputError(ValueError):
    """A record that does not follow the input format; the message says where and what."""


def _where(file: str, doc: "str | int", field_name: str = "") -> str:
    doc_part = f"document {doc!r}" if isinstance(doc, str) else f"document #{doc + 1}"
    return f"{file}: {doc_part}" + (f": {field_name}" if field_name else "")


def _shown(value) -> str:
    return json.dumps(value, ensure_ascii=True)[:60]


def _optional(obj: dict, key: str, kind, where: str, default=None, parsed=False):
    value = obj.get(key, default)
    wrong_type = value is not None and not isinstance(value, kind)
    if wrong_type or (kind is int and isinstance(value, bool)):
        expected = {str: "a string", dict: "an object", bool: "true or false", int: "an integer"}
        raise InputError(f"{where}.{key}: expected {expected[kind]}, got {_shown(value)}")
    if isinstance(value, str):
        _storable(value, f"{where}.{key}", parsed)
    if isinstance(value, dict):
        _storable_json(value, f"{where}.{key}", parsed)
    return value


def _storable(text: str, where: str, parsed: bool = False) -> str:
    """A string PostgreSQL's text can hold: no NUL, and UTF-8 (no lone surrogates). parsed:
    the text came from orjson, which lets no lone surrogate through."""
    if "\x00" in text:
        raise InputError(f"{where}: contains NUL characters, which PostgreSQL cannot store")
    if parsed:
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(
            f"{where}: not valid Unicode ({e.reason} at character {e.start})"
        ) from None
    return text


def _storable_json(value: dict, where: str, parsed: bool = False) -> None:
    """An object jsonb can hold: no NaN or Infinity, no NUL, valid Unicode. parsed: the
    object came from orjson, which reads no NaN, Infinity or lone surrogate: only NUL is left
    to look for (orjson writes it \\u0000)."""
    if parsed:
        if not value:
            return
        try:
            if b"\\u0000" not in orjson.dumps(value):
                return
        except TypeError:  # not what orjson reads (an integer beyond 64 bits): as below
            pass
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise InputError(f"{where}: contains NaN or Infinity, which jsonb cannot store") from None
    if "\\u0000" in text:
        raise InputError(f"{where}: contains NUL characters, which jsonb cannot store")
    _storable(text, where)


def _required_id(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: required, a non-empty string")
    return _storable(value, where)


def parse_document(
    raw, file: str, position: int, parsed: bool = False, nul_free: bool = False
) -> Document:
    """One document record, validated; raises InputError naming file, document and field.
    parsed: the record came from orjson (see _loads); nul_free: and from a file without a
    \\u0000 escape, so none of its strings holds NUL (JSON has no other way to write one)."""
    nul_free = nul_free and parsed
    if not isinstance(raw, dict):
        raise InputError(f"{_where(file, position)}: expected an object, got {type(raw).__name__}")
    doc_id = _required_id(raw.get("doc_id"), _where(file, position, "doc_id"))
    where = _where(file, doc_id)
    title = _optional(raw, "title", str, where, parsed=parsed)
    source = _optional(raw, "source", str, where, parsed=parsed)
    metadata = _optional(raw, "metadata", dict, where, parsed=parsed) or {}
    chunks_raw = raw.get("chunks")
    if not isinstance(chunks_raw, list):
        raise InputError(f"{where}: chunks: required, a list of chunk objects")
    chunks = []
    new = tuple.__new__
    for i, c in enumerate(chunks_raw):
        if nul_free and type(c) is dict:
            # what orjson read from a file without NUL: a chunk of the exact types of the
            # format, made at once; anything else takes the checks below, which say what is
            # wrong (a bench corpus's 40,000 chunks: 0.1 s of validation -> 0.03 s)
            chunk_id = c.get("chunk_id")
            content = c.get("content")
            drop = c.get("drop", False)
            index = c.get("chunk_index", i)
            chunk_metadata = c.get("metadata")
            if (
                type(chunk_id) is str
                and chunk_id
                and type(content) is str
                and (drop is False or drop is True)
                and type(index) is int
                and INT4_MIN <= index <= INT4_MAX
                and (chunk_metadata is None or type(chunk_metadata) is dict)
                and ("doc_id" not in c or c["doc_id"] == doc_id)
            ):
                chunks.append(
                    new(Chunk, (chunk_id, doc_id, index, content, drop, chunk_metadata or {}))
                )
                continue
        at = f"{where}: chunks[{i}]"
        if not isinstance(c, dict):
            raise InputError(f"{at}: expected an object, got {type(c).__name__}")
        chunk_id = _required_id(c.get("chunk_id"), f"{at}.chunk_id")
        at = f"{where}: chunk {chunk_id!r}"
        if c.get("doc_id", doc_id) != doc_id:
            raise InputError(f"{at}.doc_id: {_shown(c['doc_id'])} is not its document's {doc_id!r}")
        content = c.get("content")
        if not isinstance(content, str):
            raise InputError(f"{at}.content: required, a string (empty is allowed)")
        _storable(content, f"{at}.content", parsed)
        # null: as if absent (it raised a TypeError, or stored drop as NULL's false)
        drop = bool(_optional(c, "drop", bool, at, False))
        index = _optional(c, "chunk_index", int, at, i)
        index = i if index is None else index
        if not INT4_MIN <= index <= INT4_MAX:
            raise InputError(
                f"{at}.chunk_index: {index} is out of range ({INT4_MIN} to {INT4_MAX})"
            )
        chunk_metadata = _optional(c, "metadata", dict, at, parsed=parsed) or {}
        chunks.append(Chunk(chunk_id, doc_id, index, content, drop, chunk_metadata))
    return Document(doc_id, title, source, metadata, tuple(chunks), file)


def read_records(path: Path, how: "list | None" = None) -> list:
    """The raw document records of one file; raises InputError for a file that is not JSON.
    how: gets True appended when orjson read the whole file (see _loads), and a second True
    when the file also holds no \\u0000 escape (so no string of it holds NUL)."""
    fast = []
    data = path.read_bytes()
    if path.suffix == ".jsonl":
        text = _text(data, path)
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                records.append(_loads(line, path, n, fast))
        if how is not None and len(fast) == len(records):
            how.append(True)
            if b"\\u0000" not in data:
                how.append(True)
        return records
    # the bytes to orjson as read (it checks they are UTF-8); decoded to text only for
    # json, where orjson refuses them (a file of 1.7 MB: 2-3 ms less)
    data = _loads(data, path, None, fast)
    if how is not None and fast:
        how.append(True)
        if fast[-1] is not True:  # the file's bytes held no \\u0000 escape
            how.append(True)
    if isinstance(data, dict) and isinstance(data.get("documents"), list):
        return data["documents"]
    if isinstance(data, list):
        return data
    raise InputError(f"{path}: expected a list of documents or an object with a 'documents' list")


def _text(data: bytes, path: Path) -> str:
    """A file's bytes as its text, as Path.read_text() gives it (UTF-8, universal newlines)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


# each byte mapped to 1 where it is a digit, 0 elsewhere: bytes.translate makes the map of a
# file in one pass, and a run of 19 digits is then a substring search
_DIGITS = bytes(1 if 48 <= b <= 57 else 0 for b in range(256))
_LONG = b"\x01" * 19


def _long_digits(data: bytes) -> bool:
    """Whether the text holds a run of 19 digits or more (an integer beyond 64 bits, which
    orjson reads as a float): a translate and a substring search over the bytes (1.7 MB:
    1-2 ms, against 14 ms for numpy's diff of a digit mask and 30x that for a regular
    expression)."""
    return _LONG in data.translate(_DIGITS)


def _loads(text, path: Path, line: "int | None" = None, fast: "list | None" = None):
    """JSON text of a file (or of one line of a .jsonl file), str or its UTF-8 bytes: by
    orjson (about 3x json's speed; `fast` gets True appended, or, for bytes without a
    \\u0000 escape, "nul_free") unless it holds a run of 19 digits (an integer orjson would
    turn into a float) or orjson refuses it; then by json, whose errors are the ones shown
    (and which reads NaN and Infinity, for the checks to refuse)."""
    raw = isinstance(text, bytes)
    encoded = text if raw else text.encode("utf-8", "surrogatepass")
    if not _long_digits(encoded):
        try:
            data = orjson.loads(encoded)
        except orjson.JSONDecodeError:
            pass
        else:
            if fast is not None:
                fast.append("nul_free" if raw and b"\\u0000" not in encoded else True)
            return data
    if raw:
        text = _text(text, path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{line or e.lineno}:{e.colno}: not JSON: {e.msg}") from None
    except (ValueError, RecursionError) as e:  # an integer of thousands of digits; nesting
        where = f"{path}:{line}" if line else str(path)
        raise InputError(f"{where}: not JSON this loader can read: {str(e)[:80]}") from None


class Reader:
    """The documents of the given files (directories: their *.json and *.jsonl files),
    validated, given one at a time as they are read: a file is parsed whole, then its
    documents are given in order, so that a loader stores the first ones while the next
    are validated and the next file is read. Bad files and documents go to `errors` as they
    are met; so do documents that repeat a chunk_id or doc_id seen earlier (in the same file
    or another): the first one is kept, as with read(). `documents`: how many were given."""

    def __init__(self, paths):
        self.files = expand(paths)
        self.errors: list = []
        self.documents = 0

    def __iter__(self):
        seen: dict = {}  # chunk_id -> where it was first seen
        doc_seen: dict = {}
        for path in self.files:
            how: list = []
            try:
                records = read_records(path, how)
            except (InputError, OSError) as e:
                self.errors.append(str(e))
                continue
            parsed, nul_free = bool(how), len(how) > 1
            for position, raw in enumerate(records):
                try:
                    doc = parse_document(raw, str(path), position, parsed, nul_free)
                    ids = _check_unique(doc, seen, doc_seen)
                except InputError as e:
                    self.errors.append(str(e))
                    continue
                seen.update(dict.fromkeys(ids, f"{doc.file}: document {doc.doc_id!r}"))
                doc_seen[doc.doc_id] = doc.file
                self.documents += 1
                yield doc
            del records


def read(paths) -> Corpus:
    """Every document of the given files, validated, read whole (see Reader, which gives
    them as they are read)."""
    reader = Reader(paths)
    return Corpus(documents=list(reader), errors=reader.errors)


def _check_unique(doc: Document, seen: dict, doc_seen: dict) -> list:
    """The document's chunk_ids, checked: none twice in it, none in an earlier document
    (seen), and its doc_id new (doc_seen); raises InputError naming the first that is not."""
    if doc.doc_id in doc_seen:
        where = _where(doc.file, doc.doc_id)
        raise InputError(f"{where}: doc_id: also a document in {doc_seen[doc.doc_id]}")
    ids = [c.chunk_id for c in doc.chunks]
    mine = set(ids)
    if len(mine) == len(ids) and seen.keys().isdisjoint(mine):
        return ids  # the usual case, by set operations; else which one, in order, below
    where = _where(doc.file, doc.doc_id)
    mine = set()
    for c in doc.chunks:
        if c.chunk_id in mine:
            raise InputError(f"{where}: chunk {c.chunk_id!r}: chunk_id appears twice in it")
        if c.chunk_id in seen:
            raise InputError(
                f"{where}: chunk {c.chunk_id!r}: chunk_id already in {seen[c.chunk_id]}"
            )
        mine.add(c.chunk_id)
    raise AssertionError("unreachable: a chunk_id repeated or seen was not found")


def expand(paths) -> list:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix in (".json", ".jsonl"))
        else:
            out.append(p)
    return out
