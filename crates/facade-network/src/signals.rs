//! Coordination signals: for each kind, the pairs of accounts it links and the evidence (the
//! actual pairs of posts). Co-actions — same text, near-duplicate text, retweet, link, reply
//! target or hashtag sequence within `window` — follow the QUT coordination-network-toolkit's
//! definition: the weight from account A to account B is the number of distinct posts of A
//! that B matched within the window (inclusive). Unlike the toolkit, an account is never
//! linked to itself.

use std::io;

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::dataset::{AccountIx, Dataset, Keyed, PostIx};
use crate::spill::{fixed_record, Merge, Sorted, Sorter};
use crate::text::jaccard;

/// The kinds of evidence that link two accounts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    CoTweet,
    CoSimilarTweet,
    CoRetweet,
    CoLink,
    CoReply,
    CoHashtags,
    SharedFace,
}

impl Signal {
    pub const CO_ACTIONS: [Signal; 6] = [
        Signal::CoTweet,
        Signal::CoSimilarTweet,
        Signal::CoRetweet,
        Signal::CoLink,
        Signal::CoReply,
        Signal::CoHashtags,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::CoTweet => "co-tweet",
            Signal::CoSimilarTweet => "co-similar-tweet",
            Signal::CoRetweet => "co-retweet",
            Signal::CoLink => "co-link",
            Signal::CoReply => "co-reply",
            Signal::CoHashtags => "co-hashtags",
            Signal::SharedFace => "shared-face",
        }
    }

    pub fn parse(name: &str) -> Option<Signal> {
        Self::CO_ACTIONS
            .into_iter()
            .chain([Signal::SharedFace])
            .find(|s| s.name() == name)
    }
}

/// How many post pairs are kept as examples for each link and signal.
pub const EXAMPLES_KEPT: usize = 10;

/// How many posts of each account of a pair (`low < high`) one signal matched: small, as a
/// large export has millions of pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PairCounts {
    /// Distinct posts of `low` that `high` matched (the toolkit's weight low → high).
    pub low_to_high: u32,
    /// Distinct posts of `high` that `low` matched.
    pub high_to_low: u32,
}

impl PairCounts {
    /// Posts both accounts took part in: the smaller direction (a burst of repeats by one
    /// account does not count as many coordinated posts).
    pub fn coordinated_posts(&self) -> u32 {
        self.low_to_high.min(self.high_to_low)
    }
}

/// The evidence of one signal for a link: its counts and example matched posts
/// (post of low, post of high), gathered in a second pass for links only.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PairEvidence {
    #[serde(flatten)]
    pub counts: PairCounts,
    pub examples: Vec<(PostIx, PostIx)>,
}

pub type PairKey = (AccountIx, AccountIx);

fixed_record! {
    /// One pair's counts as stored, sorted by pair.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct PairRecord {
        low: AccountIx,
        high: AccountIx,
        low_to_high: u32,
        high_to_low: u32,
    }
}

impl PairRecord {
    fn new((low, high): PairKey, counts: PairCounts) -> Self {
        PairRecord {
            low,
            high,
            low_to_high: counts.low_to_high,
            high_to_low: counts.high_to_low,
        }
    }
}

/// All pairs one signal links, sorted by pair; on disk when there are millions.
#[derive(Debug, Default)]
pub struct SignalEdges {
    pairs: Sorted<PairRecord>,
}

impl SignalEdges {
    /// From pairs in memory (`low < high`), in any order.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (PairKey, PairCounts)>) -> Self {
        let records = pairs
            .into_iter()
            .map(|(key, counts)| PairRecord::new(key, counts))
            .collect();
        Self {
            pairs: Sorted::from_vec(records),
        }
    }

    /// Every pair once, by pair.
    pub fn iter(&self) -> io::Result<PairIter<'_>> {
        Ok(PairIter {
            merge: self.pairs.iter()?,
            pending: None,
        })
    }
}

/// A signal's pairs in order, each once: the counts of a pair that was spilled in several
/// runs are added up.
pub struct PairIter<'a> {
    merge: Merge<'a, PairRecord>,
    pending: Option<PairRecord>,
}

impl Iterator for PairIter<'_> {
    type Item = io::Result<(PairKey, PairCounts)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut current = match self.pending.take() {
            Some(record) => record,
            None => match self.merge.next()? {
                Ok(record) => record,
                Err(e) => return Some(Err(e)),
            },
        };
        loop {
            match self.merge.next() {
                Some(Ok(next)) if (next.low, next.high) == (current.low, current.high) => {
                    current.low_to_high += next.low_to_high;
                    current.high_to_low += next.high_to_low;
                }
                Some(Ok(next)) => {
                    self.pending = Some(next);
                    break;
                }
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        let counts = PairCounts {
            low_to_high: current.low_to_high,
            high_to_low: current.high_to_low,
        };
        Some(Ok(((current.low, current.high), counts)))
    }
}

/// Pairs in a hash map of bounded size; when full, it is written out as a sorted run.
/// Ten million posts make ~8.5 million co-retweet pairs: 300 MB as one map.
struct PairCounter {
    map: FxHashMap<PairKey, PairCounts>,
    limit: usize,
    runs: Option<Sorter<PairRecord>>,
}

/// Pairs counted in memory before a run is written: a table of 2²⁰ slots (~17 MB).
const PAIRS_IN_MEMORY: usize = 900_000;

impl PairCounter {
    fn new(limit: usize) -> Self {
        Self {
            map: FxHashMap::default(),
            limit,
            runs: None,
        }
    }

    fn add(&mut self, a: AccountIx, b: AccountIx) -> io::Result<()> {
        let counts = self.map.entry((a.min(b), a.max(b))).or_default();
        if a < b {
            counts.low_to_high += 1;
        } else {
            counts.high_to_low += 1;
        }
        if self.map.len() >= self.limit {
            self.write_run()?;
        }
        Ok(())
    }

    fn write_run(&mut self) -> io::Result<()> {
        let mut run: Vec<PairRecord> = self
            .map
            .drain()
            .map(|(key, counts)| PairRecord::new(key, counts))
            .collect();
        run.sort_unstable();
        self.runs
            .get_or_insert_with(Sorter::default)
            .push_sorted_run(&run)
    }

    fn finish(mut self) -> io::Result<SignalEdges> {
        if self.runs.is_none() {
            return Ok(SignalEdges::from_pairs(self.map));
        }
        self.write_run()?;
        let runs = self.runs.take().unwrap_or_default();
        Ok(SignalEdges {
            pairs: runs.finish()?,
        })
    }
}

/// Where the join's matches go: counted for every pair, or kept as examples for some.
enum Sink<'s> {
    Count(&'s mut PairCounter),
    Examples {
        wanted: &'s FxHashSet<PairKey>,
        found: &'s mut FxHashMap<PairKey, Vec<(PostIx, PostIx)>>,
    },
}

/// Parameters of the co-action signals.
#[derive(Clone, Debug)]
pub struct CoActionParams {
    /// Two posts coordinate when at most this far apart (milliseconds, inclusive).
    pub window_ms: i64,
    /// Near-duplicate threshold on the Jaccard similarity of word sets.
    pub similarity: f64,
}

impl Default for CoActionParams {
    fn default() -> Self {
        Self {
            window_ms: 60_000,
            similarity: 0.8,
        }
    }
}

/// Example post pairs of `signal` for the `wanted` pairs (a second pass of the join).
pub fn examples(
    data: &Dataset,
    signal: Signal,
    params: &CoActionParams,
    wanted: &FxHashSet<PairKey>,
) -> io::Result<FxHashMap<PairKey, Vec<(PostIx, PostIx)>>> {
    let mut found = FxHashMap::default();
    if Signal::CO_ACTIONS.contains(&signal) && !wanted.is_empty() {
        co_action(
            data,
            signal,
            params,
            &mut Sink::Examples {
                wanted,
                found: &mut found,
            },
        )?;
    }
    Ok(found)
}

/// Computes the chosen co-action signals, in parallel.
pub fn co_actions(
    data: &Dataset,
    signals: &[Signal],
    params: &CoActionParams,
) -> io::Result<Vec<(Signal, SignalEdges)>> {
    signals
        .par_iter()
        .filter(|s| Signal::CO_ACTIONS.contains(s))
        .map(|&signal| {
            Ok((
                signal,
                co_action_counts(data, signal, params, PAIRS_IN_MEMORY)?,
            ))
        })
        .collect()
}

fn co_action_counts(
    data: &Dataset,
    signal: Signal,
    params: &CoActionParams,
    pairs_in_memory: usize,
) -> io::Result<SignalEdges> {
    let mut counter = PairCounter::new(pairs_in_memory);
    co_action(data, signal, params, &mut Sink::Count(&mut counter))?;
    counter.finish()
}

fn co_action(
    data: &Dataset,
    signal: Signal,
    params: &CoActionParams,
    sink: &mut Sink,
) -> io::Result<()> {
    if !data.is_finished() {
        return Err(io::Error::other(
            "the dataset is still being read (finish_reading was not called)",
        ));
    }
    let Some(keyed) = data.keyed(signal) else {
        return Ok(());
    };
    let window = params.window_ms;
    match signal {
        Signal::CoSimilarTweet => near_duplicates(data, keyed, params, sink),
        // A post with several links sits in several groups.
        Signal::CoLink => join_on_key(data, keyed, window, None, Groups::Several, sink),
        _ => join_on_key(data, keyed, window, None, Groups::One, sink),
    }
}

/// Accept a candidate pair of posts (i, j); `None` accepts all.
type PostFilter<'f> = Option<&'f (dyn Fn(PostIx, PostIx) -> bool + Sync)>;

/// How many of a signal's groups one post can sit in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Groups {
    One,
    /// Several links, several LSH bands: (post, other account) matches are deduplicated
    /// across groups.
    Several,
}

/// The co-action join: posts grouped by key (read in key order, one group in memory at a
/// time), and within a group every pair of posts by different accounts at most `window_ms`
/// apart that `filter` accepts.
fn join_on_key(
    data: &Dataset,
    keyed: &Sorted<Keyed>,
    window_ms: i64,
    filter: PostFilter,
    groups: Groups,
    sink: &mut Sink,
) -> io::Result<()> {
    let mut join = Join {
        window_ms,
        filter,
        groups,
        last_match: vec![0; data.accounts.len()],
        stamp: 0,
        seen: FxHashSet::default(),
    };
    let mut group: Vec<Keyed> = Vec::new();
    for item in keyed.iter()? {
        let item = item?;
        if data.is_dropped(item.post) {
            continue;
        }
        if group.first().is_some_and(|first| first.key != item.key) {
            join.group(&group, sink)?;
            group.clear();
        }
        group.push(item);
    }
    join.group(&group, sink)
}

/// The state of one join across its groups.
struct Join<'f> {
    window_ms: i64,
    filter: PostFilter<'f>,
    groups: Groups,
    /// `last_match[b]` = the stamp of the item that last matched account b: one count per
    /// (post, b).
    last_match: Vec<u64>,
    stamp: u64,
    seen: FxHashSet<(PostIx, AccountIx)>,
}

impl Join<'_> {
    fn group(&mut self, group: &[Keyed], sink: &mut Sink) -> io::Result<()> {
        if group.len() < 2 {
            return Ok(());
        }
        let mut lo = 0;
        let mut hi = 0;
        for item in group {
            while group[lo].time_ms < item.time_ms - self.window_ms {
                lo += 1;
            }
            while hi + 1 < group.len() && group[hi + 1].time_ms <= item.time_ms + self.window_ms {
                hi += 1;
            }
            self.stamp += 1;
            for other in &group[lo..=hi] {
                let b = other.account;
                if b == item.account || self.last_match[b as usize] == self.stamp {
                    continue;
                }
                if self
                    .filter
                    .is_some_and(|accept| !accept(item.post, other.post))
                {
                    continue;
                }
                if self.groups == Groups::Several && !self.seen.insert((item.post, b)) {
                    continue;
                }
                self.last_match[b as usize] = self.stamp;
                record(sink, item, other)?;
            }
        }
        Ok(())
    }
}

/// Counts `item`'s post as matched by `other`'s account (or keeps the pair as an example).
fn record(sink: &mut Sink, item: &Keyed, other: &Keyed) -> io::Result<()> {
    let (a, b) = (item.account, other.account);
    match sink {
        Sink::Count(counter) => counter.add(a, b)?,
        Sink::Examples { wanted, found } => {
            let key = (a.min(b), a.max(b));
            if !wanted.contains(&key) {
                return Ok(());
            }
            let kept = found.entry(key).or_default();
            let example = if a < b {
                (item.post, other.post)
            } else {
                (other.post, item.post)
            };
            if kept.len() < EXAMPLES_KEPT && !kept.contains(&example) {
                kept.push(example);
            }
        }
    }
    Ok(())
}

/// MinHash signature length and LSH banding: 8 bands of 4 rows find pairs of Jaccard 0.8
/// with probability 1 − (1 − 0.8⁴)⁸ ≈ 0.985, and of 0.5 with ≈ 0.40 (then verified exactly).
const MINHASHES: usize = 32;
const BAND_ROWS: usize = 4;
pub const BANDS: usize = MINHASHES / BAND_ROWS;

/// The LSH band keys of a word set: two posts sharing one are near-duplicate candidates.
pub fn band_keys(tokens: &[u32]) -> [u64; BANDS] {
    let signature = minhash(tokens);
    let mut keys = [0u64; BANDS];
    for (band, rows) in signature.chunks(BAND_ROWS).enumerate() {
        let mut bytes = [0u8; 4 * BAND_ROWS + 1];
        bytes[0] = band as u8;
        for (r, value) in rows.iter().enumerate() {
            bytes[1 + 4 * r..5 + 4 * r].copy_from_slice(&value.to_le_bytes());
        }
        keys[band] = xxh3_64(&bytes);
    }
    keys
}

/// Near-duplicate posts (Jaccard of word sets ≥ `similarity`, not identical after
/// normalisation — those are co-tweets) by MinHash LSH instead of all pairs: posts sharing a
/// band key (keyed while reading) are candidates, verified on their words.
fn near_duplicates(
    data: &Dataset,
    bands: &Sorted<Keyed>,
    params: &CoActionParams,
    sink: &mut Sink,
) -> io::Result<()> {
    let similar = |i: PostIx, j: PostIx| match (data.similar_words(i), data.similar_words(j)) {
        (Some((key_i, words_i)), Some((key_j, words_j))) => {
            (key_i == 0 || key_i != key_j) && jaccard(words_i, words_j) >= params.similarity
        }
        _ => false,
    };
    let window = params.window_ms;
    join_on_key(data, bands, window, Some(&similar), Groups::Several, sink)
}

fn minhash(tokens: &[u32]) -> [u32; MINHASHES] {
    let mut signature = [u32::MAX; MINHASHES];
    for &token in tokens {
        for (k, slot) in signature.iter_mut().enumerate() {
            let h = mix(u64::from(token) ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(k as u64 + 1)))
                as u32;
            *slot = (*slot).min(h);
        }
    }
    signature
}

/// SplitMix64's finaliser: a good, cheap 64-bit mix.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Accounts whose profile pictures have perceptual hashes at most `max_distance` bits apart
/// (≤ 3, found exactly by the pigeonhole principle on four 16-bit chunks).
pub fn shared_faces(data: &Dataset, max_distance: u32) -> SignalEdges {
    let max_distance = max_distance.min(3);
    let mut buckets: FxHashMap<(u8, u16), Vec<AccountIx>> = FxHashMap::default();
    for (ix, account) in data.accounts.iter().enumerate() {
        if let Some(face) = account.face {
            for chunk in 0..4u8 {
                let part = (face.phash >> (16 * chunk)) as u16;
                buckets
                    .entry((chunk, part))
                    .or_default()
                    .push(ix as AccountIx);
            }
        }
    }
    let mut pairs = FxHashMap::default();
    for members in buckets.values() {
        for (i, &a) in members.iter().enumerate() {
            for &b in &members[i + 1..] {
                let (fa, fb) = (
                    data.accounts[a as usize].face,
                    data.accounts[b as usize].face,
                );
                let (Some(fa), Some(fb)) = (fa, fb) else {
                    continue;
                };
                if (fa.phash ^ fb.phash).count_ones() <= max_distance {
                    pairs.insert(
                        (a.min(b), a.max(b)),
                        PairCounts {
                            low_to_high: 1,
                            high_to_low: 1,
                        },
                    );
                }
            }
        }
    }
    SignalEdges::from_pairs(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{IngestOptions, RawPost};

    fn dataset(posts: &[(&str, &str, i64, &str, Option<&str>)]) -> Dataset {
        let mut data = Dataset::new(IngestOptions::default());
        for &(id, account, secs, text, repost) in posts {
            data.add_post(RawPost {
                id,
                account_id: account,
                time_ms: secs * 1000,
                text,
                repost_of: repost,
                ..RawPost::default()
            })
            .unwrap();
        }
        data.finish_reading(|_| {}).unwrap();
        data
    }

    fn weights(data: &Dataset, signal: Signal) -> Vec<(String, String, u32, u32)> {
        weights_counted_in(data, signal, PAIRS_IN_MEMORY)
    }

    fn weights_counted_in(
        data: &Dataset,
        signal: Signal,
        pairs_in_memory: usize,
    ) -> Vec<(String, String, u32, u32)> {
        let edges =
            co_action_counts(data, signal, &CoActionParams::default(), pairs_in_memory).unwrap();
        let mut out: Vec<_> = edges
            .iter()
            .unwrap()
            .map(|pair| {
                let ((a, b), e) = pair.unwrap();
                (
                    data.accounts[a as usize].id.clone(),
                    data.accounts[b as usize].id.clone(),
                    e.low_to_high,
                    e.high_to_low,
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn co_tweet_counts_distinct_posts_within_the_window() {
        let data = dataset(&[
            ("1", "a", 0, "Buy now", None),
            ("2", "b", 60, "buy  NOW @x", None), // exactly at the window's edge: counts
            ("3", "a", 30, "buy now", None),
            ("4", "c", 61, "buy now", None), // 61 s after post 1 but 31 s after post 3
            ("5", "d", 200, "buy now", None), // too late for everyone
            ("6", "e", 0, "other", None),
        ]);
        assert_eq!(
            weights(&data, Signal::CoTweet),
            [
                ("a".into(), "b".into(), 2, 1),
                ("a".into(), "c".into(), 1, 1),
                ("b".into(), "c".into(), 1, 1)
            ]
        );
    }

    #[test]
    fn co_retweet_ignores_originals_and_self() {
        let data = dataset(&[
            ("1", "a", 0, "RT x", Some("99")),
            ("2", "a", 5, "RT x", Some("99")),
            ("3", "b", 10, "RT x", Some("99")),
            ("4", "c", 10, "RT x", None),
        ]);
        assert_eq!(
            weights(&data, Signal::CoRetweet),
            [("a".into(), "b".into(), 2, 1)]
        );
        // Reposts carry no text: no co-tweet between a and b, nor with c's original.
        assert!(weights(&data, Signal::CoTweet).is_empty());
    }

    #[test]
    fn near_duplicates_are_found_and_identical_texts_left_to_co_tweet() {
        let data = dataset(&[
            (
                "1",
                "a",
                0,
                "the quick brown fox jumps over the lazy dog today",
                None,
            ),
            (
                "2",
                "b",
                10,
                "the quick brown fox jumps over the lazy dog today!!",
                None,
            ),
            (
                "3",
                "c",
                20,
                "the quick brown fox jumps over the lazy cat today",
                None,
            ),
            (
                "4",
                "d",
                30,
                "completely different words in this other sentence",
                None,
            ),
        ]);
        let pairs = weights(&data, Signal::CoSimilarTweet);
        // a–b normalise to different strings but the same word set; a–c share 8 of 10 words.
        assert_eq!(
            pairs
                .iter()
                .map(|p| (p.0.as_str(), p.1.as_str()))
                .collect::<Vec<_>>(),
            [("a", "b"), ("a", "c"), ("b", "c")]
        );
    }

    #[test]
    fn shared_faces_within_three_bits() {
        let mut data = dataset(&[
            ("1", "a", 0, "x", None),
            ("2", "b", 0, "y", None),
            ("3", "c", 0, "z", None),
        ]);
        let face = |phash| {
            Some(crate::dataset::FaceEvidence {
                ai_score: 0.9,
                ai_made: true,
                declared_ai: false,
                phash,
            })
        };
        data.accounts[0].face = face(0xffff_0000_ffff_0000);
        data.accounts[1].face = face(0xffff_0000_ffff_0007);
        data.accounts[2].face = face(0x0000_ffff_0000_ffff);
        let edges = shared_faces(&data, 3);
        let pairs: Vec<PairKey> = edges.iter().unwrap().map(|p| p.unwrap().0).collect();
        assert_eq!(pairs, [(0, 1)]);
    }

    #[test]
    fn pairs_counted_in_spilled_runs_add_up_to_the_same_weights() {
        // 40 accounts retweeting 30 posts at nearby times: hundreds of pairs, each seen in
        // many groups, so a counter of 7 pairs writes dozens of runs that share pairs.
        let mut posts = Vec::new();
        for i in 0..400u32 {
            let id = i.to_string();
            let account = format!("u{}", (i.wrapping_mul(2_654_435_761) >> 9) % 40);
            let target = format!("t{}", i % 30);
            posts.push((id, account, i64::from(i % 50), target));
        }
        let rows: Vec<(&str, &str, i64, &str, Option<&str>)> = posts
            .iter()
            .map(|(id, a, t, target)| (id.as_str(), a.as_str(), *t, "RT", Some(target.as_str())))
            .collect();
        let data = dataset(&rows);
        let in_memory = weights(&data, Signal::CoRetweet);
        assert!(in_memory.len() > 100);
        assert_eq!(weights_counted_in(&data, Signal::CoRetweet, 7), in_memory);
    }

    #[test]
    fn a_duplicate_post_is_dropped_from_the_join() {
        let data = dataset(&[
            ("1", "a", 0, "buy now", None),
            ("2", "b", 10, "buy now", None),
            ("1", "c", 20, "buy now", None), // same id as the first: dropped
        ]);
        assert_eq!(
            weights(&data, Signal::CoTweet),
            [("a".into(), "b".into(), 1, 1)]
        );
        assert_eq!(data.accounts[2].posts, 0);
    }
}
