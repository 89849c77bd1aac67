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
