//! The CSV layout of the QUT coordination-network-toolkit: `message_id, user_id, username,
//! repost_id, reply_id, message, timestamp, urls` (timestamp in seconds, urls space-separated).

use std::path::Path;

use super::csv_table::{read_rows, Row};
use super::{add_post_or_reject, IngestError};
use crate::dataset::{Dataset, RawPost};
use crate::diagnostics::Diagnostics;
use crate::time::parse_time_ms;

/// The toolkit's columns, in its order.
pub const COLUMNS: &[&str] = &[
    "message_id",
    "user_id",
    "username",
    "repost_id",
    "reply_id",
    "message",
    "timestamp",
    "urls",
];

pub fn read_qut_csv(
    path: &Path,
    data: &mut Dataset,
    diag: &mut Diagnostics,
) -> Result<(), IngestError> {
    let required = ["message_id", "user_id", "timestamp"];
    read_rows(path, &required, &[COLUMNS], diag, |row, path, diag| {
        read_qut_row(row, path, data, diag)
    })
}

fn read_qut_row(row: &Row, path: &Path, data: &mut Dataset, diag: &mut Diagnostics) {
    let id = row.text("message_id");
    let stamp = row.text("timestamp");
    let ids = ["message_id", "user_id", "repost_id", "reply_id"];
    super::warn_lossy_row_ids(row, &ids, path, diag);
    let Some(time_ms) = parse_time_ms(&stamp) else {
        diag.reject(
            path,
            row.line,
            "bad-time",
            format!("message {id}: timestamp {stamp:?} is not a time"),
        );
        return;
    };
    let urls = row.text("urls").split(' ').map(str::to_owned).collect();
    let (account, handle, text) = (
        row.text("user_id"),
        row.get("username"),
        row.text("message"),
    );
    let (repost_of, reply_to) = (row.get("repost_id"), row.get("reply_id"));
    let raw = RawPost {
        id: &id,
        account_id: &account,
        handle: handle.as_deref(),
        time_ms,
        text: &text,
        repost_of: repost_of.as_deref(),
        reply_to: reply_to.as_deref(),
        urls,
        hashtags: None,
    };
    add_post_or_reject(data, diag, path, row.line, raw);
}
