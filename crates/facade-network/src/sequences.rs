//! Hashtag sequences (Pacheco et al., "Uncovering Coordinated Networks on Social Media",
//! ICWSM 2021): the ordered hashtags an account posts in one UTC day, across its posts. Two
//! accounts that post the same sequence on the same day coordinate, though each post alone
//! carries one hashtag among unrelated text.
//!
//! Every hashtag use is kept as a 28-byte record while reading (sorted, on disk past 16 MB);
//! when reading ends each (account, day) becomes one keyed record — key: the day and the
//! sequence, time: the day's start, post: the sequence's first post — that the co-action join
//! compares like any other signal. The posts that make up a sequence are read back for the
//! links' evidence only.

use std::io;

use rustc_hash::{FxHashMap, FxHashSet};
use xxhash_rust::xxh3::xxh3_64;

use crate::dataset::{AccountIx, Keyed, PostIx};
use crate::spill::{fixed_record, Sorted, Sorter};

pub const DAY_MS: i64 = 86_400_000;

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

    /// The keyed record of this day's sequence, when the rule accepts it.
    fn keyed(&self, rule: &SequenceRule) -> Option<Keyed> {
        let distinct: FxHashSet<u64> = self.tags.iter().copied().collect();
        let accepted = self.tags.len() >= rule.min_hashtags
            && self.posts.len() >= rule.min_posts.max(2)
            && distinct.len() >= rule.min_distinct;
        if !accepted {
            return None;
        }
        let mut bytes = Vec::with_capacity(8 * (self.tags.len() + 1));
        bytes.extend_from_slice(&self.day.to_le_bytes());
        for tag in &self.tags {
            bytes.extend_from_slice(&tag.to_le_bytes());
        }
        Some(Keyed {
            key: xxh3_64(&bytes),
            time_ms: self.day * DAY_MS,
            post: *self.posts.first()?,
            account: self.account,
        })
    }
}

fn day_of(time_ms: i64) -> i64 {
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
            if let Some(record) = day.keyed(rule) {
                keyed.push(record)?;
            }
            day = Day::default();
        }
        day.push(&use_);
    }
    if let Some(record) = day.keyed(rule) {
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

/// The day (days since 1970, UTC) of a time.
pub fn day_index(time_ms: i64) -> i64 {
    day_of(time_ms)
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

    fn keys(sorted: &Sorted<Keyed>) -> Vec<(AccountIx, u64)> {
        let mut out: Vec<_> = sorted
            .iter()
            .unwrap()
            .map(|k| {
                let k = k.unwrap();
                (k.account, k.key)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_same_ordered_hashtags_over_a_day_give_the_same_key() {
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
        // Account 4: one post with all five hashtags (co-hashtags' business, not a sequence).
        for tag in tags {
            rows.push((4, 0, 40, tag));
        }
        let found = keys(&sequences(&uses(&rows), &SequenceRule::default(), |_| false).unwrap());
        assert_eq!(found.iter().map(|k| k.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(found[0].1, found[1].1);
        assert_ne!(found[0].1, found[2].1);
        assert_ne!(found[0].1, found[3].1);
        let dropped = sequences(&uses(&rows), &SequenceRule::default(), |p| p == 3).unwrap();
        assert_eq!(keys(&dropped).len(), 3, "account 0 falls to 4 hashtags");
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
