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

use crate::dataset::{Dataset, PostRefusal, RawPost};
use crate::diagnostics::Diagnostics;

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

/// Adds a post, recording a refusal as a rejected row.
fn add_post_or_reject(
    data: &mut Dataset,
    diag: &mut Diagnostics,
    path: &Path,
    line: u64,
    raw: RawPost,
) {
    let id = raw.id.to_owned();
    match data.add_post(raw) {
        Ok(_) => diag.posts_read += 1,
        Err(PostRefusal::DuplicateId) => diag.reject(
            path,
            line,
            "duplicate-id",
            format!("post id {id} was already read; the first is kept"),
        ),
        Err(PostRefusal::EmptyId) => {
            diag.reject(path, line, "missing-id", "the post has no id".into())
        }
        Err(PostRefusal::EmptyAccount) => diag.reject(
            path,
            line,
            "missing-id",
            format!("post {id} has no account id"),
        ),
    }
}
