//! Readers of account exports. Every reader goes row by row: a bad row is named in the
//! [`Diagnostics`] and skipped (or repaired and kept), never the end of the file.

mod csv_table;
mod jsonl;
mod qut;
mod twitter_io;

use std::path::{Path, PathBuf};

pub use jsonl::{read_jsonl_accounts, read_jsonl_posts};
pub use qut::{read_qut_csv, COLUMNS as QUT_COLUMNS};
pub use twitter_io::{
    read_twitter_tweets, read_twitter_users, USER_COLUMNS as TWITTER_USER_COLUMNS,
};

use crate::dataset::{Account, Dataset, PostRefusal, RawPost, MAX_ID_BYTES};
use crate::diagnostics::Diagnostics;
use crate::time::parse_time_ms;

#[cfg(test)]
mod tests {
    use super::written_as_float;

    #[test]
    fn ids_written_as_floats_are_recognised() {
        for lossy in [
            "3.65082069254156E+017",
            "1.198473762313818e+18",
            "1198473762313818000.0",
            "1e18",
        ] {
            assert!(written_as_float(lossy), "{lossy}");
        }
        for fine in [
            "1198473762313818624",
            "abc",
            "1.2.3",
            "e5",
            "",
            "12e",
            "tGpRof+e5=",
        ] {
            assert!(!written_as_float(fine), "{fine}");
        }
    }
}

/// A whole file could not be read (missing, unreadable, no header, a required column absent).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

impl IngestError {
    fn format(path: &Path, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Whether an id is written as a floating-point number (`3.65082069254156E+017`,
/// `1.198473762313818e+18`, `1198473762313818000.0`), as spreadsheets and pandas re-save
/// them: its last digits are lost.
pub fn written_as_float(id: &str) -> bool {
    let id = id.trim();
    let (mantissa, exponent) = match id.find(['e', 'E']) {
        Some(i) => (&id[..i], Some(&id[i + 1..])),
        None => (id, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.trim_start_matches(['+', '-'])));
    mantissa_ok && exponent_ok && (mantissa.contains('.') || exponent.is_some())
}

/// Warns, once per row, about ids written as floats (`columns`: name and value): such an id
/// may collide with another and gives no time.
fn warn_lossy_ids(diag: &mut Diagnostics, path: &Path, line: u64, columns: &[(&str, &str)]) {
    let lossy: Vec<String> = columns
        .iter()
        .filter(|(_, value)| written_as_float(value))
        .map(|(name, value)| format!("{name} {value}"))
        .collect();
    if lossy.is_empty() {
        return;
    }
    diag.warn(
        path,
        line,
        "float-id",
        format!(
            "{} written as a floating-point number (a spreadsheet or pandas re-save): its last \
             digits are lost, so it can collide with another id, and no time is derived from it",
            lossy.join(", ")
        ),
    );
}

/// [`warn_lossy_ids`] for the id `columns` of a CSV row, read in place (no copy of the ids
/// of every row: this runs on each of millions of rows).
fn warn_lossy_row_ids(row: &csv_table::Row, columns: &[&str], path: &Path, diag: &mut Diagnostics) {
    if !columns
        .iter()
        .any(|c| row.get(c).is_some_and(|v| written_as_float(&v)))
    {
        return;
    }
    let values: Vec<(&str, String)> = columns
        .iter()
        .map(|&c| (c, row.text(c).into_owned()))
        .collect();
    let pairs: Vec<(&str, &str)> = values.iter().map(|(c, v)| (*c, v.as_str())).collect();
    warn_lossy_ids(diag, path, row.line, &pairs);
}

/// Adds a post, recording a refusal as a rejected row. Duplicate ids are found and reported
/// when reading ends ([`Dataset::finish_reading_into`]).
fn add_post_or_reject(
    data: &mut Dataset,
    diag: &mut Diagnostics,
    path: &Path,
    line: u64,
    raw: RawPost,
) {
    // Borrowed from the row, not from `raw`: no copy for the posts that are accepted.
    let id = raw.id;
    let id = || id.chars().take(40).collect::<String>();
    match data.add_post_from(raw, path, line) {
        Ok(_) => diag.posts_read += 1,
        Err(PostRefusal::EmptyId) => {
            diag.reject(path, line, "missing-id", "the post has no id".into())
        }
        Err(PostRefusal::LongId) => diag.reject(
            path,
            line,
            "bad-id",
            format!("post id {}… is longer than {MAX_ID_BYTES} bytes", id()),
        ),
        Err(PostRefusal::EmptyAccount) => diag.reject(
            path,
            line,
            "missing-id",
            format!("post {} has no account id", id()),
        ),
        Err(PostRefusal::TooMany) => diag.reject(
            path,
            line,
            "too-many-posts",
            format!(
                "post {}: more than {} posts in one analysis",
                id(),
                u32::MAX
            ),
        ),
        Err(PostRefusal::Storage) => diag.reject(
            path,
            line,
            "storage",
            format!(
                "post {}: temporary storage failed (the run fails when reading ends)",
                id()
            ),
        ),
    }
}

/// Lists an account read from an accounts/users file and returns it for its details. Refused
/// (and reported) without an id or when the id was already listed; a creation time that does
/// not parse is a warning and stays unknown.
fn list_account<'d>(
    data: &'d mut Dataset,
    diag: &mut Diagnostics,
    path: &Path,
    line: u64,
    id: &str,
    created: &str,
) -> Option<&'d mut Account> {
    if id.is_empty() {
        diag.reject(path, line, "missing-id", "the account has no id".into());
        return None;
    }
    if data
        .account_ix(id)
        .is_some_and(|ix| data.accounts[ix as usize].listed)
    {
        diag.reject(
            path,
            line,
            "duplicate-id",
            format!("account {id} was already read; the first is kept"),
        );
        return None;
    }
    let created_ms = parse_time_ms(created);
    if created_ms.is_none() && !created.is_empty() {
        diag.warn(
            path,
            line,
            "bad-time",
            format!("account {id}: creation time {created:?} is not a time; left unknown"),
        );
    }
    diag.accounts_read += 1;
    let ix = data.account_entry(id);
    let account = &mut data.accounts[ix as usize];
    account.listed = true;
    account.created_ms = created_ms;
    Some(account)
}
