//! The accounts and posts of an export, reduced to what the coordination signals compare:
//! keys (hashes) of normalised texts, reposted and replied-to ids, links, hashtag sequences,
//! and token sets for near-duplicates. Texts themselves are not kept: a post costs 48 bytes
//! of keys and 8 of id (a tweet id), so ten million posts take about 560 MB.

use std::borrow::Cow;
use std::path::PathBuf;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::text::{key_of_normalised, link_form, normalise_text, tokens_of_normalised, LinkMatch};

pub type AccountIx = u32;
pub type PostIx = u32;

/// What the detectors said of an account's profile picture.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FaceEvidence {
    /// Calibrated probability that the face is AI-made (`facade scan`'s image score).
    pub ai_score: f32,
    /// Above the detectors' operating threshold.
    pub ai_made: bool,
    /// 64-bit perceptual hash of the picture, to find the same face on several accounts.
    pub phash: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Account {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub created_ms: Option<i64>,
    pub profile_image: Option<PathBuf>,
    pub face: Option<FaceEvidence>,
    /// Read from an accounts/users file (not only seen as the author of posts).
    pub listed: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Post {
    pub account: AccountIx,
    pub time_ms: i64,
    /// Normalised text, for original posts (not reposts) with any text left.
    pub text_key: Option<Key>,
    pub repost_of: Option<Key>,
    pub reply_to: Option<Key>,
    /// The ordered sequence of hashtags, when there are at least two.
    pub hashtag_key: Option<Key>,
}

/// A 64-bit hash used as a key; non-zero so that `Option<Key>` takes 8 bytes (ten million
/// posts: 320 MB less).
pub type Key = std::num::NonZeroU64;

fn key(hash: u64) -> Key {
    Key::new(hash).unwrap_or(Key::MIN)
}

/// One post as an ingest format reads it.
#[derive(Debug, Default)]
pub struct RawPost<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub handle: Option<&'a str>,
    pub time_ms: i64,
    pub text: &'a str,
    pub repost_of: Option<&'a str>,
    pub reply_to: Option<&'a str>,
    pub urls: Vec<String>,
    /// `None`: take them from the text.
    pub hashtags: Option<Vec<String>>,
}

/// Choices that shape what is kept of each post.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    pub link_match: LinkMatch,
    /// Keep token sets for near-duplicate detection (costs memory: ~4 bytes a word).
    pub near_duplicates: bool,
    /// Posts with fewer distinct words are never near-duplicates (short posts match by chance).
    pub min_tokens: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            link_match: LinkMatch::default(),
            near_duplicates: true,
            min_tokens: 5,
        }
    }
}

/// Why a post was not added.
#[derive(Debug, PartialEq, Eq)]
pub enum PostRefusal {
    DuplicateId,
    EmptyId,
    EmptyAccount,
}

#[derive(Debug, Default)]
pub struct Dataset {
    pub accounts: Vec<Account>,
    pub posts: Vec<Post>,
    /// Post ids; `post_id(i)` reads one.
    post_ids: PostIds,
    /// (link key, post) for every link of an original post.
    pub links: Vec<(u64, PostIx)>,
    /// (post, start, len) into `token_data`, for original posts with enough words.
    pub token_spans: Vec<(PostIx, u32, u32)>,
    pub token_data: Vec<u32>,
    account_index: FxHashMap<String, AccountIx>,
    /// Ids seen so far, for duplicates: numeric ids as themselves, others by 128-bit hash.
    seen_numeric: FxHashSet<u64>,
    seen_other: FxHashSet<u128>,
    pub options: IngestOptions,
}

impl Dataset {
    pub fn new(options: IngestOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    pub fn account_ix(&self, id: &str) -> Option<AccountIx> {
        self.account_index.get(id).copied()
    }

    /// The account with this id, created (unlisted, no details) when first seen.
    pub fn account_entry(&mut self, id: &str) -> AccountIx {
        if let Some(ix) = self.account_index.get(id) {
            return *ix;
        }
        let ix = self.accounts.len() as AccountIx;
        self.accounts.push(Account {
            id: id.to_owned(),
            ..Account::default()
        });
        self.account_index.insert(id.to_owned(), ix);
        ix
    }

    pub fn post_id(&self, post: PostIx) -> Cow<'_, str> {
        self.post_ids.get(post)
    }

    /// Frees what only reading needs (the index of post ids seen, for duplicates).
    pub fn finish_reading(&mut self) {
        self.seen_numeric = FxHashSet::default();
        self.seen_other = FxHashSet::default();
    }

    /// False when `id` (`number` when it is one) was seen before; remembers it.
    fn first_sighting(&mut self, id: &str, number: Option<u64>) -> bool {
        match number {
            Some(n) => self.seen_numeric.insert(n),
            None => self.seen_other.insert(xxh3_128(id.as_bytes())),
        }
    }

    pub fn tokens(&self, span: (PostIx, u32, u32)) -> &[u32] {
        &self.token_data[span.1 as usize..(span.1 + span.2) as usize]
    }

    pub fn add_post(&mut self, raw: RawPost) -> Result<PostIx, PostRefusal> {
        let id = raw.id.trim();
        if id.is_empty() {
            return Err(PostRefusal::EmptyId);
        }
        if raw.account_id.trim().is_empty() {
            return Err(PostRefusal::EmptyAccount);
        }
        let number = canonical_number(id);
        if !self.first_sighting(id, number) {
            return Err(PostRefusal::DuplicateId);
        }
        let account = self.account_entry(raw.account_id.trim());
        if let Some(handle) = raw.handle.filter(|h| !h.is_empty()) {
            let entry = &mut self.accounts[account as usize];
            if entry.handle.is_empty() {
                entry.handle = handle.to_owned();
            }
        }
        let ix = self.posts.len() as PostIx;
        let repost_of = raw.repost_of.map(str::trim).filter(|s| !s.is_empty());
        let original = repost_of.is_none();
        // Normalised once: the text's key and its word set both read it.
        let normalised = if original {
            normalise_text(raw.text)
        } else {
            String::new()
        };
        self.posts.push(Post {
            account,
            time_ms: raw.time_ms,
            text_key: key_of_normalised(&normalised).map(key),
            repost_of: repost_of.map(|r| key(xxh3_64(r.as_bytes()))),
            reply_to: raw
                .reply_to
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|r| key(xxh3_64(r.as_bytes()))),
            hashtag_key: hashtag_key(raw.hashtags.as_deref(), raw.text).map(key),
        });
        self.post_ids.push(id, number);
        if original {
            self.keep_links(ix, &raw.urls);
            if self.options.near_duplicates {
                self.keep_tokens(ix, &normalised);
            }
        }
        Ok(ix)
    }

    fn keep_links(&mut self, post: PostIx, urls: &[String]) {
        let mut keys: Vec<u64> = urls
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(|u| xxh3_64(link_form(u, self.options.link_match).as_bytes()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        self.links.extend(keys.into_iter().map(|k| (k, post)));
    }

    fn keep_tokens(&mut self, post: PostIx, normalised: &str) {
        let tokens = tokens_of_normalised(normalised);
        if tokens.len() >= self.options.min_tokens {
            self.token_spans
                .push((post, self.token_data.len() as u32, tokens.len() as u32));
            self.token_data.extend_from_slice(&tokens);
        }
    }
}

/// Post ids in 8 bytes each where they are decimal numbers (tweet ids are), with other ids'
/// bytes kept aside: ten million tweet ids take 80 MB instead of 270.
#[derive(Debug, Default)]
struct PostIds {
    /// The number, or `OTHER | n` for the n-th id kept as text.
    ids: Vec<u64>,
    other_bytes: Vec<u8>,
    other_ends: Vec<usize>,
}

/// Marks an id kept as text; numbers are stored only below it.
const OTHER: u64 = 1 << 63;

impl PostIds {
    /// Keeps `id`; `number` is `canonical_number(id)`, read once by the caller.
    fn push(&mut self, id: &str, number: Option<u64>) {
        match number {
            Some(n) => self.ids.push(n),
            None => {
                self.ids.push(OTHER | self.other_ends.len() as u64);
                self.other_bytes.extend_from_slice(id.as_bytes());
                self.other_ends.push(self.other_bytes.len());
            }
        }
    }

    fn get(&self, post: PostIx) -> Cow<'_, str> {
        let Some(&value) = self.ids.get(post as usize) else {
            return Cow::Borrowed("");
        };
        if value & OTHER == 0 {
            return Cow::Owned(value.to_string());
        }
        let n = (value & !OTHER) as usize;
        let start = if n == 0 { 0 } else { self.other_ends[n - 1] };
        let bytes = &self.other_bytes[start..self.other_ends[n]];
        Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or(""))
    }
}

/// `id` as a number when it is written exactly as that number prints (no sign, no leading
/// zero, below 2⁶³), so that printing the number gives `id` back.
fn canonical_number(id: &str) -> Option<u64> {
    let bytes = id.as_bytes();
    let plain = !bytes.is_empty()
        && bytes.len() <= 19
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes[0] != b'0' || bytes.len() == 1);
    if !plain {
        return None;
    }
    id.parse::<u64>().ok().filter(|&n| n < OTHER)
}

/// The ordered, lower-cased hashtag sequence of a post, when it has two or more.
fn hashtag_key(listed: Option<&[String]>, text: &str) -> Option<u64> {
    let tags: Vec<String> = match listed {
        Some(tags) => tags
            .iter()
            .map(|t| t.trim_start_matches('#').to_lowercase())
            .filter(|t| !t.is_empty())
            .collect(),
        None => text
            .split(|c: char| c.is_whitespace())
            .filter_map(|w| w.strip_prefix('#'))
            .map(|t| {
                t.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_')
                    .to_lowercase()
            })
            .filter(|t| !t.is_empty())
            .collect(),
    };
    (tags.len() >= 2).then(|| xxh3_64(tags.join(" ").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post<'a>(id: &'a str, account: &'a str, text: &'a str) -> RawPost<'a> {
        RawPost {
            id,
            account_id: account,
            text,
            ..RawPost::default()
        }
    }

    #[test]
    fn duplicate_post_ids_are_refused_once_kept() {
        let mut data = Dataset::new(IngestOptions::default());
        assert_eq!(data.add_post(post("1", "a", "hello")), Ok(0));
        assert_eq!(
            data.add_post(post("1", "b", "other")),
            Err(PostRefusal::DuplicateId)
        );
        assert_eq!(data.add_post(post("2", "b", "other")), Ok(1));
        assert_eq!(data.post_id(0), "1");
        assert_eq!(data.post_id(1), "2");
        assert_eq!(data.accounts.len(), 2);
    }

    #[test]
    fn post_ids_read_back_as_written_whether_numbers_or_not() {
        let ids = [
            "1",
            "0",
            "007",
            "1288834974657",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
            "abc",
            "",
            "1e5",
            "-3",
            "ü42",
        ];
        let mut stored = PostIds::default();
        for id in ids {
            stored.push(id, canonical_number(id));
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(stored.get(i as PostIx), *id);
        }
        assert_eq!(stored.get(ids.len() as PostIx), "");
    }

    #[test]
    fn a_number_and_its_zero_padded_form_are_different_ids() {
        let mut data = Dataset::new(IngestOptions::default());
        assert_eq!(data.add_post(post("7", "a", "x")), Ok(0));
        assert_eq!(data.add_post(post("007", "a", "y")), Ok(1));
        assert_eq!(
            data.add_post(post("007", "b", "z")),
            Err(PostRefusal::DuplicateId)
        );
        assert_eq!(
            data.add_post(post("7", "b", "z")),
            Err(PostRefusal::DuplicateId)
        );
    }

    #[test]
    fn reposts_carry_no_text_or_links() {
        let mut data = Dataset::new(IngestOptions::default());
        let mut raw = post("1", "a", "RT @x: five words or more here");
        raw.repost_of = Some("99");
        raw.urls = vec!["http://x.org".into()];
        data.add_post(raw).unwrap();
        assert!(data.posts[0].text_key.is_none());
        assert!(data.posts[0].repost_of.is_some());
        assert!(data.links.is_empty() && data.token_spans.is_empty());
    }

    #[test]
    fn hashtag_sequences() {
        assert_eq!(
            hashtag_key(None, "#A and #b!"),
            hashtag_key(Some(&["a".into(), "B".into()]), "")
        );
        assert_eq!(hashtag_key(None, "only #one"), None);
        assert_ne!(hashtag_key(None, "#a #b"), hashtag_key(None, "#b #a"));
    }
}
