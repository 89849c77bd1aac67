//! Coordination signals: for each kind, the pairs of accounts it links and the evidence (the
//! actual pairs of posts). Co-actions — same text, near-duplicate text, retweet, link, reply
//! target or hashtag sequence within `window` — follow the QUT coordination-network-toolkit's
//! definition: the weight from account A to account B is the number of distinct posts of A
//! that B matched within the window (inclusive). Unlike the toolkit, an account is never
//! linked to itself.

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::dataset::{AccountIx, Dataset, Key, PostIx};
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

/// All pairs one signal links.
#[derive(Debug, Default)]
pub struct SignalEdges {
    pub pairs: FxHashMap<PairKey, PairCounts>,
}

/// Where the join's matches go: counted for every pair, or kept as examples for some.
enum Sink<'s> {
    Count(&'s mut SignalEdges),
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

/// One post under one key (a text, a retweeted id, a link…).
#[derive(Clone, Copy)]
struct Keyed {
    key: u64,
    time_ms: i64,
    account: AccountIx,
    post: PostIx,
}

impl Keyed {
    fn of(data: &Dataset, key: u64, post: PostIx) -> Self {
        let p = &data.posts[post as usize];
        Keyed {
            key,
            time_ms: p.time_ms,
            account: p.account,
            post,
        }
    }
}

/// Computes the chosen co-action signals, in parallel.
/// Example post pairs of `signal` for the `wanted` pairs (a second pass of the join).
pub fn examples(
    data: &Dataset,
    signal: Signal,
    params: &CoActionParams,
    wanted: &FxHashSet<PairKey>,
) -> FxHashMap<PairKey, Vec<(PostIx, PostIx)>> {
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
        );
    }
    found
}

pub fn co_actions(
    data: &Dataset,
    signals: &[Signal],
    params: &CoActionParams,
) -> Vec<(Signal, SignalEdges)> {
    signals
        .par_iter()
        .filter(|s| Signal::CO_ACTIONS.contains(s))
        .map(|&signal| (signal, co_action_counts(data, signal, params)))
        .collect()
}

fn co_action_counts(data: &Dataset, signal: Signal, params: &CoActionParams) -> SignalEdges {
    let mut edges = SignalEdges::default();
    co_action(data, signal, params, &mut Sink::Count(&mut edges));
    edges
}

fn co_action(data: &Dataset, signal: Signal, params: &CoActionParams, sink: &mut Sink) {
    // Signals with one key per post: a text, a reposted id, a reply target, a hashtag sequence.
    let single_key: Option<fn(&crate::dataset::Post) -> Option<Key>> = match signal {
        Signal::CoTweet => Some(|p| p.text_key),
        Signal::CoRetweet => Some(|p| p.repost_of),
        Signal::CoReply => Some(|p| p.reply_to),
        Signal::CoHashtags => Some(|p| p.hashtag_key),
        _ => None,
    };
    if let Some(key_of) = single_key {
        let items = (0..data.posts.len() as PostIx)
            .filter_map(|post| {
                key_of(&data.posts[post as usize]).map(|key| Keyed::of(data, key.get(), post))
            })
            .collect();
        return join_on_key(data, items, params.window_ms, None, sink);
    }
    match signal {
        Signal::CoLink => {
            let items = data
                .links
                .iter()
                .map(|&(key, post)| Keyed::of(data, key, post))
                .collect();
            // A post with several links sits in several groups: deduplicate its matches.
            join_on_key(data, items, params.window_ms, Some(&|_, _| true), sink)
        }
        Signal::CoSimilarTweet => near_duplicates(data, params, sink),
        _ => {}
    }
}

/// Accept a candidate pair of posts (i, j); `None` accepts all.
type PostFilter<'f> = Option<&'f (dyn Fn(PostIx, PostIx) -> bool + Sync)>;

/// The co-action join: posts grouped by key, and within a group every pair of posts by
/// different accounts at most `window_ms` apart. With a filter, a post may sit in several
/// groups (several links, several LSH bands), so (post, other account) matches are
/// deduplicated across groups.
fn join_on_key(
    data: &Dataset,
    mut items: Vec<Keyed>,
    window_ms: i64,
    filter: PostFilter,
    sink: &mut Sink,
) {
    items.sort_unstable_by_key(|k| (k.key, k.time_ms, k.post));
    // last_match[b] = 1 + the item that last matched account b: one count per (post, b).
    let mut last_match = vec![0u32; data.accounts.len()];
    let mut seen: FxHashSet<(PostIx, AccountIx)> = FxHashSet::default();
    let mut start = 0;
    while start < items.len() {
        let key = items[start].key;
        let end = start + items[start..].iter().take_while(|k| k.key == key).count();
        let group = &items[start..end];
        if group.len() > 1 {
            join_group(
                group,
                start,
                window_ms,
                filter,
                &mut last_match,
                &mut seen,
                sink,
            );
        }
        start = end;
    }
}

#[allow(clippy::too_many_arguments)]
fn join_group(
    group: &[Keyed],
    offset: usize,
    window_ms: i64,
    filter: PostFilter,
    last_match: &mut [u32],
    seen: &mut FxHashSet<(PostIx, AccountIx)>,
    sink: &mut Sink,
) {
    let mut lo = 0;
    let mut hi = 0;
    for (i, item) in group.iter().enumerate() {
        while group[lo].time_ms < item.time_ms - window_ms {
            lo += 1;
        }
        while hi + 1 < group.len() && group[hi + 1].time_ms <= item.time_ms + window_ms {
            hi += 1;
        }
        let stamp = (offset + i + 1) as u32;
        for other in &group[lo..=hi] {
            let b = other.account;
            if b == item.account || last_match[b as usize] == stamp {
                continue;
            }
            if let Some(accept) = filter {
                if !accept(item.post, other.post) || !seen.insert((item.post, b)) {
                    continue;
                }
            }
            last_match[b as usize] = stamp;
            record(sink, item, other);
        }
    }
}

/// Counts `item`'s post as matched by `other`'s account (or keeps the pair as an example).
fn record(sink: &mut Sink, item: &Keyed, other: &Keyed) {
    let (a, b) = (item.account, other.account);
    let key = (a.min(b), a.max(b));
    match sink {
        Sink::Count(edges) => {
            let counts = edges.pairs.entry(key).or_default();
            if a < b {
                counts.low_to_high += 1;
            } else {
                counts.high_to_low += 1;
            }
        }
        Sink::Examples { wanted, found } => {
            if !wanted.contains(&key) {
                return;
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
}

/// MinHash signature length and LSH banding: 8 bands of 4 rows find pairs of Jaccard 0.8
/// with probability 1 − (1 − 0.8⁴)⁸ ≈ 0.985, and of 0.5 with ≈ 0.40 (then verified exactly).
const MINHASHES: usize = 32;
const BAND_ROWS: usize = 4;

/// Near-duplicate posts (Jaccard of word sets ≥ `similarity`, not identical after
/// normalisation — those are co-tweets) by MinHash LSH instead of all pairs.
fn near_duplicates(data: &Dataset, params: &CoActionParams, sink: &mut Sink) {
    let mut items = Vec::with_capacity(data.token_spans.len() * MINHASHES / BAND_ROWS);
    for &span in &data.token_spans {
        let post = span.0;
        let signature = minhash(data.tokens(span));
        for (band, rows) in signature.chunks(BAND_ROWS).enumerate() {
            let mut bytes = [0u8; 4 * BAND_ROWS + 1];
            bytes[0] = band as u8;
            for (r, value) in rows.iter().enumerate() {
                bytes[1 + 4 * r..5 + 4 * r].copy_from_slice(&value.to_le_bytes());
            }
            items.push(Keyed::of(data, xxh3_64(&bytes), post));
        }
    }
    let similar = |i: PostIx, j: PostIx| {
        let (pi, pj) = (&data.posts[i as usize], &data.posts[j as usize]);
        if pi.text_key.is_some() && pi.text_key == pj.text_key {
            return false;
        }
        // Spans are stored in post order.
        let span = |post: PostIx| data.token_spans.binary_search_by_key(&post, |s| s.0).ok();
        match (span(i), span(j)) {
            (Some(si), Some(sj)) => {
                jaccard(
                    data.tokens(data.token_spans[si]),
                    data.tokens(data.token_spans[sj]),
                ) >= params.similarity
            }
            _ => false,
        }
    };
    join_on_key(data, items, params.window_ms, Some(&similar), sink)
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
    let mut edges = SignalEdges::default();
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
                    edges.pairs.insert(
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
    edges
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
        data
    }

    fn weights(data: &Dataset, signal: Signal) -> Vec<(String, String, u32, u32)> {
        let edges = co_action_counts(data, signal, &CoActionParams::default());
        let mut out: Vec<_> = edges
            .pairs
            .iter()
            .map(|(&(a, b), e)| {
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
                phash,
            })
        };
        data.accounts[0].face = face(0xffff_0000_ffff_0000);
        data.accounts[1].face = face(0xffff_0000_ffff_0007);
        data.accounts[2].face = face(0x0000_ffff_0000_ffff);
        let edges = shared_faces(&data, 3);
        assert_eq!(edges.pairs.keys().collect::<Vec<_>>(), [&(0, 1)]);
    }
}
