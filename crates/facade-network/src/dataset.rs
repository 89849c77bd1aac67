//! The accounts and posts of an export, reduced to what the coordination signals compare.
//! Texts themselves are not kept. Each post leaves a 20-byte record (account, time, id) and,
//! per co-action signal it can take part in, a 24-byte keyed record (hash of its normalised
//! text, reposted or replied-to id, link or hashtag sequence; time; account; post), which is
//! sorted by key as it is read. Both live in [`crate::spill`] structures: in memory for a
//! small export, on disk beyond 16 MB each, so ten million posts need disk, not memory.
//! Duplicate post ids are found by sorting the ids once reading is done
//! ([`Dataset::finish_reading`]), not with an in-memory set of every id.

use std::io;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::diagnostics::Diagnostics;
use crate::sequences::{sequences, HashtagUse, SequenceRule};
use crate::signals::{band_keys, Signal};
use crate::spill::{fixed_record, RecordLog, Sorted, Sorter};
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
    /// The picture's file declares itself AI-generated (C2PA, XMP, generator text): shown
    /// beside the detectors' call, never counted in `ai_made` or the score.
    pub declared_ai: bool,
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
    /// Posts kept (duplicates not counted).
    pub posts: u32,
}

fixed_record! {
    /// One post under one key of one signal: what the co-action join compares. Sorted by
    /// key, then time.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Keyed {
        pub key: u64,
        pub time_ms: i64,
        pub post: PostIx,
        pub account: AccountIx,
    }
}

fixed_record! {
    /// A post as kept: its account, time and id (a number, or where its text is: see
    /// `OTHER`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PostRecord {
        pub account: AccountIx,
        pub time_ms: i64,
        id: u64,
    }
}

fixed_record! {
    /// A post id seen, for finding duplicates after reading: sorted by id, then post.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct IdSeen {
        /// A numeric id as itself; any other by its 128-bit hash with the top bit set.
        key: u128,
        post: PostIx,
        /// Index into `Dataset::sources`, and the row's line there.
        source: u32,
        line: u64,
    }
}

/// The words of an original post with enough of them, kept in memory to verify
/// near-duplicate candidates (16 bytes a post plus 4 a word, only when that signal is asked
/// for); its MinHash band keys are sorted with the other signals' keys.
#[derive(Clone, Copy, Debug)]
pub struct TokenSpan {
    pub post: PostIx,
    /// End of its words in `token_data` (they start where the previous span's end).
    end: u32,
    /// The post's text key (0: none), to leave identical texts to co-tweet.
    pub text_key: u64,
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
    /// The co-action signals to key posts for (others cost nothing). Near-duplicates keep
    /// every original post's words in memory (16 bytes a post and 4 a word).
    pub signals: Vec<Signal>,
    /// Posts with fewer distinct words are never near-duplicates (short posts match by chance).
    pub min_tokens: usize,
    /// Which account-days make a hashtag sequence.
    pub sequence: SequenceRule,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            link_match: LinkMatch::default(),
            signals: Signal::CO_ACTIONS.to_vec(),
            min_tokens: 5,
            sequence: SequenceRule::default(),
        }
    }
}

/// Why a post was not added.
#[derive(Debug, PartialEq, Eq)]
pub enum PostRefusal {
    EmptyId,
    /// Longer than [`MAX_ID_BYTES`].
    LongId,
    EmptyAccount,
    /// More than `PostIx` can number.
    TooMany,
    /// Temporary storage failed; [`Dataset::finish_reading`] returns the error.
    Storage,
}

/// Longest post id kept (tweet ids have 19 digits; longer ones are hostile or broken).
pub const MAX_ID_BYTES: usize = 4095;

/// A duplicate post id found by [`Dataset::finish_reading`].
#[derive(Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub file: PathBuf,
    pub line: u64,
    pub id: String,
}

#[derive(Debug, Default)]
pub struct Dataset {
    pub accounts: Vec<Account>,
    /// Every post read, in order (duplicates included and marked in `dropped`).
    posts: RecordLog<PostRecord>,
    /// Bytes of post ids that are not numbers.
    other_ids: RecordLog<u8>,
    /// Keyed records per co-action signal: being sorted while reading, sorted after.
    sorting: FxHashMap<Signal, Sorter<Keyed>>,
    keyed: FxHashMap<Signal, Sorted<Keyed>>,
    /// Every hashtag of every original post, for hashtag sequences: being sorted, then sorted.
    hashtag_uses_sorting: Sorter<HashtagUse>,
    hashtag_uses: Sorted<HashtagUse>,
    /// Original posts' words, for near-duplicates (post order).
    pub token_spans: Vec<TokenSpan>,
    /// For each post, its index in `token_spans` (`NO_SPAN` when it has none): one lookup per
    /// candidate instead of a binary search (4 bytes a post, only for near-duplicates).
    span_of_post: Vec<u32>,
    pub token_data: Vec<u32>,
    /// Accounts by the 128-bit hash of their id (no second copy of every id).
    account_index: FxHashMap<u128, AccountIx>,
    ids_seen: Sorter<IdSeen>,
    /// The files posts came from, for naming duplicates.
    sources: Vec<PathBuf>,
    /// Posts dropped as duplicates, one bit each.
    dropped: Vec<u64>,
    /// Original posts with more than one distinct link, one bit each.
    several_links: Vec<u64>,
    /// The first storage error, returned by `finish_reading`.
    failure: Option<io::Error>,
    finished: bool,
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
        self.account_index.get(&xxh3_128(id.as_bytes())).copied()
    }

    /// The account with this id, created (unlisted, no details) when first seen.
    pub fn account_entry(&mut self, id: &str) -> AccountIx {
        let next = self.accounts.len() as AccountIx;
        let ix = *self
            .account_index
            .entry(xxh3_128(id.as_bytes()))
            .or_insert(next);
        if ix == next {
            self.accounts.push(Account {
                id: id.to_owned(),
                ..Account::default()
            });
        }
        ix
    }

    /// Accounts with at least one kept post: the `N` that rarity weights are relative to.
    pub fn accounts_with_posts(&self) -> u32 {
        self.accounts.iter().filter(|a| a.posts > 0).count() as u32
    }

    /// Posts read, duplicates included (a `PostIx` is below this).
    pub fn posts_read(&self) -> u64 {
        self.posts.len()
    }

    pub fn is_dropped(&self, post: PostIx) -> bool {
        bit(&self.dropped, post)
    }

    /// Whether `post` sits in several of `signal`'s groups (several links, LSH bands, hashtag
    /// runs), so that one account can match it in more than one.
    pub fn in_several_groups(&self, signal: Signal, post: PostIx) -> bool {
        match signal {
            Signal::CoLink => bit(&self.several_links, post),
            _ => has_several_groups(signal),
        }
    }

    /// The kept post at `post`: its account, time and id.
    pub fn post(&self, post: PostIx) -> io::Result<Option<(AccountIx, i64, String)>> {
        match self.posts.get(u64::from(post))? {
            Some(record) => Ok(Some((
                record.account,
                record.time_ms,
                self.id_text(record.id)?,
            ))),
            None => Ok(None),
        }
    }

    /// Calls `visit(post, account, time)` for every kept post, in reading order.
    pub fn for_each_post(&self, mut visit: impl FnMut(PostIx, AccountIx, i64)) -> io::Result<()> {
        self.posts.for_each(|i, record| {
            let post = i as PostIx;
            if !self.is_dropped(post) {
                visit(post, record.account, record.time_ms);
            }
        })
    }

    /// The sorted keyed records of a co-action signal (after `finish_reading`).
    pub fn keyed(&self, signal: Signal) -> Option<&Sorted<Keyed>> {
        self.keyed.get(&signal)
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Every hashtag of every original post, by account and time (after `finish_reading`).
    pub fn hashtag_uses(&self) -> &Sorted<HashtagUse> {
        &self.hashtag_uses
    }

    /// The text key and words of `post`, when kept for near-duplicates.
    pub fn similar_words(&self, post: PostIx) -> Option<(u64, &[u32])> {
        let i = *self.span_of_post.get(post as usize)?;
        if i == NO_SPAN {
            return None;
        }
        let i = i as usize;
        let start = i.checked_sub(1).map_or(0, |p| self.token_spans[p].end);
        let span = &self.token_spans[i];
        let words = self.token_data.get(start as usize..span.end as usize)?;
        Some((span.text_key, words))
    }

    /// Ends reading: finds duplicate post ids (the first is kept, the others are dropped and
    /// handed to `on_duplicate` with where they were read) and sorts the keyed records.
    /// Returns the first storage error of the reading instead, if any. Idempotent.
    pub fn finish_reading(&mut self, mut on_duplicate: impl FnMut(Duplicate)) -> io::Result<()> {
        if let Some(error) = self.failure.take() {
            return Err(error);
        }
        if self.finished {
            return Ok(());
        }
        let ids = std::mem::take(&mut self.ids_seen).finish()?;
        let mut previous = None;
        for seen in ids.iter()? {
            let seen = seen?;
            if previous == Some(seen.key) {
                on_duplicate(self.drop_post(&seen)?);
            }
            previous = Some(seen.key);
        }
        for (signal, sorter) in std::mem::take(&mut self.sorting) {
            self.keyed.insert(signal, sorter.finish()?);
        }
        self.hashtag_uses = std::mem::take(&mut self.hashtag_uses_sorting).finish()?;
        if self.wants(Signal::CoHashtagSequence) {
            let rule = &self.options.sequence;
            let keyed = sequences(&self.hashtag_uses, rule, |p| self.is_dropped(p))?;
            self.keyed.insert(Signal::CoHashtagSequence, keyed);
        }
        self.finished = true;
        Ok(())
    }

    /// As [`Self::finish_reading`], reporting each duplicate as a rejected row.
    pub fn finish_reading_into(&mut self, diag: &mut Diagnostics) -> io::Result<()> {
        self.finish_reading(|duplicate| {
            diag.posts_read = diag.posts_read.saturating_sub(1);
            diag.reject(
                &duplicate.file,
                duplicate.line,
                "duplicate-id",
                format!(
                    "post id {} was already read; the first is kept",
                    duplicate.id
                ),
            );
        })?;
        diag.order_messages();
        Ok(())
    }

    fn drop_post(&mut self, seen: &IdSeen) -> io::Result<Duplicate> {
        set_bit(&mut self.dropped, seen.post);
        let (account, _, id) = self
            .post(seen.post)?
            .ok_or_else(|| io::Error::other("duplicate of a post that was not kept"))?;
        let entry = &mut self.accounts[account as usize];
        entry.posts = entry.posts.saturating_sub(1);
        Ok(Duplicate {
            file: self
                .sources
                .get(seen.source as usize)
                .cloned()
                .unwrap_or_default(),
            line: seen.line,
            id,
        })
    }

    /// Adds a post read from no file in particular (tests, library callers).
    pub fn add_post(&mut self, raw: RawPost) -> Result<PostIx, PostRefusal> {
        self.add_post_from(raw, Path::new(""), 0)
    }

    /// Adds a post read at `line` of `file`. Duplicate ids are found later, by
    /// [`Self::finish_reading`].
    pub fn add_post_from(
        &mut self,
        raw: RawPost,
        file: &Path,
        line: u64,
    ) -> Result<PostIx, PostRefusal> {
        let id = raw.id.trim();
        if id.is_empty() {
            return Err(PostRefusal::EmptyId);
        }
        if id.len() > MAX_ID_BYTES {
            return Err(PostRefusal::LongId);
        }
        if raw.account_id.trim().is_empty() {
            return Err(PostRefusal::EmptyAccount);
        }
        if self.failure.is_some() {
            return Err(PostRefusal::Storage);
        }
        let Ok(ix) = PostIx::try_from(self.posts.len()) else {
            return Err(PostRefusal::TooMany);
        };
        match self.keep_post(ix, raw, id, file, line) {
            Ok(()) => Ok(ix),
            Err(error) => {
                self.failure = Some(error);
                Err(PostRefusal::Storage)
            }
        }
    }

    fn keep_post(
        &mut self,
        ix: PostIx,
        raw: RawPost,
        id: &str,
        file: &Path,
        line: u64,
    ) -> io::Result<()> {
        let account = self.account_entry(raw.account_id.trim());
        let entry = &mut self.accounts[account as usize];
        entry.posts += 1;
        if let Some(handle) = raw.handle.filter(|h| !h.is_empty()) {
            if entry.handle.is_empty() {
                entry.handle = handle.to_owned();
            }
        }
        let number = canonical_number(id);
        let stored_id = match number {
            Some(n) => n,
            None => self.keep_other_id(id)?,
        };
        self.posts.push(PostRecord {
            account,
            time_ms: raw.time_ms,
            id: stored_id,
        })?;
        // Byte comparison: `Path`'s own equality parses components, on every post.
        if self.sources.last().map(|s| s.as_os_str()) != Some(file.as_os_str()) {
            self.sources.push(file.to_path_buf());
        }
        self.ids_seen.push(IdSeen {
            key: number.map_or(xxh3_128(id.as_bytes()) | 1 << 127, u128::from),
            post: ix,
            source: (self.sources.len() - 1) as u32,
            line,
        })?;
        let at = |key: u64| Keyed {
            key,
            time_ms: raw.time_ms,
            post: ix,
            account,
        };
        let repost_of = raw.repost_of.map(str::trim).filter(|s| !s.is_empty());
        if let Some(reposted) = repost_of {
            self.key_post(Signal::CoRetweet, at(xxh3_64(reposted.as_bytes())))?;
        }
        if let Some(target) = raw.reply_to.map(str::trim).filter(|s| !s.is_empty()) {
            self.key_post(Signal::CoReply, at(xxh3_64(target.as_bytes())))?;
        }
        let sequence = self.wants(Signal::CoHashtagSequence) && repost_of.is_none();
        if self.wants(Signal::CoHashtags) || sequence {
            let tags = post_hashtags(raw.hashtags.as_deref(), raw.text);
            if let Some(key) = hashtag_key(&tags) {
                self.key_post(Signal::CoHashtags, at(key))?;
            }
            if sequence {
                self.keep_hashtag_uses(at(0), &tags)?;
            }
        }
        if repost_of.is_some() {
            return Ok(());
        }
        // An original post: its text and links. Normalised once for the key and the words,
        // and only when a signal reads them.
        if self.wants(Signal::CoLink) {
            let keys = self.link_keys(&raw.urls);
            if keys.len() > 1 {
                set_bit(&mut self.several_links, ix);
            }
            for key in keys {
                self.key_post(Signal::CoLink, at(key))?;
            }
        }
        if !self.wants(Signal::CoTweet) && !self.wants(Signal::CoSimilarTweet) {
            return Ok(());
        }
        let normalised = normalise_text(raw.text);
        let text_key = key_of_normalised(&normalised);
        if let Some(key) = text_key {
            self.key_post(Signal::CoTweet, at(key))?;
        }
        if self.wants(Signal::CoSimilarTweet) {
            self.keep_tokens(at(text_key.unwrap_or(0)), &normalised)?;
        }
        Ok(())
    }

    /// Keeps each hashtag of an original post for the day's sequence (a repost's hashtags
    /// are its source's).
    fn keep_hashtag_uses(&mut self, post: Keyed, tags: &[String]) -> io::Result<()> {
        for (position, tag) in tags.iter().enumerate() {
            self.hashtag_uses_sorting.push(HashtagUse {
                account: post.account,
                time_ms: post.time_ms,
                post: post.post,
                position: position as u32,
                tag: xxh3_64(tag.as_bytes()),
            })?;
        }
        Ok(())
    }

    fn wants(&self, signal: Signal) -> bool {
        self.options.signals.contains(&signal)
    }

    /// Stores a non-numeric id's bytes; returns its reference (`OTHER`, offset, length).
    fn keep_other_id(&mut self, id: &str) -> io::Result<u64> {
        let offset = self.other_ids.len();
        self.other_ids.extend(id.as_bytes())?;
        Ok(OTHER | offset << ID_LEN_BITS | id.len() as u64)
    }

    fn id_text(&self, stored: u64) -> io::Result<String> {
        if stored & OTHER == 0 {
            return Ok(stored.to_string());
        }
        let offset = (stored & !OTHER) >> ID_LEN_BITS;
        let len = stored & ((1 << ID_LEN_BITS) - 1);
        let bytes = self.other_ids.get_range(offset, len)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn key_post(&mut self, signal: Signal, keyed: Keyed) -> io::Result<()> {
        if !self.wants(signal) {
            return Ok(());
        }
        self.sorting.entry(signal).or_default().push(keyed)
    }

    fn link_keys(&self, urls: &[String]) -> Vec<u64> {
        let mut keys: Vec<u64> = urls
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(|u| xxh3_64(link_form(u, self.options.link_match).as_bytes()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Keys the post's MinHash bands and keeps its words, when it has enough of them.
    fn keep_tokens(&mut self, post: Keyed, normalised: &str) -> io::Result<()> {
        let tokens = tokens_of_normalised(normalised);
        if tokens.len() < self.options.min_tokens {
            return Ok(());
        }
        let Ok(end) = u32::try_from(self.token_data.len() + tokens.len()) else {
            return Err(io::Error::other(
                "more than 4 billion words kept for near-duplicate detection: \
                 leave co-similar-tweet out of --signals",
            ));
        };
        for key in band_keys(&tokens) {
            self.key_post(Signal::CoSimilarTweet, Keyed { key, ..post })?;
        }
        if self.span_of_post.len() <= post.post as usize {
            self.span_of_post.resize(post.post as usize + 1, NO_SPAN);
        }
        self.span_of_post[post.post as usize] = self.token_spans.len() as u32;
        self.token_spans.push(TokenSpan {
            post: post.post,
            end,
            text_key: post.key,
        });
        self.token_data.extend_from_slice(&tokens);
        Ok(())
    }
}

/// Whether one post can sit in several of `signal`'s groups: several links, several LSH
/// bands, a day's hashtag runs under its first post.
pub fn has_several_groups(signal: Signal) -> bool {
    matches!(
        signal,
        Signal::CoLink | Signal::CoSimilarTweet | Signal::CoHashtagSequence
    )
}

fn bit(bits: &[u64], post: PostIx) -> bool {
    bits.get(post as usize / 64)
        .is_some_and(|word| word >> (post % 64) & 1 == 1)
}

fn set_bit(bits: &mut Vec<u64>, post: PostIx) {
    let word = post as usize / 64;
    if bits.len() <= word {
        bits.resize(word + 1, 0);
    }
    bits[word] |= 1 << (post % 64);
}

/// `span_of_post` of a post without kept words.
const NO_SPAN: u32 = u32::MAX;

/// Post ids are stored in 8 bytes: a decimal number (tweet ids are) as itself, any other id
/// as `OTHER | offset << ID_LEN_BITS | length` into the bytes kept aside.
const OTHER: u64 = 1 << 63;
const ID_LEN_BITS: u32 = 12;

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

/// The key of a post's ordered hashtags, when it has two or more.
fn hashtag_key(tags: &[String]) -> Option<u64> {
    (tags.len() >= 2).then(|| xxh3_64(tags.join(" ").as_bytes()))
}

/// A post's hashtags, lower-cased, in order: the export's list when it has one, else the
/// `#words` of the text.
fn post_hashtags(listed: Option<&[String]>, text: &str) -> Vec<String> {
    match listed {
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
    }
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

    fn finish(data: &mut Dataset) -> Vec<Duplicate> {
        let mut duplicates = Vec::new();
        data.finish_reading(|d| duplicates.push(d)).unwrap();
        duplicates
    }

    fn id_of(data: &Dataset, post: PostIx) -> String {
        data.post(post).unwrap().unwrap().2
    }

    #[test]
    fn duplicate_post_ids_are_dropped_when_reading_ends_and_the_first_kept() {
        let mut data = Dataset::new(IngestOptions::default());
        let file = Path::new("posts.csv");
        assert_eq!(data.add_post_from(post("1", "a", "hello"), file, 2), Ok(0));
        assert_eq!(data.add_post_from(post("1", "b", "other"), file, 3), Ok(1));
        assert_eq!(data.add_post_from(post("2", "b", "other"), file, 4), Ok(2));
        let duplicates = finish(&mut data);
        assert_eq!(
            duplicates,
            [Duplicate {
                file: file.into(),
                line: 3,
                id: "1".into()
            }]
        );
        assert!(!data.is_dropped(0) && data.is_dropped(1) && !data.is_dropped(2));
        assert_eq!((id_of(&data, 0), id_of(&data, 2)), ("1".into(), "2".into()));
        assert_eq!((data.accounts[0].posts, data.accounts[1].posts), (1, 1));
        let mut kept = Vec::new();
        data.for_each_post(|p, _, _| kept.push(p)).unwrap();
        assert_eq!(kept, [0, 2]);
        assert!(finish(&mut data).is_empty());
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
            "1e5",
            "-3",
            "ü42",
        ];
        let mut data = Dataset::new(IngestOptions::default());
        for id in ids {
            data.add_post(post(id, "a", "x")).unwrap();
        }
        assert!(finish(&mut data).is_empty());
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(id_of(&data, i as PostIx), *id);
        }
        assert_eq!(data.post(ids.len() as PostIx).unwrap(), None);
    }

    #[test]
    fn empty_or_overlong_ids_and_missing_accounts_are_refused() {
        let mut data = Dataset::new(IngestOptions::default());
        let long = "9".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            data.add_post(post(" ", "a", "x")),
            Err(PostRefusal::EmptyId)
        );
        assert_eq!(
            data.add_post(post(&long, "a", "x")),
            Err(PostRefusal::LongId)
        );
        assert_eq!(
            data.add_post(post("1", "", "x")),
            Err(PostRefusal::EmptyAccount)
        );
        assert_eq!(data.posts_read(), 0);
        assert!(data.accounts.is_empty());
    }

    #[test]
    fn a_number_and_its_zero_padded_form_are_different_ids() {
        let mut data = Dataset::new(IngestOptions::default());
        for (id, account) in [("7", "a"), ("007", "a"), ("007", "b"), ("7", "b")] {
            data.add_post(post(id, account, "x")).unwrap();
        }
        let dropped: Vec<String> = finish(&mut data).into_iter().map(|d| d.id).collect();
        assert_eq!(dropped.len(), 2);
        assert!(dropped.contains(&"7".into()) && dropped.contains(&"007".into()));
        assert!(!data.is_dropped(0) && !data.is_dropped(1));
    }

    #[test]
    fn reposts_carry_no_text_or_links() {
        let mut data = Dataset::new(IngestOptions::default());
        let mut raw = post("1", "a", "RT @x: five words or more here");
        raw.repost_of = Some("99");
        raw.urls = vec!["http://x.org".into()];
        data.add_post(raw).unwrap();
        finish(&mut data);
        assert!(data.keyed(Signal::CoTweet).is_none() && data.keyed(Signal::CoLink).is_none());
        assert_eq!(data.keyed(Signal::CoRetweet).map(|k| k.len()), Some(1));
        assert!(data.token_spans.is_empty());
    }

    #[test]
    fn signals_not_asked_for_key_nothing() {
        let options = IngestOptions {
            signals: vec![Signal::CoRetweet],
            ..IngestOptions::default()
        };
        let mut data = Dataset::new(options);
        let mut raw = post("1", "a", "five words or more here #a #b");
        raw.urls = vec!["http://x.org".into()];
        data.add_post(raw).unwrap();
        finish(&mut data);
        assert!(data.keyed.is_empty() && data.token_spans.is_empty());
    }

    #[test]
    fn hashtags_of_a_post() {
        let key = |listed: Option<&[String]>, text| hashtag_key(&post_hashtags(listed, text));
        assert_eq!(
            key(None, "#A and #b!"),
            key(Some(&["a".into(), "B".into()]), "")
        );
        assert_eq!(key(None, "only #one"), None);
        assert_ne!(key(None, "#a #b"), key(None, "#b #a"));
    }
}
