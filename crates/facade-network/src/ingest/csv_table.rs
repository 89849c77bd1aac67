//! A CSV file read by header name, row by row, tolerant of bad bytes and ragged rows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use csv::ByteRecord;

use super::IngestError;
use crate::diagnostics::Diagnostics;

/// A record running over more lines than this is an unclosed quote, even with the header's
/// number of fields (no post or account spans a thousand lines).
const RUNAWAY_LINES: u64 = 1_000;

/// Opens `path` as [`CsvTable::open`] does and hands every row to `read_row` with the file's
/// path; rows the table rejects (ragged, unreadable) never reach it.
pub fn read_rows(
    path: &Path,
    required: &[&str],
    known: &[&[&str]],
    diag: &mut Diagnostics,
    mut read_row: impl FnMut(&Row, &Path, &mut Diagnostics),
) -> Result<(), IngestError> {
    let mut table = CsvTable::open(path, required, known, diag)?;
    let path = table.path.clone();
    let mut record = ByteRecord::new();
    while let Some(row) = table.next_row(&mut record, diag) {
        read_row(&row, &path, diag);
    }
    Ok(())
}

pub struct CsvTable {
    pub path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    columns: HashMap<String, usize>,
    width: usize,
    /// Rows seen, reported to the diagnostics at the end of the file.
    rows: u64,
    /// The file's length when opened: a record read up to it may be cut short.
    len: u64,
}

/// One row that has the header's number of fields.
pub struct Row<'t> {
    pub line: u64,
    record: &'t ByteRecord,
    columns: &'t HashMap<String, usize>,
}

impl Row<'_> {
    /// The field of column `name` (trimmed), `None` when the file has no such column. Bytes
    /// that are not UTF-8 are replaced (the caller was warned by [`CsvTable::next_row`]).
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let index = *self.columns.get(name)?;
        let bytes = self.record.get(index)?;
        Some(match String::from_utf8_lossy(bytes) {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
            Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
        })
    }

    /// The field, or an empty string when the column is absent.
    pub fn text(&self, name: &str) -> Cow<'_, str> {
        self.get(name).unwrap_or(Cow::Borrowed(""))
    }
}

impl CsvTable {
    /// Opens `path` and reads its header. `required` columns must be present; columns not in
    /// any of the `known` lists are noted in the diagnostics as unused.
    pub fn open(
        path: &Path,
        required: &[&str],
        known: &[&[&str]],
        diag: &mut Diagnostics,
    ) -> Result<Self, IngestError> {
        diag.begin_file(path);
        let file = File::open(path).map_err(|source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let len = file.metadata().map_or(u64::MAX, |m| m.len());
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(BufReader::with_capacity(1 << 20, file));
        let header = reader
            .byte_headers()
            .map_err(|e| IngestError::format(path, format!("unreadable header: {e}")))?
            .clone();
        if header.is_empty() || header.iter().all(|h| h.is_empty()) {
            return Err(IngestError::format(
                path,
                "the file is empty (no header row)",
            ));
        }
        let columns: HashMap<String, usize> = header
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let name = String::from_utf8_lossy(name);
                (name.trim_start_matches('\u{feff}').trim().to_lowercase(), i)
            })
            .collect();
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|c| !columns.contains_key(*c))
            .collect();
        if !missing.is_empty() {
            return Err(IngestError::format(
                path,
                format!("missing required column(s) {}", missing.join(", ")),
            ));
        }
        let mut unused: Vec<String> = columns
            .keys()
            .filter(|c| !known.iter().any(|list| list.contains(&c.as_str())))
            .cloned()
            .collect();
        unused.sort();
        if !unused.is_empty() {
            diag.unused_columns
                .insert(path.display().to_string(), unused);
        }
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            width: header.len(),
            columns,
            rows: 0,
            len,
        })
    }

    /// Moves the reader to the line after the first line of the record at `start`.
    fn resume_after_first_line(&mut self, start: &csv::Position) -> std::io::Result<()> {
        let mut file = BufReader::new(File::open(&self.path)?);
        file.seek(SeekFrom::Start(start.byte()))?;
        let mut first_line = Vec::new();
        let read = file.read_until(b'\n', &mut first_line)?;
        let mut next = csv::Position::new();
        next.set_byte(start.byte() + read as u64)
            .set_line(start.line() + 1)
            .set_record(start.record() + 1);
        self.reader.seek(next).map_err(std::io::Error::other)
    }

    /// Why the last record (starting at `start`, read up to the end of the file) is cut short:
    /// the file ends inside a quoted field, or in the middle of a row. `None` for a whole row
    /// that merely lacks a final newline.
    fn cut_short(&self, start: &csv::Position, ragged: bool, fields: usize) -> Option<String> {
        let mut file = File::open(&self.path).ok()?;
        file.seek(SeekFrom::Start(start.byte())).ok()?;
        let mut tail = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut tail).ok()?;
        let quotes = tail.iter().filter(|&&b| b == b'"').count();
        if quotes % 2 == 1 && !self.rows_follow(&tail) {
            return Some(format!(
                "the file ends inside a quoted field of the record that opens on this line: \
                 it was cut short (a truncated download?), and this last record ({} bytes) is \
                 incomplete and not read",
                tail.len()
            ));
        }
        let ends_in_row = !tail.ends_with(b"\n") && !tail.ends_with(b"\r");
        (ragged && ends_in_row).then(|| {
            format!(
                "the file ends in the middle of this row ({fields} fields where the header has \
                 {}): it was cut short (a truncated download?), and the row is not read",
                self.width
            )
        })
    }

    /// Whether whole rows follow the first line of `tail`: then a quote left open there is a
    /// stray one (the rows after it are read as rows), not a file cut inside a field.
    fn rows_follow(&self, tail: &[u8]) -> bool {
        let Some(newline) = tail.iter().position(|&b| b == b'\n') else {
            return false;
        };
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(&tail[newline + 1..])
            .byte_records()
            .any(|r| r.is_ok_and(|r| r.len() == self.width))
    }

    fn end<'t>(&mut self, diag: &mut Diagnostics) -> Option<Row<'t>> {
        diag.count_rows(&self.path, std::mem::take(&mut self.rows));
        None
    }

    /// Reads the next row into `record`. Ragged rows and unreadable records are rejected in
    /// `diag` and skipped; non-UTF-8 rows are kept with a warning. `None` at the end.
    pub fn next_row<'t>(
        &'t mut self,
        record: &'t mut ByteRecord,
        diag: &mut Diagnostics,
    ) -> Option<Row<'t>> {
        loop {
            match self.reader.read_byte_record(record) {
                Ok(false) => return self.end(diag),
                Ok(true) => {}
                Err(err) => {
                    let line = err.position().map_or(0, |p| p.line());
                    self.rows += 1;
                    diag.reject(
                        &self.path,
                        line,
                        "malformed-row",
                        format!("unreadable CSV record: {err}"),
                    );
                    if matches!(err.kind(), csv::ErrorKind::Io(_)) {
                        return self.end(diag);
                    }
                    continue;
                }
            }
            let start = record
                .position()
                .cloned()
                .unwrap_or_else(csv::Position::new);
            let line = start.line();
            let spanned = self.reader.position().line().saturating_sub(line);
            self.rows += 1;
            let ragged = record.len() != self.width;
            if self.reader.position().byte() >= self.len {
                if let Some(why) = self.cut_short(&start, ragged, record.len()) {
                    diag.reject(&self.path, line, "truncated-file", why);
                    return self.end(diag);
                }
            }
            // A quote left open swallows the lines after it into one record: a ragged one,
            // or one running on for thousands of lines. Such a record is rejected alone and
            // reading resumes at its second line, so the rows it swallowed are read as rows.
            let swallowed = (ragged && spanned > 1) || spanned > RUNAWAY_LINES;
            if ragged || swallowed {
                let fields = format!(
                    "{} fields where the header has {}",
                    record.len(),
                    self.width
                );
                let why = if swallowed {
                    format!(
                        "a quoted field that opens on this line runs over {spanned} lines \
                         ({fields}): unclosed quote? The row is rejected and the lines after \
                         it are read as rows"
                    )
                } else {
                    fields
                };
                diag.reject(&self.path, line, "malformed-row", why);
                if swallowed {
                    if let Err(err) = self.resume_after_first_line(&start) {
                        let why = format!("could not resume reading after line {line}: {err}");
                        diag.reject(&self.path, line, "malformed-row", why);
                        return self.end(diag);
                    }
                }
                continue;
            }
            if std::str::from_utf8(record.as_slice()).is_err() {
                diag.warn(
                    &self.path,
                    line,
                    "non-utf8",
                    "bytes that are not UTF-8 were replaced by U+FFFD".into(),
                );
            }
            return Some(Row {
                line,
                record,
                columns: &self.columns,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, kind) of each message, and the `id` column of each row read.
    fn read(csv: &str) -> (Vec<(u64, &'static str)>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, csv).unwrap();
        let mut diag = Diagnostics::default();
        let mut ids = Vec::new();
        read_rows(
            &path,
            &["id"],
            &[&["id", "text", "lang"]],
            &mut diag,
            |row, _, _| ids.push(row.text("id").into_owned()),
        )
        .unwrap();
        let messages = diag.messages.iter().map(|m| (m.line, m.kind)).collect();
        (messages, ids)
    }

    #[test]
    fn an_unclosed_quote_costs_only_its_own_row() {
        let mut csv = String::from("id,text,lang\n1,fine,en\n2,\"never closed,en\n");
        for i in 3..=8 {
            csv.push_str(&format!("{i},row {i},en\n"));
        }
        let (messages, ids) = read(&csv);
        assert_eq!(messages, [(3, "malformed-row")]);
        assert_eq!(ids, ["1", "3", "4", "5", "6", "7", "8"]);
    }

    #[test]
    fn a_runaway_quote_with_the_right_field_count_is_caught_too() {
        // The quote opens in the last column: the record keeps two fields however far it runs.
        let mut csv = String::from("id,text\n1,\"open\n");
        for i in 2..=1_500 {
            csv.push_str(&format!("{i},row {i}\n"));
        }
        let (messages, ids) = read(&csv);
        assert_eq!(messages, [(2, "malformed-row")]);
        assert_eq!(ids.len(), 1_499);
        assert_eq!((ids[0].as_str(), ids[1_498].as_str()), ("2", "1500"));
    }

    #[test]
    fn a_file_cut_inside_a_quoted_field_is_one_truncated_record() {
        // Cut inside a multi-line text: one record, not one malformed row per line left.
        let csv = "id,text,lang\n1,fine,en\n2,\"first line\nsecond line\nthird";
        let (messages, ids) = read(csv);
        assert_eq!(messages, [(3, "truncated-file")]);
        assert_eq!(ids, ["1"]);
        // Cut inside the last column's quotes: the field count is right, the row is not whole.
        let (messages, ids) = read("id,text,lang\n1,fine,en\n2,ok,\"e");
        assert_eq!(messages, [(3, "truncated-file")]);
        assert_eq!(ids, ["1"]);
        // Cut between fields of the last row.
        let (messages, ids) = read("id,text,lang\n1,fine,en\n2,ok");
        assert_eq!(messages, [(3, "truncated-file")]);
        assert_eq!(ids, ["1"]);
        // A whole last row without a final newline is whole.
        let (messages, ids) = read("id,text,lang\n1,fine,en\n2,\"ok\",en");
        assert!(messages.is_empty(), "{messages:?}");
        assert_eq!(ids, ["1", "2"]);
    }

    #[test]
    fn quoted_newlines_in_a_whole_row_are_kept() {
        let (messages, ids) = read("id,text\n1,\"two\nlines\"\n2,next\n");
        assert!(messages.is_empty());
        assert_eq!(ids, ["1", "2"]);
    }
}
