//! Hashtag sequences (Pacheco et al., "Uncovering Coordinated Networks on Social Media",
//! ICWSM 2021): the ordered hashtags an account posts in one UTC day, across its posts. Two
//! accounts that post the same sequence on the same day coordinate, though each post alone
//! carries one hashtag among unrelated text.
//!
//! Pacheco et al. compare whole sequences; one stray hashtag (a post about something else that
//! day) then hides a match. facade compares the runs of [`RUN`] consecutive hashtags of the
//! day's sequence: two accounts coordinate on a day when they share one such run (with at
//! least two distinct hashtags), so unrelated posts in between — with or without hashtags —
//! break at most the runs they interrupt. A day counts once per pair, however many runs match.
//!
//! Every hashtag use is kept as a 28-byte record while reading (sorted, on disk past 16 MB);
//! when reading ends each accepted (account, day) becomes one keyed record per distinct run —
//! key: the day and the run, time: the day's start, post: the day's first post (so the join,
//! which counts distinct posts, counts the day once) — that the co-action join compares like
//! any other signal. The posts that make up a sequence are read back for the links' evidence
//! only.

use std::io;

use rustc_hash::{FxHashMap, FxHashSet};
use xxhash_rust::xxh3::xxh3_64;

use crate::dataset::{AccountIx, Keyed, PostIx};
use crate::spill::{fixed_record, Sorted, Sorter};

pub const DAY_MS: i64 = 86_400_000;

/// Consecutive hashtags compared: three, so that a run is rare unless copied, and a stray
/// hashtag in a sequence of five still leaves a run intact on one side of it.
pub const RUN: usize = 3;

fixed_record! {
    /// One hashtag of one post: sorted by account, time, post and place in the post, so an
    /// account's day reads in order.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub struct HashtagUse {
        pub account: AccountIx,
        pub time_ms: i64,
        pub post: PostIx,
        pub position: u32,
        /// Hash of the lower-cased hashtag.
        pub tag: u64,
    }
}

/// Which days count as a sequence. Pacheco et al. keep account-days with at least 5 tweets
/// and 5 hashtags; facade counts the posts that carry hashtags (posts without any are
/// skipped, so unrelated posts in between neither break nor make a sequence) and asks for
/// several distinct hashtags, so that repeating one trending hashtag all day is not a
/// "sequence" thousands of accounts share.
#[derive(Clone, Debug)]
pub struct SequenceRule {
    pub min_hashtags: usize,
    /// Posts with hashtags that day (≥ 2: one post's own hashtags are `co-hashtags`).
    pub min_posts: usize,
    pub min_distinct: usize,
}

impl Default for SequenceRule {
    fn default() -> Self {
        Self {
            min_hashtags: 5,
            min_posts: 3,
            min_distinct: 3,
        }
    }
}

/// One account's hashtags of one day, as read in order.
#[derive(Default)]
struct Day {
    account: AccountIx,
    day: i64,
    posts: Vec<PostIx>,
    tags: Vec<u64>,
}

impl Day {
    fn starts(&self, use_: &HashtagUse) -> bool {
        self.tags.is_empty() || self.account != use_.account || self.day != day_of(use_.time_ms)
    }

    fn push(&mut self, use_: &HashtagUse) {
        if self.tags.is_empty() {
            self.account = use_.account;
            self.day = day_of(use_.time_ms);
        }
        if self.posts.last() != Some(&use_.post) {
            self.posts.push(use_.post);
        }
        self.tags.push(use_.tag);
    }

    /// The keyed records of this day's runs, when the rule accepts the day.
    fn keyed(&self, rule: &SequenceRule) -> Vec<Keyed> {
        let distinct: FxHashSet<u64> = self.tags.iter().copied().collect();
        let accepted = self.tags.len() >= rule.min_hashtags.max(RUN)
            && self.posts.len() >= rule.min_posts.max(2)
            && distinct.len() >= rule.min_distinct;
        let Some(&first) = self.posts.first().filter(|_| accepted) else {
            return Vec::new();
        };
        let mut keys: Vec<u64> = self
            .tags
            .windows(RUN)
            .filter(|run| run.iter().any(|t| *t != run[0]))
            .map(|run| {
                let mut bytes = Vec::with_capacity(8 * (RUN + 1));
                bytes.extend_from_slice(&self.day.to_le_bytes());
                for tag in run {
                    bytes.extend_from_slice(&tag.to_le_bytes());
                }
                xxh3_64(&bytes)
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .map(|key| Keyed {
                key,
                time_ms: self.day * DAY_MS,
                post: first,
                account: self.account,
            })
            .collect()
    }
}

/// The day (days since 1970, UTC) of a time.
pub fn day_of(time_ms: i64) -> i64 {
    time_ms.div_euclid(DAY_MS)
}

/// The keyed records of every accepted (account, day) sequence, from the sorted uses;
/// `dropped` says which posts are duplicates to leave out.
pub fn sequences(
    uses: &Sorted<HashtagUse>,
    rule: &SequenceRule,
    dropped: impl Fn(PostIx) -> bool,
) -> io::Result<Sorted<Keyed>> {
    let mut keyed = Sorter::default();
    let mut day = Day::default();
    for use_ in uses.iter()? {
        let use_ = use_?;
        if dropped(use_.post) {
            continue;
        }
        if day.starts(&use_) {
            for record in day.keyed(rule) {
                keyed.push(record)?;
            }
            day = Day::default();
        }
        day.push(&use_);
    }
    for record in day.keyed(rule) {
        keyed.push(record)?;
    }
    keyed.finish()
}

/// The posts that make up the sequences of the wanted (account, day)s, in order.
pub fn sequence_posts(
    uses: &Sorted<HashtagUse>,
    wanted: &FxHashSet<(AccountIx, i64)>,
    dropped: impl Fn(PostIx) -> bool,
) -> io::Result<FxHashMap<(AccountIx, i64), Vec<PostIx>>> {
    let mut found: FxHashMap<(AccountIx, i64), Vec<PostIx>> = FxHashMap::default();
    for use_ in uses.iter()? {
        let use_ = use_?;
        let key = (use_.account, day_of(use_.time_ms));
        if dropped(use_.post) || !wanted.contains(&key) {
            continue;
        }
        let posts = found.entry(key).or_default();
        if posts.last() != Some(&use_.post) {
            posts.push(use_.post);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(rows: &[(AccountIx, i64, PostIx, &str)]) -> Sorted<HashtagUse> {
        let records = rows
            .iter()
            .enumerate()
            .map(|(i, &(account, time_ms, post, tag))| HashtagUse {
                account,
                time_ms,
                post,
                position: i as u32,
                tag: xxh3_64(tag.as_bytes()),
            })
            .collect();
        Sorted::from_vec(records)
    }

    /// The run keys of each account.
    fn keys(sorted: &Sorted<Keyed>) -> Vec<(AccountIx, Vec<u64>)> {
        let mut by_account: std::collections::BTreeMap<AccountIx, Vec<u64>> = Default::default();
        for k in sorted.iter().unwrap() {
            let k = k.unwrap();
            by_account.entry(k.account).or_default().push(k.key);
        }
        by_account
            .into_iter()
            .map(|(a, mut keys)| {
                keys.sort();
                (a, keys)
            })
            .collect()
    }

    fn shared(x: &[u64], y: &[u64]) -> usize {
        x.iter().filter(|k| y.contains(k)).count()
    }

    #[test]
    fn the_same_ordered_hashtags_over_a_day_share_runs() {
        let hour = 3_600_000;
        let tags = ["a", "b", "c", "d", "e"];
        let mut rows = Vec::new();
        for (i, tag) in tags.iter().enumerate() {
            let t = i as i64 * hour;
            rows.push((0, t, i as PostIx, *tag));
            rows.push((1, t + 600_000, 10 + i as PostIx, *tag));
            // Account 2 posts them in another order; account 3 on the next day.
            rows.push((2, (4 - i as i64) * hour, 20 + i as PostIx, *tag));
            rows.push((3, DAY_MS + t, 30 + i as PostIx, *tag));
        }
        // Account 5: the same, with a stray hashtag of another post after the second.
        for (i, tag) in ["a", "b", "stray", "c", "d", "e"].iter().enumerate() {
            rows.push((5, i as i64 * hour + 1, 50 + i as PostIx, *tag));
        }
        // Account 4: one post with all five hashtags (co-hashtags' business, not a sequence).
        for tag in tags {
            rows.push((4, 0, 40, tag));
        }
        let found = keys(&sequences(&uses(&rows), &SequenceRule::default(), |_| false).unwrap());
        let accounts: Vec<AccountIx> = found.iter().map(|k| k.0).collect();
        assert_eq!(accounts, [0, 1, 2, 3, 5]);
        let runs = |a: usize| &found[accounts.iter().position(|&x| x == a as u32).unwrap()].1;
        assert_eq!(runs(0).len(), 3);
        assert_eq!(runs(0), runs(1));
        assert_eq!(shared(runs(0), runs(2)), 0, "reversed");
        assert_eq!(shared(runs(0), runs(3)), 0, "another day");
        assert_eq!(
            shared(runs(0), runs(5)),
            1,
            "c d e survives the stray hashtag"
        );
        let dropped = sequences(&uses(&rows), &SequenceRule::default(), |p| p == 3).unwrap();
        assert_eq!(keys(&dropped).len(), 4, "account 0 falls to 4 hashtags");
    }

    #[test]
    fn one_trending_hashtag_repeated_is_not_a_sequence() {
        let rows: Vec<_> = (0..8)
            .map(|i| (0, i * 1000, i as PostIx, "trend"))
            .collect();
        let found = sequences(&uses(&rows), &SequenceRule::default(), |_| false).unwrap();
        assert!(found.is_empty());
    }

    #[test]
    fn the_posts_of_a_sequence_are_read_back_in_order() {
        let rows = [
            (0, 5, 7, "a"),
            (0, 5, 7, "b"),
            (0, 9, 3, "c"),
            (1, 5, 8, "a"),
        ];
        let wanted = FxHashSet::from_iter([(0, 0)]);
        let posts = sequence_posts(&uses(&rows), &wanted, |_| false).unwrap();
        assert_eq!(posts[&(0, 0)], [7, 3]);
        assert_eq!(posts.len(), 1);
    }
}
