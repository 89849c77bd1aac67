//! Per-row diagnostics of an ingest: every rejected or repaired row is named with its file and
//! line, and counted, so that an analyst knows exactly what was (not) read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How many messages are kept in full (the first in reading order); all of them are counted,
/// and how many were not kept is said.
const KEPT_MESSAGES: usize = 1000;

/// What happened to one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The row was read, something in it was repaired or ignored.
    Warning,
    /// The row was not used.
    Rejected,
}

#[derive(Clone, Debug, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line of the row's first line in the file (the header is line 1 of a CSV).
    pub line: u64,
    pub severity: Severity,
    /// A stable short name (`bad-time`, `duplicate-id`, …), for counting.
    pub kind: &'static str,
    pub message: String,
}

/// All diagnostics of an ingest, and what was read.
#[derive(Debug, Default, Serialize)]
pub struct Diagnostics {
    /// Rows seen per file.
    pub rows: BTreeMap<String, u64>,
    pub accounts_read: u64,
    pub posts_read: u64,
    pub rejected: u64,
    pub warnings: u64,
    /// Count per kind, all rows.
    pub counts: BTreeMap<&'static str, u64>,
    /// The first messages in reading order (files in the order read, lines ascending).
    pub messages: Vec<Diagnostic>,
    /// Messages counted but not kept (beyond the first [`KEPT_MESSAGES`]).
    pub messages_not_kept: u64,
    /// Posts whose time is known to the minute only (an archive time without seconds and an
    /// id that is no Twitter snowflake to refine it): within a window of seconds they match
    /// as though their minute were exact.
    pub minute_precision_posts: u64,
    /// Columns present in a file that facade does not use (noted, not an error).
    pub unused_columns: BTreeMap<String, Vec<String>>,
    /// Files in the order reading began, to keep the first messages in reading order.
    #[serde(skip)]
    files: Vec<PathBuf>,
    /// Index into `messages` of the message latest in reading order, once full.
    #[serde(skip)]
    latest_kept: Option<usize>,
}

impl Diagnostics {
    pub fn warn(&mut self, file: &Path, line: u64, kind: &'static str, message: String) {
        self.warnings += 1;
        self.push(file, line, Severity::Warning, kind, message);
    }

    pub fn reject(&mut self, file: &Path, line: u64, kind: &'static str, message: String) {
        self.rejected += 1;
        self.push(file, line, Severity::Rejected, kind, message);
    }

    fn push(
        &mut self,
        file: &Path,
        line: u64,
        severity: Severity,
        kind: &'static str,
        message: String,
    ) {
        *self.counts.entry(kind).or_default() += 1;
        let diagnostic = Diagnostic {
            file: file.to_path_buf(),
            line,
            severity,
            kind,
            message,
        };
        if self.messages.len() < KEPT_MESSAGES {
            self.messages.push(diagnostic);
            return;
        }
        // Full: a message that comes earlier in reading order (a duplicate id found once
        // reading is done) replaces the latest one kept.
        self.messages_not_kept += 1;
        let latest = match self.latest_kept {
            Some(i) => i,
            None => self.find_latest(),
        };
        if self.order_key(&diagnostic) < self.order_key(&self.messages[latest]) {
            self.messages[latest] = diagnostic;
            self.latest_kept = Some(self.find_latest());
        } else {
            self.latest_kept = Some(latest);
        }
    }

    /// Notes that reading `file` begins (its messages sort after earlier files').
    pub fn begin_file(&mut self, file: &Path) {
        if !self.files.iter().any(|f| f == file) {
            self.files.push(file.to_path_buf());
        }
    }

    fn order_key(&self, message: &Diagnostic) -> (usize, u64) {
        let file = self.files.iter().position(|f| *f == message.file);
        (file.unwrap_or(usize::MAX), message.line)
    }

    fn find_latest(&self) -> usize {
        (0..self.messages.len())
            .max_by_key(|&i| self.order_key(&self.messages[i]))
            .unwrap_or(0)
    }

    /// Puts the kept messages back in reading order (files in the order read, lines
    /// ascending): duplicate post ids are only found once reading is done.
    pub fn order_messages(&mut self) {
        for message in &self.messages {
            if !self.files.contains(&message.file) {
                self.files.push(message.file.clone());
            }
        }
        let files = &self.files;
        // Stable: messages of one line keep the order they came in.
        self.messages
            .sort_by_cached_key(|m| (files.iter().position(|f| *f == m.file), m.line));
        self.latest_kept = None;
    }

    /// Adds `rows` rows seen in `file` (readers count locally and report once per file).
    pub fn count_rows(&mut self, file: &Path, rows: u64) {
        *self.rows.entry(file.display().to_string()).or_default() += rows;
    }

    /// One paragraph for a terminal.
    pub fn summary(&self) -> String {
        let rows: u64 = self.rows.values().sum();
        let mut text = format!(
            "read {rows} rows: {} accounts, {} posts; {} rows rejected, {} warnings",
            self.accounts_read, self.posts_read, self.rejected, self.warnings
        );
        if !self.counts.is_empty() {
            let kinds: Vec<String> = self
                .counts
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            text.push_str(&format!(" ({})", kinds.join(", ")));
        }
        if self.messages_not_kept > 0 {
            text.push_str(&format!(
                "; the first {} messages are kept in diagnostics.json, {} more counted only",
                self.messages.len(),
                self.messages_not_kept
            ));
        }
        if let Some(note) = self.minute_precision_note() {
            text.push_str("; ");
            text.push_str(&note);
        }
        text
    }

    /// What minute-precision times mean for the windows, when some posts have them.
    pub fn minute_precision_note(&self) -> Option<String> {
        (self.minute_precision_posts > 0).then(|| {
            format!(
                "{} of {} posts have minute-precision times only (no snowflake id to refine \
                 them): two of them match when their minutes are within the window, so a 60 s \
                 window can join posts up to 2 minutes apart and split posts seconds apart",
                self.minute_precision_posts, self.posts_read
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_messages_in_reading_order_are_kept_and_the_rest_counted() {
        let mut diag = Diagnostics::default();
        let (a, b) = (Path::new("a.csv"), Path::new("b.csv"));
        diag.begin_file(a);
        diag.begin_file(b);
        for line in 0..KEPT_MESSAGES as u64 + 50 {
            diag.reject(b, line + 2, "malformed-row", String::new());
        }
        // Found late (duplicates are found once reading ends) but earlier in reading order.
        for line in [7, 3] {
            diag.reject(a, line, "duplicate-id", String::new());
        }
        diag.order_messages();
        assert_eq!(diag.messages.len(), KEPT_MESSAGES);
        assert_eq!(diag.messages_not_kept, 52);
        assert_eq!(diag.rejected, KEPT_MESSAGES as u64 + 52);
        let first: Vec<(&Path, u64)> = diag.messages[..3]
            .iter()
            .map(|m| (m.file.as_path(), m.line))
            .collect();
        assert_eq!(first, [(a, 3), (a, 7), (b, 2)]);
        let last = diag.messages.last().unwrap();
        assert_eq!(last.line, KEPT_MESSAGES as u64 - 2 + 1);
        assert!(
            diag.summary().contains("52 more counted only"),
            "{}",
            diag.summary()
        );
    }
}
