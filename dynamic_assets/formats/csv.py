"""CSV: streamed by Arrow as record batches of text columns, with located errors.

Every column is read as text (an empty unquoted cell is null, a quoted "" is the empty string),
so a value never aborts a read; typing is the job of validation or of the `declare` command.
Arrow parses in blocks of `CSV_BLOCK`, which bounds memory; a field larger than that makes the
read start over with `CSV_BLOCK_LARGE` blocks, skipping the rows already yielded. Arrow reports
no line numbers, so a problem is located by re-reading the file with Python's strict parser
(on the error path only).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from dynamic_assets.formats.arrays import empty
from dynamic_assets.formats.errors import (
    DuplicateColumns,
    LoadError,
    MalformedCsv,
    column_difference,
)
from dynamic_assets.formats.hashing import HashingReader

CSV_BLOCK = 1 << 20  # parse block: bounds memory; huge fields retry with CSV_BLOCK_LARGE
CSV_BLOCK_LARGE = 64 << 20
HEADER_ONLY = "the file has a header but no data rows"
_PARSE = pacsv.ParseOptions(newlines_in_values=True)


def check_header(
    path: str,
    header: list[str],
    names: list[str] | None,
    *,
    exact: bool = True,
    sensitive: bool = False,
) -> None:
    """Refuses an empty header, a column named twice, and (with declared `names`) a header that
    does not name the declared columns (in the declared order when `exact`). With `sensitive`,
    no name read from the header is shown (a file without a header row gives its first record)."""
    if not header or header == [""]:
        raise LoadError(path, "the file is empty: no header row", line=1)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DuplicateColumns(path, dupes, sensitive=sensitive)
    if names is None:
        return
    difference = column_difference(header, names, sensitive=sensitive)
    if difference:
        raise LoadError(path, f"the header does not match the declaration: {difference}", line=1)
    if exact and header != names:
        raise LoadError(
            path,
            f"the columns are not in the declared order: found {', '.join(header)}; "
            f"declared {', '.join(names)} (declare `csv_header: by_name` to match columns by name)",
            line=1,
        )


class CsvFile:
    """One CSV file read as batches of text columns, hashed while it streams.

    `names` are the declared columns (batches hold them in that order); without them the header
    gives the columns (read by a first, short open of the file). `batches()` yields a batch of no
    rows first, so that a file of only a header still shows its columns. After the last batch,
    `finish()` returns the SHA-256 and size and refuses a quote left open to the end of the file.
    With `sensitive`, errors never show text read from the file.
    """

    def __init__(
        self,
        path: str,
        open: Callable[[], io.BufferedReader],
        names: list[str] | None = None,
        *,
        exact: bool = True,
        sensitive: bool = False,
    ):
        self.path = path
        self._open = open
        self.names = names
        self.exact = exact
        self.sensitive = sensitive
        self._stream: HashingReader | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        done = 0  # rows yielded: a read with larger blocks skips them
        for block in (CSV_BLOCK, CSV_BLOCK_LARGE):
            seen = 0
            try:
                for batch in self._read(block, header_batch=block == CSV_BLOCK):
                    n = batch.num_rows
                    if seen + n > done:
                        yield batch.slice(done - seen) if seen < done else batch
                        done = seen + n
                    seen += n
                return
            except pa.ArrowInvalid as exc:
                if "straddling" in str(exc) and block != CSV_BLOCK_LARGE:
                    self.close()
                    continue
                raise self._locate(str(exc)) from None
            except pa.ArrowException as exc:
                raise self._locate(str(exc)) from None
            except UnicodeDecodeError as exc:
                # Arrow hands the header's names to Python undecoded: bytes that are not UTF-8
                # (a compressed file, another encoding) fail there; the locator names the line.
                self.close()
                raise self._locate(str(exc)) from None

    def _read(self, block: int, *, header_batch: bool) -> Iterator[pa.RecordBatch]:
        names = self.names if self.names is not None else self._header_names(block)
        stream = self._stream = HashingReader(self._open(), count=b'"')
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=block, use_threads=True),
                parse_options=_PARSE,
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    null_values=[""],
                ),
            )
        except Exception:
            stream.close()
            raise
        check_header(
            self.path, reader.schema.names, self.names, exact=self.exact, sensitive=self.sensitive
        )
        schema = pa.schema([(n, pa.string()) for n in names])
        if header_batch:
            yield pa.RecordBatch.from_arrays([empty(pa.string()) for _ in names], schema=schema)
        for batch in reader:
            if batch.num_rows:
                yield pa.RecordBatch.from_arrays([batch.column(n) for n in names], schema=schema)

    def _header_names(self, block: int) -> list[str]:
        with self._open() as raw:
            probe = pacsv.open_csv(
                raw, read_options=pacsv.ReadOptions(block_size=block), parse_options=_PARSE
            )
            names = probe.schema.names
            probe.close()
        check_header(self.path, names, None, sensitive=self.sensitive)
        return names

    def finish(self) -> tuple[str, int]:
        """After the last batch: (SHA-256 hex digest, bytes); refuses an unterminated quote."""
        assert self._stream is not None
        stream = self._stream
        digest = stream.finish()
        if stream.counted % 2:
            # Arrow reads a quote left open to the end of the file as one long field; an odd
            # number of quote characters shows it. Confirm with a strict parser to name the line.
            problem = locate_csv_problem(
                self.path, self._open, "", strict_only=True, sensitive=self.sensitive
            )
            if problem is not None:
                raise problem
        return digest

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def _locate(self, arrow_message: str) -> LoadError:
        problem = locate_csv_problem(self.path, self._open, arrow_message, sensitive=self.sensitive)
        assert problem is not None
        return problem


def locate_csv_problem(
    path: str,
    open: Callable[[], io.BufferedReader],
    arrow_message: str,
    *,
    strict_only: bool = False,
    sensitive: bool = False,
) -> LoadError | None:
    """Find the line of a CSV problem Arrow reported without one (error path only: re-reads the file).

    With `strict_only`, return None unless the strict parser finds a malformed record. With
    `sensitive`, the error never shows text read from the file (nor a byte of it)."""
    with open() as raw:
        for lineno, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return LoadError(
                    path,
                    f"not valid UTF-8 at column {exc.start + 1}; save the file as UTF-8",
                    line=lineno,
                    detail=f"byte 0x{line[exc.start]:02x}",
                    sensitive=sensitive,
                )
    with open() as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, strict=True)
        start_line = 1
        records = 0
        try:
            header = next(reader, None)
            if header is None:
                return LoadError(path, "the file is empty: no header row", line=1)
            start_line = reader.line_num + 1
            for record in reader:
                records += 1
                if len(record) != len(header) and not strict_only:
                    return MalformedCsv(
                        path,
                        f"expected {len(header)} fields, found {len(record)}",
                        line=start_line,
                        sensitive=sensitive,
                    )
                start_line = reader.line_num + 1
        except csv.Error as exc:
            # Python's csv messages name the dialect's characters or a limit, never the data.
            reason = str(exc)
            if "unexpected end of data" in reason or "EOF" in reason:
                reason = "a quoted field is never closed (unterminated quote)"
            return MalformedCsv(
                path, f"malformed CSV: {reason}", line=start_line, sensitive=sensitive
            )
    if strict_only:
        return None
    if not records:
        # Arrow cannot tell the columns of a header without a line end and no rows.
        return LoadError(path, HEADER_ONLY, line=2)
    return MalformedCsv(path, "cannot parse the CSV", detail=arrow_message, sensitive=sensitive)
