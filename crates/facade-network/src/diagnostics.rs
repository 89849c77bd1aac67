//! Per-row diagnostics of an ingest: every rejected or repaired row is named with its file and
//! line, and counted, so that an analyst knows exactly what was (not) read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How many messages are kept in full; all of them are counted.
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
    /// The first messages, in order.
    pub messages: Vec<Diagnostic>,
    /// Columns present in a file that facade does not use (noted, not an error).
    pub unused_columns: BTreeMap<String, Vec<String>>,
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
        if self.messages.len() < KEPT_MESSAGES {
            self.messages.push(Diagnostic {
                file: file.to_path_buf(),
                line,
                severity,
                kind,
                message,
            });
        }
    }

    /// Puts the kept messages back in reading order (files in the order their first message
    /// came, lines ascending): duplicate post ids are only found once reading is done.
    pub fn order_messages(&mut self) {
        let mut files: Vec<PathBuf> = Vec::new();
        for message in &self.messages {
            if !files.contains(&message.file) {
                files.push(message.file.clone());
            }
        }
        // Stable: messages of one line keep the order they came in.
        self.messages
            .sort_by_cached_key(|m| (files.iter().position(|f| *f == m.file), m.line));
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
        text
    }
}
