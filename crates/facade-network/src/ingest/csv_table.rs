//! A CSV file read by header name, row by row, tolerant of bad bytes and ragged rows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use csv::ByteRecord;

use super::IngestError;
use crate::diagnostics::Diagnostics;

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
        let file = File::open(path).map_err(|source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
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
        })
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
            let line = record.position().map_or(0, |p| p.line());
            self.rows += 1;
            if record.len() != self.width {
                diag.reject(
                    &self.path,
                    line,
                    "malformed-row",
                    format!(
                        "{} fields where the header has {}",
                        record.len(),
                        self.width
                    ),
                );
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
