//! The Twitter (X) Information Operations archive: `*_users_csv_hashed.csv` and
//! `*_tweets_csv_hashed.csv`, read by header name (column order differs between releases).

use std::path::Path;

use super::csv_table::{read_rows, Row};
use super::{add_post_or_reject, list_account, IngestError};
use crate::dataset::{Dataset, RawPost};
use crate::diagnostics::Diagnostics;
use crate::pylist::parse_list;
use crate::time::{minute_precision, parse_time_ms, refine_with_snowflake, refined_by_snowflake};

/// The users file's columns (the simulator writes them in this order).
pub const USER_COLUMNS: &[&str] = &[
    "userid",
    "user_display_name",
    "user_screen_name",
    "user_reported_location",
    "user_profile_description",
    "user_profile_url",
    "follower_count",
    "following_count",
    "account_creation_date",
    "account_language",
];

/// The tweets file repeats the users file's columns ([`USER_COLUMNS`]) and adds these.
const TWEET_COLUMNS: &[&str] = &[
    "tweetid",
    "tweet_language",
    "tweet_text",
    "tweet_time",
    "tweet_client_name",
    "in_reply_to_userid",
    "in_reply_to_tweetid",
    "quoted_tweet_tweetid",
    "is_retweet",
    "retweet_userid",
    "retweet_tweetid",
    "latitude",
    "longitude",
    "quote_count",
    "reply_count",
    "like_count",
    "retweet_count",
    "hashtags",
    "urls",
    "user_mentions",
    "poll_choices",
];

/// Reads the users file: one account per row.
pub fn read_twitter_users(
    path: &Path,
    data: &mut Dataset,
    diag: &mut Diagnostics,
) -> Result<(), IngestError> {
    read_rows(
        path,
        &["userid"],
        &[USER_COLUMNS],
        diag,
        |row, path, diag| read_user_row(row, path, data, diag),
    )
}

fn read_user_row(row: &Row, path: &Path, data: &mut Dataset, diag: &mut Diagnostics) {
    let id = row.text("userid");
    let created = row.text("account_creation_date");
    if let Some(account) = list_account(data, diag, path, row.line, &id, &created) {
        account.handle = row.text("user_screen_name").into_owned();
        account.display_name = row.text("user_display_name").into_owned();
    }
}

/// Reads the tweets file: one post per row. Accounts not in the users file are created from
/// the tweet's own user columns.
pub fn read_twitter_tweets(
    path: &Path,
    data: &mut Dataset,
    diag: &mut Diagnostics,
) -> Result<(), IngestError> {
    let known = [USER_COLUMNS, TWEET_COLUMNS];
    read_rows(
        path,
        &["tweetid", "userid"],
        &known,
        diag,
        |row, path, diag| read_tweet_row(row, path, data, diag),
    )
}

fn read_tweet_row(row: &Row, path: &Path, data: &mut Dataset, diag: &mut Diagnostics) {
    let tweet_id = row.text("tweetid");
    let archive_time = row.text("tweet_time");
    let ids = [
        "tweetid",
        "userid",
        "retweet_tweetid",
        "in_reply_to_tweetid",
    ];
    super::warn_lossy_row_ids(row, &ids, path, diag);
    let archive_ms = parse_time_ms(&archive_time);
    let refined = refine_with_snowflake(archive_ms, &tweet_id);
    if archive_ms.is_some()
        && minute_precision(&archive_time)
        && !refined_by_snowflake(archive_ms, &tweet_id)
    {
        diag.minute_precision_posts += 1;
    }
    let Some(time_ms) = refined else {
        diag.reject(
            path,
            row.line,
            "bad-time",
            format!(
                "tweet {tweet_id}: time {archive_time:?} is not a date and the id carries none"
            ),
        );
        return;
    };
    let text = row.text("tweet_text");
    let is_retweet_field = row.text("is_retweet");
    let is_retweet = ["true", "1", "yes"]
        .iter()
        .any(|t| is_retweet_field.eq_ignore_ascii_case(t));
    let mut retweet_of = row.text("retweet_tweetid").into_owned();
    if is_retweet && retweet_of.is_empty() {
        // Older releases leave the source empty: the retweeted text identifies it.
        diag.warn(
            path,
            row.line,
            "retweet-without-source",
            format!("tweet {tweet_id}: retweet of an unnamed tweet; keyed by its text"),
        );
        retweet_of = format!("text:{}", crate::text::normalise_text(&text));
    }
    let urls = list_column(row, "urls", path, diag).unwrap_or_default();
    let hashtags = list_column(row, "hashtags", path, diag);
    let user_id = row.text("userid");
    remember_account_columns(row, &user_id, data, path, diag);
    let handle = row.get("user_screen_name");
    let reply_to = row.get("in_reply_to_tweetid");
    let raw = RawPost {
        id: &tweet_id,
        account_id: &user_id,
        handle: handle.as_deref(),
        time_ms,
        text: &text,
        repost_of: Some(retweet_of.as_str()).filter(|r| !r.is_empty()),
        reply_to: reply_to.as_deref(),
        urls,
        hashtags,
    };
    add_post_or_reject(data, diag, path, row.line, raw);
}

/// A Python-literal list column; a malformed one is a warning and reads as absent.
fn list_column(row: &Row, name: &str, path: &Path, diag: &mut Diagnostics) -> Option<Vec<String>> {
    let field = row.get(name)?;
    match parse_list(&field) {
        Some(items) => Some(items),
        None => {
            diag.warn(
                path,
                row.line,
                "bad-list",
                format!("column {name}: {field:?} is not a list literal; ignored"),
            );
            None
        }
    }
}

/// Tweets files repeat the account's columns: use them for accounts the users file lacks.
fn remember_account_columns(
    row: &Row,
    user_id: &str,
    data: &mut Dataset,
    path: &Path,
    diag: &mut Diagnostics,
) {
    if user_id.is_empty() {
        return;
    }
    let ix = data.account_entry(user_id);
    let account = &mut data.accounts[ix as usize];
    if account.listed || account.created_ms.is_some() {
        return;
    }
    if account.display_name.is_empty() {
        account.display_name = row.text("user_display_name").into_owned();
    }
    let created = row.text("account_creation_date");
    if !created.is_empty() {
        account.created_ms = parse_time_ms(&created);
        if account.created_ms.is_none() {
            diag.warn(
                path,
                row.line,
                "bad-time",
                format!("account {user_id}: creation date {created:?} is not a date"),
            );
        }
    }
}
