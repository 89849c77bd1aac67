//! From signals to networks: the weighted account graph, its communities, and a score per
//! community that an analyst can read term by term.
//!
//! A link's **strength** is, summed over co-action signals, the posts the two accounts
//! coordinated on weighed against chance (each signal's rarity-weighted matches, the smaller
//! of its two directions, less what [`crate::signals::ChanceModel`] expects of two accounts
//! this active; see [`crate::signals`]) times an activity factor (full when the pair's
//! coordinated posts are at least 2% of the geometric mean of their posts), plus 5 for a shared profile face, plus up to 1 when
//! both were created in the same anomalous creation burst (less for a burst of more than √N
//! accounts) and 1 when both wear AI-made faces (these two only strengthen an existing link: many
//! unrelated accounts are created on the same day). Links weaker than `min_strength` are
//! dropped before community detection (Louvain + connected split).
//!
//! A community's **score** combines
//! `coordination = 1 − exp(−mean link strength / 2)` (per link, so a large loose community of
//! weak links does not look coordinated for its size), `cohesion` = share of member pairs
//! that are linked, `burst` = share of members in one creation burst × √(share of that burst
//! that are members: an operation's accounts are its burst, a handful of a launch week's
//! thousands are not), `exclusivity = min(1, members / accounts sharing each item they
//! coordinated on)` (harmonic mean: an operation has its texts, links and hashtag runs to
//! itself, four fans of a celebrity are four of its hundreds of retweeters), and the shares
//! of members with AI-made faces and one handle pattern:
//! `score = 1 − (1 − coordination·√cohesion·exclusivity)(1 − 0.4·burst)(1 − 0.4·ai_faces)
//! (1 − 0.2·handles)`.
//! Communities of at least `min_members` with `score ≥ flag_score` are flagged as networks.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::dataset::{AccountIx, Dataset, PostIx};
use crate::louvain::{communities, WeightedGraph};
use crate::signals::{
    co_actions, shared_faces, ChanceModel, CoActionParams, PairCounts, PairEvidence, PairKey,
    Signal, SignalEdges, EXAMPLES_KEPT,
};

#[derive(Clone, Debug)]
pub struct AnalysisParams {
    pub co_action: CoActionParams,
    /// The signals to compute (co-actions and `shared-face`).
    pub signals: Vec<Signal>,
    pub min_strength: f64,
    /// Accounts created within this span of each other can form a creation burst.
    pub creation_window_ms: i64,
    pub min_members: usize,
    pub flag_score: f64,
    /// Louvain resolution (1 = modularity).
    pub resolution: f64,
    /// Perceptual-hash bits two pictures may differ by and still be "the same face" (≤ 3).
    pub face_distance: u32,
}

impl Default for AnalysisParams {
    fn default() -> Self {
        Self {
            co_action: CoActionParams::default(),
            signals: Signal::CO_ACTIONS
                .into_iter()
                .chain([Signal::SharedFace])
                .collect(),
            min_strength: 2.0,
            creation_window_ms: 24 * 3600 * 1000,
            min_members: 3,
            flag_score: 0.5,
            resolution: 1.0,
            face_distance: 3,
        }
    }
}

/// Two accounts and everything that links them.
#[derive(Clone, Debug, Serialize)]
pub struct Link {
    pub a: AccountIx,
    pub b: AccountIx,
    pub strength: f64,
    pub evidence: BTreeMap<Signal, PairEvidence>,
    pub same_burst: bool,
    pub both_ai_faces: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SignalSummary {
    /// Linked member pairs with this signal.
    pub pairs: usize,
    /// Coordinated posts over those pairs.
    pub coordinated_posts: u64,
    /// Members with at least one such link inside the network.
    pub accounts: usize,
}

/// Why a community scores what it scores.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NetworkSignals {
    pub coordination: BTreeMap<Signal, SignalSummary>,
    /// Mean strength of the links inside the network.
    pub mean_strength: f64,
    /// How many accounts, typically (harmonic mean over the members' matches), shared each
    /// item the members coordinated on.
    pub item_sharers: f64,
    /// `min(1, members / item_sharers)`: whether the network has what it shares to itself
    /// (an operation's own texts, links, hashtag runs) or is a few of a large audience (fans
    /// of one celebrity, accounts on one trending hashtag).
    pub exclusivity: f64,
    pub cohesion: f64,
    /// Share of members created within one anomalous creation burst.
    pub creation_burst: f64,
    /// Share of that burst's accounts that are members.
    pub burst_coverage: f64,
    /// Share of members whose profile face is AI-made (of all members).
    pub ai_faces: f64,
    /// Members whose profile picture was scanned.
    pub faces_scanned: usize,
    /// Members whose profile picture's file declares itself AI-generated (provenance), beside
    /// the detectors' `ai_faces`; not part of the score.
    pub declared_ai_pictures: usize,
    /// Members sharing a face with another member.
    pub shared_faces: usize,
    /// The commonest handle shape among members (`a` = letters, `9` = a digit) and its share,
    /// when that shape is rarer in the whole export than in the network.
    pub handle_pattern: Option<(String, f64)>,
    /// The score's terms: coordination, cohesion, burst, ai_faces, handles.
    pub terms: BTreeMap<&'static str, f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Network {
    pub id: String,
    pub score: f64,
    pub flagged: bool,
    pub accounts: Vec<AccountIx>,
    pub signals: NetworkSignals,
    /// Indices into [`Analysis::links`] of the links inside the network.
    pub links: Vec<usize>,
}

/// A post named as evidence.
#[derive(Clone, Debug)]
pub struct ExamplePost {
    pub id: String,
    pub time_ms: i64,
}

#[derive(Debug, Default)]
pub struct Analysis {
    /// Every pair each signal linked, before the strength filter (the toolkit's edges).
    pub signal_edges: Vec<(Signal, SignalEdges)>,
    pub links: Vec<Link>,
    /// The posts that links name as examples.
    pub example_posts: FxHashMap<PostIx, ExamplePost>,
    /// Creation burst of each account, if any.
    pub bursts: Vec<Option<u32>>,
    /// Communities of at least `min_members`, by score (highest first).
    pub networks: Vec<Network>,
}

impl Analysis {
    /// The flagged networks as (id, account ids), e.g. to compare with a simulator's truth.
    pub fn flagged_accounts(&self, data: &Dataset) -> Vec<(String, Vec<String>)> {
        self.networks
            .iter()
            .filter(|n| n.flagged)
            .map(|n| {
                (
                    n.id.clone(),
                    n.accounts
                        .iter()
                        .map(|&a| data.accounts[a as usize].id.clone())
                        .collect(),
                )
            })
            .collect()
    }
}

/// A shared profile face adds this to a link's strength: reusing one picture is deliberate.
const SHARED_FACE_STRENGTH: f64 = 5.0;

/// Runs the whole analysis on a dataset whose reading is finished. Fails only when the
/// temporary storage of a large export fails.
pub fn analyse(data: &Dataset, params: &AnalysisParams) -> io::Result<Analysis> {
    let mut by_signal = co_actions(data, &params.signals, &params.co_action)?;
    if params.signals.contains(&Signal::SharedFace) {
        by_signal.push((Signal::SharedFace, shared_faces(data, params.face_distance)));
    }
    let bursts = creation_bursts(data, params.creation_window_ms);
    by_signal.sort_by_key(|(signal, _)| *signal);
    let mut links = build_links(data, &by_signal, &bursts, params.min_strength)?;
    attach_examples(data, &mut links, params)?;
    count_shared_posts_once(&mut links, params.min_strength);
    let example_posts = example_posts(data, &links)?;
    let mut graph = WeightedGraph::with_nodes(data.accounts.len());
    for link in &links {
        graph.add_edge(link.a, link.b, link.strength);
    }
    let membership = communities(&graph, params.resolution);
    let networks = score_communities(data, &links, &bursts, &membership, params);
    Ok(Analysis {
        signal_edges: by_signal,
        links,
        example_posts,
        bursts,
        networks,
    })
}

/// The share of their posts two accounts must have coordinated on to count fully: 2% of the
/// geometric mean of their post counts.
const ACTIVE_SHARE: f64 = 0.02;

/// How much of a pair's co-action strength counts given how active the two accounts are:
/// `min(1, coordinated posts / (2% · √(posts_a · posts_b)))`. Two bots posting every hour for
/// a month whose templated updates met three times are not coordinated; two thirty-post
/// accounts that met four times are.
fn activity_factor(
    data: &Dataset,
    a: AccountIx,
    b: AccountIx,
    matched: &[(Signal, PairCounts)],
) -> f64 {
    let coordinated: u32 = matched
        .iter()
        .filter(|(signal, _)| *signal != Signal::SharedFace)
        .map(|(_, counts)| counts.coordinated_posts())
        .sum();
    let posts = |x: AccountIx| f64::from(data.accounts[x as usize].posts.max(1));
    let expected = ACTIVE_SHARE * (posts(a) * posts(b)).sqrt();
    (f64::from(coordinated) / expected).min(1.0)
}

/// What being created in the same burst adds to a link: 1, or `√N / size` for a burst larger
/// than √N accounts (the rarity weight of a shared item, [`crate::signals::rarity`]): two of
/// an operation's thirty accounts made the same afternoon say more than two of a launch
/// week's thousands.
fn burst_bonuses(data: &Dataset, bursts: &[Option<u32>]) -> FxHashMap<u32, f64> {
    let mut sizes: FxHashMap<u32, u32> = FxHashMap::default();
    for id in bursts.iter().flatten() {
        *sizes.entry(*id).or_default() += 1;
    }
    let population = data.accounts_with_posts();
    sizes
        .into_iter()
        .map(|(id, size)| (id, f64::from(crate::signals::rarity(size, population))))
        .collect()
}

/// The links: every pair of any signal whose strength reaches `min_strength`. The signals'
/// pairs are read in pair order and merged, so most pairs of a large export (single
/// coincidences) are looked at once and never held.
fn build_links(
    data: &Dataset,
    by_signal: &[(Signal, SignalEdges)],
    bursts: &[Option<u32>],
    min_strength: f64,
) -> io::Result<Vec<Link>> {
    let ai = |x: AccountIx| data.accounts[x as usize].face.is_some_and(|f| f.ai_made);
    let same_burst = |a: AccountIx, b: AccountIx| {
        bursts[a as usize].is_some() && bursts[a as usize] == bursts[b as usize]
    };
    let chances: BTreeMap<Signal, &ChanceModel> = by_signal
        .iter()
        .filter_map(|(signal, edges)| Some((*signal, edges.chance.as_ref()?)))
        .collect();
    let burst_bonus = burst_bonuses(data, bursts);
    let mut streams = Vec::with_capacity(by_signal.len());
    for (signal, edges) in by_signal {
        let mut pairs = edges.iter()?;
        let head = pairs.next().transpose()?;
        streams.push((*signal, pairs, head));
    }
    let mut links = Vec::new();
    let mut matched: Vec<(Signal, PairCounts)> = Vec::with_capacity(streams.len());
    while let Some(pair) = streams.iter().filter_map(|s| s.2.map(|(key, _)| key)).min() {
        matched.clear();
        for (signal, pairs, head) in &mut streams {
            if let Some((key, counts)) = *head {
                if key == pair {
                    matched.push((*signal, counts));
                    *head = pairs.next().transpose()?;
                }
            }
        }
        let (a, b) = pair;
        let activity = activity_factor(data, a, b, &matched);
        let contributions: Vec<f64> = matched
            .iter()
            .map(|(signal, counts)| match signal {
                Signal::SharedFace => SHARED_FACE_STRENGTH,
                _ => {
                    let chance = chances.get(signal).map_or(0.0, |c| c.expected(a, b));
                    (counts.surprise() - chance).max(0.0) * activity
                }
            })
            .collect();
        let base: f64 = contributions.iter().sum();
        let (same_burst, both_ai_faces) = (same_burst(a, b), ai(a) && ai(b));
        let burst = match bursts[a as usize] {
            Some(id) if same_burst => burst_bonus.get(&id).copied().unwrap_or(0.0),
            _ => 0.0,
        };
        let strength = base + burst + f64::from(u8::from(both_ai_faces));
        if base > 0.0 && strength >= min_strength {
            links.push(Link {
                a,
                b,
                strength,
                evidence: matched
                    .iter()
                    .zip(&contributions)
                    .map(|(&(signal, counts), &strength)| {
                        let examples = Vec::new();
                        let evidence = PairEvidence {
                            counts,
                            strength,
                            examples,
                        };
                        (signal, evidence)
                    })
                    .collect(),
                same_burst,
                both_ai_faces,
            });
        }
    }
    Ok(links)
}

/// The second pass: example post pairs for the links only, per signal, in parallel.
fn attach_examples(data: &Dataset, links: &mut [Link], params: &AnalysisParams) -> io::Result<()> {
    use rayon::prelude::*;
    let found: Vec<(Signal, FxHashMap<PairKey, Vec<_>>)> = params
        .signals
        .par_iter()
        .map(|&signal| {
            let wanted: rustc_hash::FxHashSet<PairKey> = links
                .iter()
                .filter(|l| l.evidence.contains_key(&signal))
                .map(|l| (l.a, l.b))
                .collect();
            let examples = crate::signals::examples(data, signal, &params.co_action, &wanted)?;
            Ok((signal, examples))
        })
        .collect::<io::Result<_>>()?;
    for (signal, mut examples) in found {
        for link in links.iter_mut() {
            if let (Some(evidence), Some(kept)) = (
                link.evidence.get_mut(&signal),
                examples.remove(&(link.a, link.b)),
            ) {
                evidence.examples = kept;
            }
        }
    }
    Ok(())
}

impl Analysis {
    /// The id of a post named as an example ("" for any other post).
    pub fn example_id(&self, post: PostIx) -> &str {
        self.example_posts.get(&post).map_or("", |e| e.id.as_str())
    }
}

/// The id and time of every post named as an example, read back from the dataset's store.
fn example_posts(data: &Dataset, links: &[Link]) -> io::Result<FxHashMap<PostIx, ExamplePost>> {
    let mut posts: Vec<PostIx> = links
        .iter()
        .flat_map(|l| l.evidence.values())
        .flat_map(|e| e.examples.iter().flat_map(|&(p, q)| [p, q]))
        .collect();
    posts.sort_unstable();
    posts.dedup();
    let mut found = FxHashMap::default();
    for post in posts {
        if let Some((_, time_ms, id)) = data.post(post)? {
            found.insert(post, ExamplePost { id, time_ms });
        }
    }
    Ok(found)
}

/// Strength from the posts themselves: a pair of posts that several signals matched (a reply
/// to the same post carrying the same link is a co-reply and a co-link) is one coordinated
/// post, not one per signal. Where every co-action's example list is complete (fewer than
/// [`EXAMPLES_KEPT`] pairs), the link's co-action strength is scaled by the share of distinct
/// posts among the posts the signals counted (the smaller side); links that fall below
/// `min_strength` go. A complete list holds fewer than ten pairs, so only weak links can
/// change: one chance moment in a ten-million-post export no longer counts twice.
fn count_shared_posts_once(links: &mut Vec<Link>, min_strength: f64) {
    for link in links.iter_mut() {
        let co_actions: Vec<&PairEvidence> = link
            .evidence
            .iter()
            // A sequence's examples are its posts side by side, not matched pairs.
            .filter(|(signal, _)| {
                Signal::CO_ACTIONS.contains(signal) && **signal != Signal::CoHashtagSequence
            })
            .map(|(_, evidence)| evidence)
            .collect();
        if co_actions.len() < 2 || co_actions.iter().any(|e| e.examples.len() >= EXAMPLES_KEPT) {
            continue;
        }
        let summed: f64 = co_actions
            .iter()
            .map(|e| f64::from(e.counts.coordinated_posts()))
            .sum();
        let mut low_posts = BTreeSet::new();
        let mut high_posts = BTreeSet::new();
        for &(low, high) in co_actions.iter().flat_map(|e| e.examples.iter()) {
            low_posts.insert(low);
            high_posts.insert(high);
        }
        let distinct = low_posts.len().min(high_posts.len()) as f64;
        if summed > distinct {
            let co_strength: f64 = co_actions.iter().map(|e| e.strength).sum();
            link.strength -= co_strength * (1.0 - distinct / summed);
        }
    }
    links.retain(|l| l.strength >= min_strength);
}

/// Accounts created in anomalous bursts: more accounts within `window` of each other than
/// the export's average creation rate explains (≥ 5, and ≥ μ + 4√μ + 1 for μ expected).
/// Consecutive burst accounts less than a window apart share a burst id.
pub fn creation_bursts(data: &Dataset, window_ms: i64) -> Vec<Option<u32>> {
    let mut dated: Vec<(i64, usize)> = data
        .accounts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.created_ms.map(|t| (t, i)))
        .collect();
    let mut bursts = vec![None; data.accounts.len()];
    if dated.len() < 5 {
        return bursts;
    }
    dated.sort_unstable();
    let span = (dated[dated.len() - 1].0 - dated[0].0).max(window_ms) as f64;
    let expected = dated.len() as f64 * window_ms as f64 / span;
    let needed = (expected + 4.0 * expected.sqrt() + 1.0).max(5.0);
    let half = window_ms / 2;
    let (mut lo, mut hi) = (0, 0);
    let mut in_burst = vec![false; dated.len()];
    for (i, &(t, _)) in dated.iter().enumerate() {
        while dated[lo].0 < t - half {
            lo += 1;
        }
        while hi + 1 < dated.len() && dated[hi + 1].0 <= t + half {
            hi += 1;
        }
        in_burst[i] = (hi - lo + 1) as f64 >= needed;
    }
    let mut id = 0;
    let mut last: Option<i64> = None;
    for (i, &(t, account)) in dated.iter().enumerate() {
        if !in_burst[i] {
            continue;
        }
        if last.is_some_and(|l| t - l > window_ms) {
            id += 1;
        }
        last = Some(t);
        bursts[account] = Some(id);
    }
    bursts
}

/// The shape of a handle: runs of letters → `a`, each digit → `9`, other characters kept.
pub fn handle_shape(handle: &str) -> String {
    let mut shape = String::new();
    for c in handle.chars() {
        let class = if c.is_ascii_digit() {
            '9'
        } else if c.is_alphabetic() {
            'a'
        } else {
            c
        };
        if class == 'a' && shape.ends_with('a') {
            continue;
        }
        shape.push(class);
    }
    shape
}

fn score_communities(
    data: &Dataset,
    links: &[Link],
    bursts: &[Option<u32>],
    membership: &[u32],
    params: &AnalysisParams,
) -> Vec<Network> {
    let mut members: BTreeMap<u32, Vec<AccountIx>> = BTreeMap::new();
    let mut linked = vec![false; data.accounts.len()];
    for link in links {
        linked[link.a as usize] = true;
        linked[link.b as usize] = true;
    }
    for (account, &community) in membership.iter().enumerate() {
        if linked[account] {
            members
                .entry(community)
                .or_default()
                .push(account as AccountIx);
        }
    }
    let mut inside: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, link) in links.iter().enumerate() {
        let c = membership[link.a as usize];
        if c == membership[link.b as usize] {
            inside.entry(c).or_default().push(i);
        }
    }
    let shapes = ShapeBaseline::new(data);
    let mut networks: Vec<Network> = members
        .into_iter()
        .filter_map(|(community, accounts)| {
            let link_ids = inside.remove(&community).unwrap_or_default();
            let (accounts, link_ids) = two_core(links, accounts, link_ids);
            (accounts.len() >= params.min_members).then_some((accounts, link_ids))
        })
        .map(|(accounts, link_ids)| {
            let signals = describe(data, links, &link_ids, &accounts, bursts, &shapes);
            let score = combine(&signals.terms);
            Network {
                id: String::new(),
                score,
                flagged: score >= params.flag_score,
                accounts,
                signals,
                links: link_ids,
            }
        })
        .collect();
    networks.sort_by(|x, y| {
        y.score
            .total_cmp(&x.score)
            .then(x.accounts.cmp(&y.accounts))
    });
    for (i, network) in networks.iter_mut().enumerate() {
        network.id = format!("N{}", i + 1);
    }
    networks
}

/// Drops, repeatedly, members linked to fewer than two other members: an account hanging
/// on a network by one link (say, an ordinary account that retweeted the same viral posts as
/// one member) is not part of it.
fn two_core(
    links: &[Link],
    mut accounts: Vec<AccountIx>,
    mut link_ids: Vec<usize>,
) -> (Vec<AccountIx>, Vec<usize>) {
    loop {
        let mut degree: FxHashMap<AccountIx, usize> = FxHashMap::default();
        for &i in &link_ids {
            *degree.entry(links[i].a).or_default() += 1;
            *degree.entry(links[i].b).or_default() += 1;
        }
        let keep = |a: &AccountIx| degree.get(a).copied().unwrap_or(0) >= 2;
        if accounts.iter().all(keep) {
            return (accounts, link_ids);
        }
        accounts.retain(keep);
        link_ids.retain(|&i| keep(&links[i].a) && keep(&links[i].b));
    }
}

fn combine(terms: &BTreeMap<&'static str, f64>) -> f64 {
    let t = |name| terms.get(name).copied().unwrap_or(0.0);
    let coordinated = t("coordination") * (t("cohesion") * t("exclusivity")).sqrt();
    1.0 - (1.0 - coordinated)
        * (1.0 - 0.4 * t("burst"))
        * (1.0 - 0.4 * t("ai_faces"))
        * (1.0 - 0.2 * t("handles"))
}

/// The share of members created in the burst most of them were created in, and the share of
/// that burst's accounts that are members (an operation's accounts are its burst, a few
/// accounts of a launch week's thousands are not).
fn burst_share_and_coverage(accounts: &[AccountIx], bursts: &[Option<u32>]) -> (f64, f64) {
    let Some((id, members)) = largest_burst(accounts, bursts) else {
        return (0.0, 0.0);
    };
    let size = bursts.iter().filter(|b| **b == Some(id)).count();
    let members = members as f64;
    (
        members / accounts.len() as f64,
        members / size.max(1) as f64,
    )
}

fn largest_burst(accounts: &[AccountIx], bursts: &[Option<u32>]) -> Option<(u32, usize)> {
    let mut sizes: BTreeMap<u32, usize> = BTreeMap::new();
    for &a in accounts {
        if let Some(b) = bursts[a as usize] {
            *sizes.entry(b).or_default() += 1;
        }
    }
    sizes
        .into_iter()
        .max_by_key(|&(id, m)| (m, std::cmp::Reverse(id)))
}

fn describe(
    data: &Dataset,
    links: &[Link],
    link_ids: &[usize],
    accounts: &[AccountIx],
    bursts: &[Option<u32>],
    shapes: &ShapeBaseline,
) -> NetworkSignals {
    let n = accounts.len() as f64;
    let mut signals = NetworkSignals::default();
    let mut involved: BTreeMap<Signal, std::collections::BTreeSet<AccountIx>> = BTreeMap::new();
    let mut total_strength = 0.0;
    let mut sharing_face = std::collections::BTreeSet::new();
    let (mut matches, mut inverse_sharers) = (0.0, 0.0);
    for &i in link_ids {
        let link = &links[i];
        total_strength += link.strength;
        for (signal, evidence) in &link.evidence {
            let counts = &evidence.counts;
            matches += f64::from(counts.matched_low_to_high + counts.matched_high_to_low);
            inverse_sharers += f64::from(counts.inverse_sharers);
            let summary = signals.coordination.entry(*signal).or_default();
            summary.pairs += 1;
            summary.coordinated_posts += u64::from(evidence.counts.coordinated_posts());
            let set = involved.entry(*signal).or_default();
            set.insert(link.a);
            set.insert(link.b);
            if *signal == Signal::SharedFace {
                sharing_face.insert(link.a);
                sharing_face.insert(link.b);
            }
        }
    }
    for (signal, set) in involved {
        if let Some(summary) = signals.coordination.get_mut(&signal) {
            summary.accounts = set.len();
        }
    }
    signals.mean_strength = total_strength / link_ids.len().max(1) as f64;
    signals.item_sharers = if inverse_sharers > 0.0 {
        matches / inverse_sharers
    } else {
        0.0
    };
    signals.exclusivity = if signals.item_sharers > 0.0 {
        (n / signals.item_sharers).min(1.0)
    } else {
        1.0
    };
    signals.cohesion = (link_ids.len() as f64 / (n * (n - 1.0) / 2.0)).min(1.0);
    (signals.creation_burst, signals.burst_coverage) = burst_share_and_coverage(accounts, bursts);
    let faces: Vec<_> = accounts
        .iter()
        .filter_map(|&a| data.accounts[a as usize].face)
        .collect();
    signals.faces_scanned = faces.len();
    signals.ai_faces = faces.iter().filter(|f| f.ai_made).count() as f64 / n;
    signals.declared_ai_pictures = faces.iter().filter(|f| f.declared_ai).count();
    signals.shared_faces = sharing_face.len();
    signals.handle_pattern = shapes.pattern_of(data, accounts);
    let handles = signals
        .handle_pattern
        .as_ref()
        .map_or(0.0, |(_, share)| *share);
    signals.terms = BTreeMap::from([
        ("coordination", 1.0 - (-signals.mean_strength / 2.0).exp()),
        ("exclusivity", signals.exclusivity),
        ("cohesion", signals.cohesion),
        (
            "burst",
            signals.creation_burst * signals.burst_coverage.sqrt(),
        ),
        ("ai_faces", signals.ai_faces),
        ("handles", handles),
    ]);
    signals
}

/// How common each handle shape is in the whole export.
struct ShapeBaseline {
    share: FxHashMap<String, f64>,
}

impl ShapeBaseline {
    fn new(data: &Dataset) -> Self {
        let mut counts: FxHashMap<String, f64> = FxHashMap::default();
        let with_handle = data
            .accounts
            .iter()
            .filter(|a| !a.handle.is_empty())
            .count()
            .max(1) as f64;
        for account in data.accounts.iter().filter(|a| !a.handle.is_empty()) {
            *counts.entry(handle_shape(&account.handle)).or_default() += 1.0;
        }
        counts.values_mut().for_each(|c| *c /= with_handle);
        Self { share: counts }
    }

    /// The commonest shape among `accounts` with its share, lift-adjusted: the share in the
    /// network minus the share in the export, when positive and shared by ≥ 3 members.
    fn pattern_of(&self, data: &Dataset, accounts: &[AccountIx]) -> Option<(String, f64)> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for &a in accounts {
            let handle = &data.accounts[a as usize].handle;
            if !handle.is_empty() {
                *counts.entry(handle_shape(handle)).or_default() += 1;
            }
        }
        let (shape, count) = counts
            .into_iter()
            .max_by_key(|(s, c)| (*c, std::cmp::Reverse(s.clone())))?;
        let share = count as f64 / accounts.len() as f64;
        let lift = share - self.share.get(&shape).copied().unwrap_or(0.0);
        (count >= 3 && lift > 0.0).then_some((shape, lift))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(a: AccountIx, evidence: &[(Signal, &[(u32, u32)])]) -> Link {
        let evidence: BTreeMap<Signal, PairEvidence> = evidence
            .iter()
            .map(|&(signal, pairs)| {
                let distinct = |side: fn(&(u32, u32)) -> u32| {
                    pairs.iter().map(side).collect::<BTreeSet<_>>().len() as u32
                };
                // Every match weighs 1 and chance explains none of them.
                let (low, high) = (distinct(|p| p.0), distinct(|p| p.1));
                let counts = crate::signals::PairCounts {
                    low_to_high: low,
                    high_to_low: high,
                    matched_low_to_high: low,
                    matched_high_to_low: high,
                    surprise_low_to_high: low as f32,
                    surprise_high_to_low: high as f32,
                    inverse_sharers: (low + high) as f32 / 2.0,
                };
                let strength = counts.surprise();
                let examples = pairs.iter().take(EXAMPLES_KEPT).copied().collect();
                let evidence = PairEvidence {
                    counts,
                    strength,
                    examples,
                };
                (signal, evidence)
            })
            .collect();
        let strength = evidence.values().map(|e| e.strength).sum();
        Link {
            a,
            b: a + 1,
            strength,
            evidence,
            same_burst: false,
            both_ai_faces: false,
        }
    }

    #[test]
    fn a_post_pair_matched_by_several_signals_counts_once() {
        let many: Vec<(u32, u32)> = (0..12).map(|i| (100 + i, 200 + i)).collect();
        let mut links = vec![
            // A reply to the same post with the same link: one moment, two signals.
            link(
                0,
                &[(Signal::CoLink, &[(7, 9)]), (Signal::CoReply, &[(7, 9)])],
            ),
            // Two different moments on two signals.
            link(
                2,
                &[(Signal::CoLink, &[(7, 9)]), (Signal::CoReply, &[(8, 10)])],
            ),
            // One moment shared, one not: two posts on each side.
            link(
                4,
                &[
                    (Signal::CoTweet, &[(1, 2), (3, 4)]),
                    (Signal::CoLink, &[(1, 2)]),
                ],
            ),
            // A list cut at the cap cannot be deduplicated: left as it is.
            link(
                6,
                &[(Signal::CoRetweet, &many), (Signal::CoLink, &[(100, 200)])],
            ),
        ];
        count_shared_posts_once(&mut links, 2.0);
        let kept: Vec<(AccountIx, f64)> = links.iter().map(|l| (l.a, l.strength)).collect();
        assert_eq!(kept, vec![(2, 2.0), (4, 2.0), (6, 13.0)]);
    }

    #[test]
    fn handle_shapes() {
        assert_eq!(handle_shape("maria_lopez8273"), "a_a9999");
        assert_eq!(handle_shape("JohnSmith"), "a");
        assert_eq!(handle_shape("x1y2"), "a9a9");
    }

    #[test]
    fn score_terms_combine() {
        let strong = BTreeMap::from([
            ("coordination", 0.95),
            ("cohesion", 1.0),
            ("exclusivity", 1.0),
        ]);
        assert!(combine(&strong) > 0.9);
        let weak = BTreeMap::from([
            ("coordination", 0.4),
            ("cohesion", 0.2),
            ("exclusivity", 1.0),
        ]);
        assert!(combine(&weak) < 0.2);
        // As strong, on items a large audience shared: a few fans, not a network.
        let audience = BTreeMap::from([
            ("coordination", 0.95),
            ("cohesion", 1.0),
            ("exclusivity", 0.1),
        ]);
        assert!(combine(&audience) < 0.35);
        let burst_only = BTreeMap::from([("burst", 1.0)]);
        assert!((combine(&burst_only) - 0.4).abs() < 1e-12);
    }
}
