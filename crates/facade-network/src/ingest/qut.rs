//! The CSV layout of the QUT coordination-network-toolkit: `message_id, user_id, username,
//! repost_id, reply_id, message, timestamp, urls` (timestamp in seconds, urls space-separated).

use std::path::Path;

use csv::ByteRecord;

use super::csv_table::CsvTable;
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
    let mut table = CsvTable::open(
        path,
        &["message_id", "user_id", "timestamp"],
        &[COLUMNS],
        diag,
    )?;
    let path = table.path.clone();
    let mut record = ByteRecord::new();
    while let Some(row) = table.next_row(&mut record, diag) {
        let id = row.text("message_id");
        let stamp = row.text("timestamp");
        let Some(time_ms) = parse_time_ms(&stamp) else {
            diag.reject(
                &path,
                row.line,
                "bad-time",
                format!("message {id}: timestamp {stamp:?} is not a time"),
            );
            continue;
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
        add_post_or_reject(data, diag, &path, row.line, raw);
    }
    Ok(())
}
