//! facade's generic JSON Lines form (documented in README.md):
//! accounts `{"id", "handle", "display_name", "created_at", "profile_image"}` and
//! posts `{"id", "account", "time", "text", "repost_of", "reply_to", "urls", "hashtags"}`.
//! Ids may be strings or numbers; times RFC 3339 / `YYYY-MM-DD HH:MM:SS` or epoch seconds.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{add_post_or_reject, list_account, IngestError};
use crate::dataset::{Dataset, RawPost};
use crate::diagnostics::Diagnostics;
use crate::time::parse_time_ms;

/// Calls `each` with every JSON object of the file and its line; other lines are rejected.
fn for_each_object(
    path: &Path,
    diag: &mut Diagnostics,
    mut each: impl FnMut(&Map<String, Value>, u64, &mut Diagnostics),
) -> Result<(), IngestError> {
    let file = File::open(path).map_err(|source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    diag.begin_file(path);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut bytes = Vec::new();
    let (mut line, mut rows) = (0u64, 0u64);
    loop {
        bytes.clear();
        let read = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|source| IngestError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            diag.count_rows(path, rows);
            return Ok(());
        }
        line += 1;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rows += 1;
        let text = String::from_utf8_lossy(&bytes);
        if matches!(text, std::borrow::Cow::Owned(_)) {
            diag.warn(
                path,
                line,
                "non-utf8",
                "bytes that are not UTF-8 were replaced by U+FFFD".into(),
            );
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(object)) => each(&object, line, diag),
            Ok(_) => diag.reject(
                path,
                line,
                "malformed-row",
                "the line is JSON but not an object".into(),
            ),
            Err(err) if err.is_eof() && !bytes.ends_with(b"\n") => diag.reject(
                path,
                line,
                "truncated-file",
                format!("the file ends in the middle of this object (cut short?): {err}"),
            ),
            Err(err) => diag.reject(path, line, "malformed-row", format!("not JSON: {err}")),
        }
    }
}

/// A string or number field as text.
fn field(object: &Map<String, Value>, name: &str) -> Option<String> {
    match object.get(name)? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn string_list(object: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    match object.get(name)? {
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        Value::String(s) => Some(s.split_whitespace().map(str::to_owned).collect()),
        _ => None,
    }
}

pub fn read_jsonl_accounts(
    path: &Path,
    data: &mut Dataset,
    diag: &mut Diagnostics,
) -> Result<(), IngestError> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    for_each_object(path, diag, |object, line, diag| {
        let id = field(object, "id").unwrap_or_default();
        let created = field(object, "created_at").unwrap_or_default();
        if let Some(account) = list_account(data, diag, path, line, &id, &created) {
            account.handle = field(object, "handle").unwrap_or_default();
            account.display_name = field(object, "display_name").unwrap_or_default();
            account.profile_image = field(object, "profile_image").map(|p| resolve(&base, &p));
        }
    })
}

/// Relative image paths are relative to the accounts file.
fn resolve(base: &Path, image: &str) -> PathBuf {
    let image = Path::new(image);
    if image.is_absolute() {
        image.to_path_buf()
    } else {
        base.join(image)
    }
}

pub fn read_jsonl_posts(
    path: &Path,
    data: &mut Dataset,
    diag: &mut Diagnostics,
) -> Result<(), IngestError> {
    for_each_object(path, diag, |object, line, diag| {
        let id = field(object, "id").unwrap_or_default();
        let time = field(object, "time").unwrap_or_default();
        let Some(time_ms) = parse_time_ms(&time) else {
            diag.reject(
                path,
                line,
                "bad-time",
                format!("post {id}: time {time:?} is not a time"),
            );
            return;
        };
        let account = field(object, "account").unwrap_or_default();
        let text = field(object, "text").unwrap_or_default();
        let (repost_of, reply_to) = (field(object, "repost_of"), field(object, "reply_to"));
        let ids = [
            ("id", id.as_str()),
            ("account", account.as_str()),
            ("repost_of", repost_of.as_deref().unwrap_or("")),
            ("reply_to", reply_to.as_deref().unwrap_or("")),
        ];
        super::warn_lossy_ids(diag, path, line, &ids);
        if crate::time::minute_precision(&time) {
            diag.minute_precision_posts += 1;
        }
        let raw = RawPost {
            id: &id,
            account_id: &account,
            handle: None,
            time_ms,
            text: &text,
            repost_of: repost_of.as_deref(),
            reply_to: reply_to.as_deref(),
            urls: string_list(object, "urls").unwrap_or_default(),
            hashtags: string_list(object, "hashtags"),
        };
        add_post_or_reject(data, diag, path, line, raw);
    })
}
