//! Coordination signals: for each kind, the pairs of accounts it links and the evidence (the
//! actual pairs of posts). Co-actions — same text, near-duplicate text, retweet, link, reply
//! target, hashtags of a post, or a day's hashtag sequence — are counted two ways in one pass:
//!
//! - **as the QUT coordination-network-toolkit defines them** (`low_to_high`, `high_to_low`):
//!   the number of distinct posts of A that B matched within `window` (inclusive); these are
//!   the raw edges (`signal-edges.csv`) and equal the toolkit's. Unlike the toolkit, an
//!   account is never linked to itself.
//! - **against chance** (`matched_*`, `surprise_*`), which is what link strength uses:
//!   - the window adapts to how rare the shared item is: an item the accounts write (a text,
//!     a link, hashtags, a hashtag sequence) shared by `n` accounts is matched within
//!     `rare_window · (rare_accounts / n)²`, kept between `window` and `rare_window`. Chance
//!     pairs among `n` posts spread over a span grow as `n² · window`, so this keeps the
//!     number expected by chance per item the same: a link thousands post is matched within
//!     60 s, a near-duplicate text eight accounts post within an hour. Retweets and replies
//!     keep `window`: they follow the cascade of the post they react to, rare or not;
//!   - each match weighs the item's rarity, `min(1, max(√N, 8) / n)` for `N` accounts with
//!     posts (an item at most √N accounts share weighs 1, one a hundred times more popular
//!     0.01), so popular items do not glue accounts together;
//!   - [`ChanceModel`] gives what a pair would match by chance given how active each account
//!     is in the signal; [`crate::networks`] subtracts it.

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
    /// The same ordered hashtags over a UTC day, across posts ([`crate::sequences`]).
    CoHashtagSequence,
    SharedFace,
}

impl Signal {
    pub const CO_ACTIONS: [Signal; 7] = [
        Signal::CoTweet,
        Signal::CoSimilarTweet,
        Signal::CoRetweet,
        Signal::CoLink,
        Signal::CoReply,
        Signal::CoHashtags,
        Signal::CoHashtagSequence,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::CoTweet => "co-tweet",
            Signal::CoSimilarTweet => "co-similar-tweet",
            Signal::CoRetweet => "co-retweet",
            Signal::CoLink => "co-link",
            Signal::CoReply => "co-reply",
            Signal::CoHashtags => "co-hashtags",
            Signal::CoHashtagSequence => "co-hashtag-sequence",
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PairCounts {
    /// Distinct posts of `low` that `high` matched within `window` (the toolkit's weight
    /// low → high).
    pub low_to_high: u32,
    /// Distinct posts of `high` that `low` matched within `window`.
    pub high_to_low: u32,
    /// Distinct posts of `low` that `high` matched within the item's adaptive window.
    pub matched_low_to_high: u32,
    pub matched_high_to_low: u32,
    /// Those matches weighed by their items' rarity.
    pub surprise_low_to_high: f32,
    pub surprise_high_to_low: f32,
    /// Σ 1/n over the adaptive matches (both ways) of the sharers `n` of each matched item:
    /// with `matched_*`, the harmonic mean of how many accounts shared what the pair did.
    pub inverse_sharers: f32,
}

impl PairCounts {
    /// Posts both accounts took part in: the smaller direction (a burst of repeats by one
    /// account does not count as many coordinated posts).
    pub fn coordinated_posts(&self) -> u32 {
        self.matched_low_to_high.min(self.matched_high_to_low)
    }

    /// The rarity-weighted coordinated posts, the smaller direction.
    pub fn surprise(&self) -> f64 {
        f64::from(self.surprise_low_to_high.min(self.surprise_high_to_low))
    }

    /// Counts of a pair that matched once, both ways, with this weight (a shared face: an
    /// item of the two alone).
    pub fn once(surprise: f32) -> Self {
        PairCounts {
            low_to_high: 1,
            high_to_low: 1,
            matched_low_to_high: 1,
            matched_high_to_low: 1,
            surprise_low_to_high: surprise,
            surprise_high_to_low: surprise,
            inverse_sharers: 1.0,
        }
    }

    fn add(&mut self, other: &PairCounts) {
        self.low_to_high += other.low_to_high;
        self.high_to_low += other.high_to_low;
        self.matched_low_to_high += other.matched_low_to_high;
        self.matched_high_to_low += other.matched_high_to_low;
        self.surprise_low_to_high += other.surprise_low_to_high;
        self.surprise_high_to_low += other.surprise_high_to_low;
        self.inverse_sharers += other.inverse_sharers;
    }
}

/// One match of a post of `a` by account `b`: inside the toolkit's window or only inside the
/// item's adaptive one, and its rarity weight.
#[derive(Clone, Copy, Debug)]
struct Match {
    /// New for the adaptive count (false when only the toolkit's count is new).
    counted: bool,
    within_window: bool,
    surprise: f32,
    /// Accounts sharing the item.
    sharers: u32,
}

/// The evidence of one signal for a link: its counts and example matched posts
/// (post of low, post of high), gathered in a second pass for links only.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PairEvidence {
    #[serde(flatten)]
    pub counts: PairCounts,
    /// What this signal adds to the link's strength: its rarity-weighted coordinated posts
    /// less what chance explains (5 for a shared face).
    pub strength: f64,
    pub examples: Vec<(PostIx, PostIx)>,
}

pub type PairKey = (AccountIx, AccountIx);

fixed_record! {
    /// One pair's counts as stored, sorted by pair (the surprise weights as f32 bits).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct PairRecord {
        low: AccountIx,
        high: AccountIx,
        low_to_high: u32,
        high_to_low: u32,
        matched_low_to_high: u32,
        matched_high_to_low: u32,
        surprise_low_to_high: u32,
        surprise_high_to_low: u32,
        inverse_sharers: u32,
    }
}

impl PairRecord {
    fn new((low, high): PairKey, counts: PairCounts) -> Self {
        PairRecord {
            low,
            high,
            low_to_high: counts.low_to_high,
            high_to_low: counts.high_to_low,
            matched_low_to_high: counts.matched_low_to_high,
            matched_high_to_low: counts.matched_high_to_low,
            surprise_low_to_high: counts.surprise_low_to_high.to_bits(),
            surprise_high_to_low: counts.surprise_high_to_low.to_bits(),
            inverse_sharers: counts.inverse_sharers.to_bits(),
        }
    }

    fn counts(&self) -> PairCounts {
        PairCounts {
            low_to_high: self.low_to_high,
            high_to_low: self.high_to_low,
            matched_low_to_high: self.matched_low_to_high,
            matched_high_to_low: self.matched_high_to_low,
            surprise_low_to_high: f32::from_bits(self.surprise_low_to_high),
            surprise_high_to_low: f32::from_bits(self.surprise_high_to_low),
            inverse_sharers: f32::from_bits(self.inverse_sharers),
        }
    }
}

/// All pairs one signal links, sorted by pair; on disk when there are millions.
#[derive(Debug, Default)]
pub struct SignalEdges {
    pairs: Sorted<PairRecord>,
    /// What pairs match by chance (absent: nothing is expected by chance).
    pub chance: Option<ChanceModel>,
}

/// What two accounts would match in one signal by chance: if each account's posts in the
/// signal took their items and times independently of the others', a pair would match
/// `activity[a] · activity[b] · per_post_pair` rarity-weighted posts, where
/// `per_post_pair = Σ_items rarity · n(n − 1) · min(1, 2·window / span) / posts²` (`n`: the
/// item's posts, `window`: its adaptive window, `span`: the signal's time span, `posts`: all
/// posts keyed in the signal). The time term is what makes a network the whole export
/// consists of still stand out: chance does not put their posts within minutes.
#[derive(Clone, Debug, Default)]
pub struct ChanceModel {
    /// Posts (keyed items) of each account in the signal.
    pub activity: Vec<u32>,
    pub per_post_pair: f64,
}

impl ChanceModel {
    /// Rarity-weighted matches expected by chance between `a` and `b`.
    pub fn expected(&self, a: AccountIx, b: AccountIx) -> f64 {
        let activity =
            |x: AccountIx| f64::from(self.activity.get(x as usize).copied().unwrap_or(0));
        activity(a) * activity(b) * self.per_post_pair
    }
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
            chance: None,
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
        let first = match self.pending.take() {
            Some(record) => record,
            None => match self.merge.next()? {
                Ok(record) => record,
                Err(e) => return Some(Err(e)),
            },
        };
        let mut counts = first.counts();
        loop {
            match self.merge.next() {
                Some(Ok(next)) if (next.low, next.high) == (first.low, first.high) => {
                    counts.add(&next.counts());
                }
                Some(Ok(next)) => {
                    self.pending = Some(next);
                    break;
                }
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        Some(Ok(((first.low, first.high), counts)))
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

    fn add(&mut self, a: AccountIx, b: AccountIx, found: Match) -> io::Result<()> {
        let counts = self.map.entry((a.min(b), a.max(b))).or_default();
        let raw = u32::from(found.within_window);
        let counted = u32::from(found.counted);
        let surprise = if found.counted { found.surprise } else { 0.0 };
        if found.counted {
            counts.inverse_sharers += 1.0 / found.sharers as f32;
        }
        if a < b {
            counts.low_to_high += raw;
            counts.matched_low_to_high += counted;
            counts.surprise_low_to_high += surprise;
        } else {
            counts.high_to_low += raw;
            counts.matched_high_to_low += counted;
            counts.surprise_high_to_low += surprise;
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

    fn finish(mut self, chance: ChanceModel) -> io::Result<SignalEdges> {
        if self.runs.is_none() {
            let mut edges = SignalEdges::from_pairs(self.map);
            edges.chance = Some(chance);
            return Ok(edges);
        }
        self.write_run()?;
        let runs = self.runs.take().unwrap_or_default();
        Ok(SignalEdges {
            pairs: runs.finish()?,
            chance: Some(chance),
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
    /// Two posts coordinate when at most this far apart (milliseconds, inclusive): the
    /// toolkit's window, and the adaptive window's floor (for popular items).
    pub window_ms: i64,
    /// The adaptive window's ceiling, for items shared by `rare_accounts` or fewer accounts
    /// (`window_ms` or less turns adaptation off).
    pub rare_window_ms: i64,
    pub rare_accounts: u32,
    /// Near-duplicate threshold on the Jaccard similarity of word sets (0.6: two variants of
    /// a ten-word template, each with a word swapped, share 8 of 12 words).
    pub similarity: f64,
}

impl Default for CoActionParams {
    fn default() -> Self {
        Self {
            window_ms: 60_000,
            rare_window_ms: 3_600_000,
            rare_accounts: 8,
            similarity: 0.6,
        }
    }
}

impl CoActionParams {
    /// The window for an item shared by `accounts` accounts:
    /// `rare_window · (rare_accounts / accounts)²`, kept between `window` and `rare_window`.
    pub fn window_for(&self, accounts: u32) -> i64 {
        if self.rare_window_ms <= self.window_ms {
            return self.window_ms;
        }
        let ratio = f64::from(self.rare_accounts) / f64::from(accounts.max(1));
        let widened = self.rare_window_ms as f64 * ratio * ratio;
        (widened as i64).clamp(self.window_ms, self.rare_window_ms)
    }
}

/// The weight of a match on an item shared by `n` of the `N` accounts with posts:
/// `min(1, max(√N, 8) / n)`. An item at most √N accounts share (a network's, a small
/// community's) counts fully; beyond, each sharer's match weighs in inverse proportion to how
/// many share it, as the resource-allocation index of link prediction weighs common
/// neighbours: an item ten times more popular says a tenth as much about any one pair. In a
/// small export (an archive release of one operation, a few hundred accounts) items up to
/// eight accounts share still count fully.
pub fn rarity(accounts: u32, population: u32) -> f32 {
    let full = f64::from(population).sqrt().max(RARITY_FULL_MIN);
    (full / f64::from(accounts.max(1))).min(1.0) as f32
}

/// The fewest sharers below which an item always counts fully.
const RARITY_FULL_MIN: f64 = 8.0;

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
    if signal == Signal::CoHashtagSequence {
        found = sequence_examples(data, found)?;
    }
    Ok(found)
}

/// A matched sequence is named by its first posts; its evidence is every post of it, the
/// accounts' i-th posts side by side.
fn sequence_examples(
    data: &Dataset,
    firsts: FxHashMap<PairKey, Vec<(PostIx, PostIx)>>,
) -> io::Result<FxHashMap<PairKey, Vec<(PostIx, PostIx)>>> {
    let day_of_post = |post: PostIx| -> io::Result<Option<(AccountIx, i64)>> {
        Ok(data
            .post(post)?
            .map(|(account, time_ms, _)| (account, crate::sequences::day_of(time_ms))))
    };
    let mut wanted = FxHashSet::default();
    for &(p, q) in firsts.values().flatten() {
        wanted.extend(day_of_post(p)?);
        wanted.extend(day_of_post(q)?);
    }
    let posts =
        crate::sequences::sequence_posts(data.hashtag_uses(), &wanted, |p| data.is_dropped(p))?;
    let mut found = FxHashMap::default();
    for (pair, examples) in firsts {
        let mut aligned = Vec::new();
        for (p, q) in examples {
            let (Some(day_p), Some(day_q)) = (day_of_post(p)?, day_of_post(q)?) else {
                continue;
            };
            if let (Some(ps), Some(qs)) = (posts.get(&day_p), posts.get(&day_q)) {
                aligned.extend(ps.iter().copied().zip(qs.iter().copied()));
            }
        }
        aligned.truncate(EXAMPLES_KEPT);
        found.insert(pair, aligned);
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
    let chance = co_action(data, signal, params, &mut Sink::Count(&mut counter))?;
    counter.finish(chance)
}

fn co_action(
    data: &Dataset,
    signal: Signal,
    params: &CoActionParams,
    sink: &mut Sink,
) -> io::Result<ChanceModel> {
    if !data.is_finished() {
        return Err(io::Error::other(
            "the dataset is still being read (finish_reading was not called)",
        ));
    }
    let Some(keyed) = data.keyed(signal) else {
        return Ok(ChanceModel::default());
    };
    // Retweets and replies react to a post: their times follow its cascade (most within
    // hours of it, whoever they are), so a rare target says nothing about timing and they
    // keep the fixed window. What the accounts write themselves adapts.
    let reaction = CoActionParams {
        rare_window_ms: 0,
        ..params.clone()
    };
    match signal {
        Signal::CoSimilarTweet => near_duplicates(data, keyed, params, sink),
        Signal::CoRetweet | Signal::CoReply => {
            join_on_key(data, keyed, signal, &reaction, None, sink)
        }
        _ => join_on_key(data, keyed, signal, params, None, sink),
    }
}

/// Accept a candidate pair of posts (i, j); `None` accepts all.
type PostFilter<'f> = Option<&'f (dyn Fn(PostIx, PostIx) -> bool + Sync)>;

/// The co-action join: posts grouped by key (read in key order, one group in memory at a
/// time), and within a group every pair of posts by different accounts within the group's
/// window that `filter` accepts. Returns the signal's chance model.
fn join_on_key(
    data: &Dataset,
    keyed: &Sorted<Keyed>,
    signal: Signal,
    params: &CoActionParams,
    filter: PostFilter,
    sink: &mut Sink,
) -> io::Result<ChanceModel> {
    let accounts = data.accounts.len();
    // A post in several groups (several links, LSH bands, a day's hashtag runs under its first
    // post) can match one account in each: its matches are sorted (on disk past 16 MB) and
    // counted once per (post, account) after the join, instead of a set of every match in
    // memory. Other posts' matches are counted as they come.
    let deferred = (crate::dataset::has_several_groups(signal) && matches!(sink, Sink::Count(_)))
        .then(Sorter::<MatchRecord>::default);
    let mut join = Join {
        data,
        signal,
        params,
        population: data.accounts_with_posts(),
        filter,
        deferred,
        last_match: vec![0; accounts],
        last_raw_match: vec![0; accounts],
        stamp: 0,
        activity: vec![0; accounts],
        chance_pairs: 0.0,
        posts: 0,
        span: (i64::MAX, i64::MIN),
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
    join.group(&group, sink)?;
    if let Some(deferred) = join.deferred.take() {
        count_once_per_post_and_account(deferred.finish()?, sink)?;
    }
    Ok(join.chance_model())
}

fixed_record! {
    /// A match of a post (of account `a`) by account `b` in one group, for signals whose posts
    /// sit in several groups: sorted by (post, b) to count each once.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct MatchRecord {
        post: PostIx,
        b: AccountIx,
        a: AccountIx,
        /// Bit 0: counted within the adaptive window; bit 1: within the toolkit's.
        flags: u32,
        surprise: u32,
        sharers: u32,
    }
}

/// Counts each (post, account) once from the sorted matches: matched if any group matched it
/// (with the largest rarity weight among them), within the toolkit's window if any did so.
fn count_once_per_post_and_account(
    matches: Sorted<MatchRecord>,
    sink: &mut Sink,
) -> io::Result<()> {
    let mut pending: Option<(MatchRecord, Match)> = None;
    let flush = |pending: Option<(MatchRecord, Match)>, sink: &mut Sink| -> io::Result<()> {
        match (pending, sink) {
            (Some((first, found)), Sink::Count(counter)) => counter.add(first.a, first.b, found),
            _ => Ok(()),
        }
    };
    for record in matches.iter()? {
        let record = record?;
        let found = Match {
            counted: record.flags & 1 != 0,
            within_window: record.flags & 2 != 0,
            surprise: f32::from_bits(record.surprise),
            sharers: record.sharers,
        };
        match &mut pending {
            Some((first, merged)) if (first.post, first.b) == (record.post, record.b) => {
                if found.counted && (!merged.counted || found.surprise > merged.surprise) {
                    merged.surprise = found.surprise;
                    merged.sharers = found.sharers;
                }
                merged.counted |= found.counted;
                merged.within_window |= found.within_window;
            }
            _ => flush(pending.replace((record, found)), sink)?,
        }
    }
    flush(pending, sink)
}

/// The state of one join across its groups.
struct Join<'f> {
    data: &'f Dataset,
    signal: Signal,
    params: &'f CoActionParams,
    /// Accounts with posts: the `N` of [`rarity`].
    population: u32,
    filter: PostFilter<'f>,
    /// Matches to count once per (post, account) after the join (posts in several groups).
    deferred: Option<Sorter<MatchRecord>>,
    /// `last_match[b]` = the stamp of the item that last matched account b: one count per
    /// (post, b); `last_raw_match` the same within the toolkit's window. Between items,
    /// `last_match` also counts a group's distinct accounts.
    last_match: Vec<u64>,
    last_raw_match: Vec<u64>,
    stamp: u64,
    /// The chance model's sums: posts per account, Σ rarity·n(n−1)·p(window), posts, span.
    activity: Vec<u32>,
    chance_pairs: f64,
    posts: u64,
    span: (i64, i64),
}

impl Join<'_> {
    fn group(&mut self, group: &[Keyed], sink: &mut Sink) -> io::Result<()> {
        for item in group {
            self.activity[item.account as usize] += 1;
            self.span = (self.span.0.min(item.time_ms), self.span.1.max(item.time_ms));
        }
        self.posts += group.len() as u64;
        if group.len() < 2 {
            return Ok(());
        }
        let sharing = self.distinct_accounts(group);
        let window = self.params.window_for(sharing);
        let surprise = rarity(sharing, self.population);
        let n = group.len() as f64;
        // Filled in `chance_model` once the span is known: kept as (weight · n(n−1), window).
        self.chance_pairs += f64::from(surprise) * n * (n - 1.0) * window as f64;
        if sharing < 2 {
            return Ok(());
        }
        let mut lo = 0;
        let mut hi = 0;
        for item in group {
            while group[lo].time_ms < item.time_ms - window {
                lo += 1;
            }
            while hi + 1 < group.len() && group[hi + 1].time_ms <= item.time_ms + window {
                hi += 1;
            }
            self.stamp += 1;
            for other in &group[lo..=hi] {
                let b = other.account;
                if b == item.account {
                    continue;
                }
                let within_window = (other.time_ms - item.time_ms).abs() <= self.params.window_ms;
                let need_counted = self.last_match[b as usize] != self.stamp;
                let need_raw = within_window && self.last_raw_match[b as usize] != self.stamp;
                if !need_counted && !need_raw {
                    continue;
                }
                if self
                    .filter
                    .is_some_and(|accept| !accept(item.post, other.post))
                {
                    continue;
                }
                if need_counted {
                    self.last_match[b as usize] = self.stamp;
                }
                if need_raw {
                    self.last_raw_match[b as usize] = self.stamp;
                }
                let found = Match {
                    counted: need_counted,
                    within_window: need_raw,
                    surprise,
                    sharers: sharing,
                };
                let several = self.data.in_several_groups(self.signal, item.post);
                match &mut self.deferred {
                    Some(deferred) if several => deferred.push(MatchRecord {
                        post: item.post,
                        b,
                        a: item.account,
                        flags: u32::from(need_counted) | u32::from(need_raw) << 1,
                        surprise: surprise.to_bits(),
                        sharers: sharing,
                    })?,
                    _ => record(sink, item, other, found)?,
                }
            }
        }
        Ok(())
    }

    fn distinct_accounts(&mut self, group: &[Keyed]) -> u32 {
        self.stamp += 1;
        let mut sharing = 0;
        for item in group {
            let slot = &mut self.last_match[item.account as usize];
            if *slot != self.stamp {
                *slot = self.stamp;
                sharing += 1;
            }
        }
        sharing
    }

    fn chance_model(self) -> ChanceModel {
        let span = (self.span.1 - self.span.0).max(1) as f64;
        let posts = self.posts.max(1) as f64;
        // Two posts at independent uniform times fall within w of each other with
        // probability ≈ 2w / span (at most 1).
        let per_post_pair = (2.0 * self.chance_pairs / span) / (posts * posts);
        ChanceModel {
            activity: self.activity,
            per_post_pair,
        }
    }
}

/// Counts `item`'s post as matched by `other`'s account (or keeps the pair as an example).
fn record(sink: &mut Sink, item: &Keyed, other: &Keyed, matched: Match) -> io::Result<()> {
    let (a, b) = (item.account, other.account);
    match sink {
        Sink::Count(counter) => counter.add(a, b, matched)?,
        Sink::Examples { wanted, found } => {
            if !matched.counted {
                return Ok(());
            }
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

/// MinHash signature length and LSH banding: 12 bands of 3 rows find pairs of Jaccard 0.6
/// (two variants of a ten-word template, each with a word swapped: 8 of 12) with probability
/// 1 − (1 − 0.6³)¹² ≈ 0.95, of 0.8 with ≈ 1, of 0.4 with ≈ 0.55 (candidates are verified
/// exactly).
const MINHASHES: usize = 36;
const BAND_ROWS: usize = 3;
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
) -> io::Result<ChanceModel> {
    let similar = |i: PostIx, j: PostIx| match (data.similar_words(i), data.similar_words(j)) {
        (Some((key_i, words_i)), Some((key_j, words_j))) => {
            (key_i == 0 || key_i != key_j) && jaccard(words_i, words_j) >= params.similarity
        }
        _ => false,
    };
    join_on_key(
        data,
        bands,
        Signal::CoSimilarTweet,
        params,
        Some(&similar),
        sink,
    )
}

/// MinHash by multiply-shift hashing: each token is mixed once, and each of the signature's
/// hash functions is `(odd multiplier · mixed + offset) >> 32` with its own multiplier and
/// offset, a universal family that costs one multiply per function instead of a full mix.
fn minhash(tokens: &[u32]) -> [u32; MINHASHES] {
    let mut signature = [u32::MAX; MINHASHES];
    for &token in tokens {
        let mixed = mix(u64::from(token));
        for (slot, (multiplier, offset)) in signature.iter_mut().zip(MINHASH_PARAMETERS.iter()) {
            let h = (mixed.wrapping_mul(*multiplier).wrapping_add(*offset) >> 32) as u32;
            *slot = (*slot).min(h);
        }
    }
    signature
}

/// Odd multipliers and offsets of the MinHash functions, drawn once from SplitMix64.
const MINHASH_PARAMETERS: [(u64, u64); MINHASHES] = {
    let mut parameters = [(0u64, 0u64); MINHASHES];
    let mut k = 0;
    while k < MINHASHES {
        parameters[k] = (const_mix(2 * k as u64 + 1) | 1, const_mix(2 * k as u64 + 2));
        k += 1;
    }
    parameters
};

const fn const_mix(seed: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
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
                    pairs.insert((a.min(b), a.max(b)), PairCounts::once(1.0));
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
        // The toolkit's edges: pairs matched within the window (others only in the adaptive one).
        let mut out: Vec<_> = edges
            .iter()
            .unwrap()
            .map(Result::unwrap)
            .filter(|(_, e)| e.low_to_high + e.high_to_low > 0)
            .map(|((a, b), e)| {
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

    fn counts(
        data: &Dataset,
        signal: Signal,
        params: &CoActionParams,
    ) -> Vec<(String, PairCounts)> {
        let edges = co_action_counts(data, signal, params, PAIRS_IN_MEMORY).unwrap();
        edges
            .iter()
            .unwrap()
            .map(Result::unwrap)
            .map(|((a, b), e)| {
                let name = |x: AccountIx| data.accounts[x as usize].id.clone();
                (format!("{}-{}", name(a), name(b)), e)
            })
            .collect()
    }

    #[test]
    fn the_window_widens_for_rare_items_and_narrows_for_popular_ones() {
        let params = CoActionParams::default();
        assert_eq!(params.window_for(2), 3_600_000);
        assert_eq!(params.window_for(8), 3_600_000);
        assert_eq!(params.window_for(16), 900_000);
        assert_eq!(params.window_for(10_000), 60_000);
        let fixed = CoActionParams {
            rare_window_ms: 60_000,
            ..CoActionParams::default()
        };
        assert_eq!(fixed.window_for(2), 60_000);
        // A text two accounts post 20 minutes apart: no toolkit edge, one adaptive match
        // of full rarity weight each way.
        let data = dataset(&[
            ("1", "a", 0, "a rare text only these two post", None),
            ("2", "b", 1200, "a rare text only these two post", None),
            ("3", "c", 0, "filler", None),
            ("4", "d", 0, "more filler", None),
        ]);
        let found = counts(&data, Signal::CoTweet, &params);
        assert_eq!(found.len(), 1);
        let (pair, e) = &found[0];
        assert_eq!(pair, "a-b");
        assert_eq!((e.low_to_high, e.high_to_low), (0, 0));
        assert_eq!((e.matched_low_to_high, e.matched_high_to_low), (1, 1));
        assert!((e.surprise() - 1.0).abs() < 1e-6, "{e:?}");
        assert!(counts(&data, Signal::CoTweet, &fixed).is_empty());
    }

    #[test]
    fn popular_items_weigh_less_and_chance_grows_with_activity() {
        assert_eq!(rarity(2, 10_000), 1.0);
        assert_eq!(rarity(100, 10_000), 1.0);
        assert!((rarity(1000, 10_000) - 0.1).abs() < 1e-6);
        assert!((rarity(10_000, 10_000) - 0.01).abs() < 1e-6);
        // Ten accounts post one phrase within a minute; two of them also share a rare text.
        let mut rows: Vec<(String, String, i64, String)> = (0..10)
            .map(|i| (i.to_string(), format!("u{i}"), i, "good morning".to_owned()))
            .collect();
        rows.push((
            "20".into(),
            "u0".into(),
            500,
            "only two of us say this".into(),
        ));
        rows.push((
            "21".into(),
            "u1".into(),
            510,
            "only two of us say this".into(),
        ));
        for i in 0..30 {
            rows.push((
                format!("{}", 100 + i),
                format!("x{i}"),
                9000 * i,
                format!("own {i}"),
            ));
        }
        let posts: Vec<(&str, &str, i64, &str, Option<&str>)> = rows
            .iter()
            .map(|(id, a, t, text)| (id.as_str(), a.as_str(), *t, text.as_str(), None))
            .collect();
        let data = dataset(&posts);
        let found = counts(&data, Signal::CoTweet, &CoActionParams::default());
        let of = |pair: &str| found.iter().find(|(p, _)| p == pair).map(|(_, e)| *e);
        let (rare, common) = (of("u0-u1").unwrap(), of("u2-u3").unwrap());
        assert_eq!(rare.coordinated_posts(), 2);
        assert_eq!(common.coordinated_posts(), 1);
        // Up to 8 accounts (more than √40) get full weight: the phrase ten share weighs 0.8.
        assert!(
            common.surprise() < 0.85 && rare.surprise() > 1.7,
            "{common:?} {rare:?}"
        );
        let edges =
            co_action_counts(&data, Signal::CoTweet, &CoActionParams::default(), 99).unwrap();
        let chance = edges.chance.unwrap();
        let (u0, u2) = (
            data.account_ix("u0").unwrap(),
            data.account_ix("u2").unwrap(),
        );
        let x0 = data.account_ix("x0").unwrap();
        assert!(chance.expected(u0, u2) > chance.expected(u2, x0));
        assert!(chance.expected(u0, u2) < 0.1, "{}", chance.expected(u0, u2));
    }

    #[test]
    fn accounts_posting_one_hashtag_sequence_over_a_day_are_linked_with_its_posts() {
        let mut rows: Vec<(String, String, i64, String)> = Vec::new();
        let tags = ["#vote", "#army", "#nation", "#unity", "#king"];
        for (i, tag) in tags.iter().enumerate() {
            let t = 3600 * i as i64;
            rows.push((
                format!("a{i}"),
                "a".into(),
                t,
                format!("morning words {tag}"),
            ));
            rows.push((
                format!("n{i}"),
                "a".into(),
                t + 60,
                "unrelated chatter".into(),
            ));
            rows.push((
                format!("b{i}"),
                "b".into(),
                t + 1800,
                format!("other text {tag}"),
            ));
            // c posts the same hashtags in reverse order.
            rows.push((format!("c{i}"), "c".into(), t, format!("x {}", tags[4 - i])));
        }
        let posts: Vec<(&str, &str, i64, &str, Option<&str>)> = rows
            .iter()
            .map(|(id, a, t, text)| (id.as_str(), a.as_str(), *t, text.as_str(), None))
            .collect();
        let data = dataset(&posts);
        assert_eq!(
            weights(&data, Signal::CoHashtagSequence),
            [("a".into(), "b".into(), 1, 1)]
        );
        assert!(weights(&data, Signal::CoHashtags).is_empty());
        let wanted = FxHashSet::from_iter([(0, data.account_ix("b").unwrap())]);
        let params = CoActionParams::default();
        let found = examples(&data, Signal::CoHashtagSequence, &params, &wanted).unwrap();
        let ids: Vec<(String, String)> = found[&(0, 1)]
            .iter()
            .map(|&(p, q)| {
                (
                    data.post(p).unwrap().unwrap().2,
                    data.post(q).unwrap().unwrap().2,
                )
            })
            .collect();
        let expected: Vec<(String, String)> =
            (0..5).map(|i| (format!("a{i}"), format!("b{i}"))).collect();
        assert_eq!(ids, expected);
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
