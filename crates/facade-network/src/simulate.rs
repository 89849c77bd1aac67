//! A synthetic account export in the Twitter Information Operations archive format: organic
//! accounts with heavy-tailed activity (originals, replies, retweet cascades of viral posts,
//! links and hashtags from Zipf-distributed pools, a few stock phrases everyone uses) and the
//! organic behaviour that makes false positives in the real world — trending hashtags and
//! breaking-news links that thousands post within minutes, fans retweeting a celebrity within
//! seconds, accounts created in a platform's launch week, bots posting every hour on their
//! own — plus planted coordinated networks of six styles, with the ground truth (planted
//! networks and the organic groups). Deterministic for a seed. Rows are written as they are
//! generated, so millions of posts need no memory.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal, Zipf};
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use crate::time::format_time_ms;

/// 2020-01-01T00:00:00Z: the simulated month starts here.
const START_MS: i64 = 1_577_836_800_000;
const DAY_MS: i64 = 86_400_000;
const TWITTER_EPOCH_MS: i64 = 1_288_834_974_657;
/// The audience cap of a viral post is 1% of the organic accounts, and at least this.
const VIRAL_REACH_MIN: usize = 30;
/// Draws before an account gives up looking for a viral post it has not engaged with.
const VIRAL_DRAWS: usize = 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimulateParams {
    pub seed: u64,
    pub organic_accounts: usize,
    /// Mean posts per organic account (log-normal, heavy-tailed).
    pub mean_posts: f64,
    pub days: i64,
    /// Scales the planted networks' sizes (1 = 15–30 accounts each).
    pub network_scale: f64,
}

impl Default for SimulateParams {
    fn default() -> Self {
        Self {
            seed: 1,
            organic_accounts: 3000,
            mean_posts: 25.0,
            days: 30,
            network_scale: 1.0,
        }
    }
}

/// The planted networks, to score a detection against.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroundTruth {
    pub params: SimulateParams,
    pub networks: Vec<PlantedNetwork>,
    /// Organic accounts that act together without coordinating (fans, launch-week accounts,
    /// hourly bots): a detector that flags them has a false positive to explain.
    #[serde(default)]
    pub organic_groups: Vec<PlantedNetwork>,
    pub posts: u64,
    pub accounts: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlantedNetwork {
    pub name: String,
    pub style: String,
    pub accounts: Vec<String>,
}

/// The styles of coordination planted, each a different way real operations behaved.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// The same texts (a few lightly edited) posted within seconds of each other.
    CopyPaste,
    /// Retweeting the same posts of a few amplified accounts within seconds.
    RetweetRing,
    /// The same links (with different tracking parameters and texts) within a minute.
    LinkSpam,
    /// Few posts each: shared hashtag sequences and links, members created in one burst
    /// with templated handles.
    SlowLowVolume,
    /// Each member posts the same ordered hashtags over a day, one per post, at its own times,
    /// among unrelated posts (Pacheco et al. 2021).
    HashtagSequence,
    /// Variants of one template (a word swapped, punctuation varied) in bursts of several
    /// minutes, now and then across the whole span: one match per pair per campaign at most.
    SlowTemplate,
}

/// Organic events many accounts join within minutes, and a celebrity's fans.
struct OrganicEvents {
    /// (time, hashtag): a trending hashtag.
    trends: Vec<(i64, String)>,
    /// (time, link): breaking news.
    news: Vec<(i64, String)>,
    /// Share of organic accounts joining each trend or news event.
    join_share: f64,
    /// (tweet id, author, time) of the celebrity's posts.
    celebrity_posts: Vec<(u64, String, i64)>,
    fan_share: f64,
    launch_week_ms: i64,
    launch_share: f64,
}

/// Most accounts one trending event or news link reaches in the simulation (thousands, as on
/// a real platform, without making a 10-million-post export quadratic).
const EVENT_REACH_MAX: f64 = 3000.0;

/// Most fans retweeting the celebrity within seconds (each post ~180 of them).
const FANS_MAX: f64 = 600.0;

impl OrganicEvents {
    fn new(rng: &mut ChaCha8Rng, world: &mut World) -> Self {
        let organic = world.params.organic_accounts.max(1) as f64;
        let trends = (0..4)
            .map(|i| (world.random_time(rng), format!("trending{i}")))
            .collect();
        let news = (0..4)
            .map(|i| {
                let link = format!("https://breaking.example.net/live/{}", 1000 + i);
                (world.random_time(rng), link)
            })
            .collect();
        let celebrity_posts = (0..40)
            .map(|_| {
                let time = world.random_time(rng);
                (world.tweet_id(time), "celebrity".to_owned(), time)
            })
            .collect();
        Self {
            trends,
            news,
            join_share: (0.25f64).min(EVENT_REACH_MAX / organic),
            celebrity_posts,
            // 4% of the accounts, at most 600: a celebrity's fans retweeting within seconds
            // make every pair of them a co-retweet pair, quadratic in their number.
            fan_share: (0.04f64).min(FANS_MAX / organic),
            // A week in early 2012: the platform's launch in some country.
            launch_week_ms: 1_325_376_000_000 + rng.random_range(0..300) * DAY_MS,
            launch_share: 0.1,
        }
    }

    /// The posts an organic account adds by joining trends, news and (as a fan) retweeting
    /// the celebrity: each within minutes (seconds for fans) of the event.
    fn posts_of(&self, rng: &mut ChaCha8Rng, world: &World, fan: bool) -> Vec<SimPost> {
        let minutes = Exp::new(1.0 / 600_000.0).expect("valid rate");
        let seconds = Exp::new(1.0 / 20_000.0).expect("valid rate");
        let mut posts = Vec::new();
        for (time, tag) in &self.trends {
            if rng.random_bool(self.join_share) {
                posts.push(SimPost {
                    time_ms: time + minutes.sample(rng) as i64,
                    text: world.sentence(rng, 4..12),
                    hashtags: vec![tag.clone()],
                    ..SimPost::default()
                });
            }
        }
        for (time, link) in &self.news {
            if rng.random_bool(self.join_share) {
                posts.push(SimPost {
                    time_ms: time + minutes.sample(rng) as i64,
                    text: world.sentence(rng, 4..12),
                    urls: vec![link.clone()],
                    ..SimPost::default()
                });
            }
        }
        // Fans retweet within seconds; everyone else now and then, over hours, as a famous
        // account's posts are (so they are popular items, not the fans' secret).
        let hours = Exp::new(1.0 / 7_200_000.0).expect("valid rate");
        for (id, author, time) in &self.celebrity_posts {
            let (share, delay) = if fan {
                (0.3, seconds.sample(rng))
            } else {
                (self.join_share * 0.4, hours.sample(rng))
            };
            if rng.random_bool(share) {
                posts.push(SimPost {
                    time_ms: time + delay as i64,
                    retweet_of: Some((*id, author.clone())),
                    ..SimPost::default()
                });
            }
        }
        posts
    }
}

struct Writers<'w> {
    users: csv::Writer<Box<dyn Write + 'w>>,
    tweets: csv::Writer<Box<dyn Write + 'w>>,
    qut: Option<csv::Writer<Box<dyn Write + 'w>>>,
    posts: u64,
}

/// Generated vocabulary and pools shared by all accounts.
struct World {
    words: Vec<String>,
    word_rank: Zipf<f64>,
    phrases: Vec<String>,
    links: Vec<String>,
    link_rank: Zipf<f64>,
    hashtags: Vec<String>,
    hashtag_rank: Zipf<f64>,
    /// Viral posts: (tweet id, author id, time).
    viral: Vec<(u64, String, i64)>,
    viral_rank: Zipf<f64>,
    /// Accounts that retweeted or replied to each viral post so far.
    viral_audience: Vec<u32>,
    /// The most accounts one viral post reaches: a share of the population, as on a real
    /// platform. Without it the Zipf head grows with the export until one post is retweeted
    /// by most accounts within hours (and the co-retweet pairs grow with its square).
    viral_reach: u32,
    /// Viral posts the account being written has already retweeted or replied to: a post is
    /// retweeted once per account.
    engaged: FxHashSet<usize>,
    next_sequence: u64,
    params: SimulateParams,
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "te", "su", "ne", "po", "vi", "da", "ge", "ho", "ri", "ba", "zu", "fe",
    "no", "tal", "ver", "son",
];
const FIRST_NAMES: &[&str] = &[
    "maria", "john", "ana", "david", "sarah", "li", "omar", "fatima", "ivan", "olga", "chen",
    "james", "emma", "lucas", "sofia", "ahmed", "yuki", "pablo", "nina", "peter",
];
const LAST_NAMES: &[&str] = &[
    "smith", "garcia", "wang", "ivanova", "khan", "muller", "rossi", "silva", "kim", "nguyen",
    "brown", "lopez", "sato", "petrov", "cohen", "dubois",
];

impl World {
    fn new(rng: &mut ChaCha8Rng, params: &SimulateParams) -> Self {
        let words: Vec<String> = (0..5000)
            .map(|_| {
                (0..rng.random_range(1..4))
                    .map(|_| *SYLLABLES.choose(rng).unwrap_or(&"a"))
                    .collect()
            })
            .collect();
        let phrases = [
            "good morning everyone",
            "happy friday",
            "thank you so much",
            "this is amazing",
            "so true",
            "can't wait",
            "happy birthday",
            "well said",
        ]
        .map(str::to_owned)
        .to_vec();
        let links = (0..3000)
            .map(|i| format!("https://news{}.example.com/story/{}", i % 40, i))
            .collect();
        let hashtags = (0..600).map(|i| format!("tag{i}")).collect();
        let mut world = Self {
            word_rank: zipf(words.len(), 1.05),
            words,
            phrases,
            link_rank: zipf(3000, 1.1),
            links,
            hashtag_rank: zipf(600, 1.1),
            hashtags,
            viral: Vec::new(),
            viral_rank: zipf(1, 1.0),
            viral_audience: Vec::new(),
            viral_reach: (params.organic_accounts / 100).max(VIRAL_REACH_MIN) as u32,
            engaged: FxHashSet::default(),
            next_sequence: 0,
            params: params.clone(),
        };
        let viral_count = params.organic_accounts.max(20);
        for i in 0..viral_count {
            let time = START_MS + rng.random_range(0..params.days * DAY_MS);
            let id = world.tweet_id(time);
            world.viral.push((id, format!("influencer{i}"), time));
        }
        world.viral_rank = zipf(viral_count, 1.0);
        world.viral_audience = vec![0; viral_count];
        world
    }

    /// A viral post for the current account to retweet or reply to: popular ones more often
    /// (Zipf), none it engaged with before, none that reached its audience cap. `None` when a
    /// few draws found nothing (the account then writes an ordinary post).
    fn viral_pick(&mut self, rng: &mut ChaCha8Rng) -> Option<(u64, String, i64)> {
        for _ in 0..VIRAL_DRAWS {
            let k = rank(&self.viral_rank, rng);
            if self.viral_audience[k] < self.viral_reach && self.engaged.insert(k) {
                self.viral_audience[k] += 1;
                return Some(self.viral[k].clone());
            }
        }
        None
    }

    /// A snowflake id for a post at `time_ms`, unique in the export.
    fn tweet_id(&mut self, time_ms: i64) -> u64 {
        self.next_sequence += 1;
        (((time_ms - TWITTER_EPOCH_MS) as u64) << 22) | (self.next_sequence & 0x3f_ffff)
    }

    fn sentence(&self, rng: &mut ChaCha8Rng, words: std::ops::Range<usize>) -> String {
        let words = rng.random_range(words);
        (0..words)
            .map(|_| self.words[rank(&self.word_rank, rng)].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn random_time(&self, rng: &mut ChaCha8Rng) -> i64 {
        START_MS + rng.random_range(0..self.params.days * DAY_MS)
    }
}

fn zipf(n: usize, s: f64) -> Zipf<f64> {
    Zipf::new(n.max(1) as f64, s).unwrap_or_else(|_| Zipf::new(1.0, 1.0).expect("a valid Zipf"))
}

/// A 0-based rank drawn from a Zipf distribution.
fn rank(dist: &Zipf<f64>, rng: &mut ChaCha8Rng) -> usize {
    dist.sample(rng) as usize - 1
}

/// One post to write.
#[derive(Default)]
struct SimPost {
    time_ms: i64,
    text: String,
    retweet_of: Option<(u64, String)>,
    reply_to: Option<(u64, String)>,
    urls: Vec<String>,
    hashtags: Vec<String>,
}

struct SimAccount {
    id: String,
    handle: String,
    name: String,
    created_ms: i64,
}

/// Writes `users.csv`, `tweets.csv` (archive format), `truth.json`, and with `qut` also
/// `posts-qut.csv` (the QUT toolkit's CSV of the same posts) into `out`.
pub fn simulate(out: &Path, params: &SimulateParams, qut: bool) -> std::io::Result<GroundTruth> {
    std::fs::create_dir_all(out)?;
    let file = |name: &str| -> std::io::Result<Box<dyn Write>> {
        Ok(Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(out.join(name))?,
        )))
    };
    let mut writers = Writers {
        users: csv::Writer::from_writer(file("users.csv")?),
        tweets: csv::Writer::from_writer(file("tweets.csv")?),
        qut: if qut {
            Some(csv::Writer::from_writer(file("posts-qut.csv")?))
        } else {
            None
        },
        posts: 0,
    };
    let truth = generate(&mut writers, params)?;
    writers.users.flush()?;
    writers.tweets.flush()?;
    if let Some(q) = writers.qut.as_mut() {
        q.flush()?;
    }
    let json = serde_json::to_vec_pretty(&truth).map_err(std::io::Error::other)?;
    std::fs::write(out.join("truth.json"), json)?;
    Ok(truth)
}

fn generate(writers: &mut Writers, params: &SimulateParams) -> std::io::Result<GroundTruth> {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut world = World::new(&mut rng, params);
    writers
        .users
        .write_record(crate::ingest::TWITTER_USER_COLUMNS)?;
    writers.tweets.write_record([
        "tweetid",
        "userid",
        "user_screen_name",
        "tweet_text",
        "tweet_time",
        "in_reply_to_tweetid",
        "is_retweet",
        "retweet_userid",
        "retweet_tweetid",
        "hashtags",
        "urls",
        "account_creation_date",
    ])?;
    if let Some(q) = writers.qut.as_mut() {
        q.write_record(crate::ingest::QUT_COLUMNS)?;
    }
    let activity =
        LogNormal::new(params.mean_posts.max(1.0).ln() - 0.5, 1.0).expect("valid log-normal");
    let events = OrganicEvents::new(&mut rng, &mut world);
    let mut fans = Vec::new();
    let mut launch_week = Vec::new();
    for i in 0..params.organic_accounts {
        let mut account = organic_account(&mut rng, i);
        if rng.random_bool(events.launch_share) {
            account.created_ms = events.launch_week_ms + rng.random_range(0..7 * DAY_MS);
            launch_week.push(account.id.clone());
        }
        let fan = rng.random_bool(events.fan_share);
        if fan {
            fans.push(account.id.clone());
        }
        world.engaged.clear();
        write_user(writers, &account)?;
        let posts = (activity.sample(&mut rng) as usize).clamp(1, 5000);
        for _ in 0..posts {
            let post = organic_post(&mut rng, &mut world);
            write_post(writers, &mut world, &account, &post)?;
        }
        for post in events.posts_of(&mut rng, &world, fan) {
            write_post(writers, &mut world, &account, &post)?;
        }
    }
    let bots = hourly_bots(writers, &mut rng, &mut world)?;
    let styles = [
        Style::CopyPaste,
        Style::RetweetRing,
        Style::LinkSpam,
        Style::SlowLowVolume,
        Style::HashtagSequence,
        Style::SlowTemplate,
    ];
    let mut networks = Vec::new();
    for (n, style) in styles.into_iter().enumerate() {
        networks.push(plant(writers, &mut rng, &mut world, style, n)?);
    }
    let organic_group = |name: &str, accounts: Vec<String>| PlantedNetwork {
        name: name.to_owned(),
        style: "organic".to_owned(),
        accounts,
    };
    Ok(GroundTruth {
        params: params.clone(),
        accounts: params.organic_accounts
            + bots.len()
            + networks.iter().map(|n| n.accounts.len()).sum::<usize>(),
        networks,
        organic_groups: vec![
            organic_group("celebrity-fans", fans),
            organic_group("launch-week", launch_week),
            organic_group("hourly-bots", bots),
        ],
        posts: writers.posts,
    })
}

/// Automated accounts that are not coordinated: each posts on the hour, every hour, its own
/// templated update (sometimes with a popular hashtag or link).
fn hourly_bots(
    writers: &mut Writers,
    rng: &mut ChaCha8Rng,
    world: &mut World,
) -> std::io::Result<Vec<String>> {
    let count = (world.params.organic_accounts / 500).max(3);
    let mut ids = Vec::new();
    for b in 0..count {
        // Indices past the planted networks' (1,000,000 × network).
        let mut account = organic_account(rng, 100_000_000 + b);
        account.handle = format!("{}_bot{b}", account.handle);
        write_user(writers, &account)?;
        let minute = rng.random_range(0..60) * 60_000;
        for hour in 0..world.params.days * 24 {
            let mut post = SimPost {
                time_ms: START_MS + hour * 3_600_000 + minute + rng.random_range(0..2_000),
                text: format!("update {hour} from bot {b}: {}", world.sentence(rng, 3..8)),
                ..SimPost::default()
            };
            if rng.random_bool(0.1) {
                post.hashtags
                    .push(world.hashtags[rank(&world.hashtag_rank, rng)].clone());
            }
            if rng.random_bool(0.1) {
                post.urls
                    .push(world.links[rank(&world.link_rank, rng)].clone());
            }
            write_post(writers, world, &account, &post)?;
        }
        ids.push(account.id);
    }
    Ok(ids)
}

fn organic_account(rng: &mut ChaCha8Rng, i: usize) -> SimAccount {
    let first = FIRST_NAMES.choose(rng).unwrap_or(&"x");
    let last = LAST_NAMES.choose(rng).unwrap_or(&"y");
    let handle = match rng.random_range(0..5) {
        0 => format!("{first}{last}"),
        1 => format!("{first}_{last}{}", rng.random_range(1..100)),
        2 => format!("the{last}{first}"),
        3 => format!("{first}{}", rng.random_range(1960..2005)),
        _ => format!("{}{}", last, rng.random_range(0..1000)),
    };
    SimAccount {
        id: account_id(rng, i),
        name: format!("{} {}", capitalise(first), capitalise(last)),
        handle,
        // Anywhere from 2008 to 2019.
        created_ms: 1_199_145_600_000 + rng.random_range(0..12 * 365 * DAY_MS),
    }
}

/// Big accounts keep numeric ids; small ones are hashed in the archive.
fn account_id(rng: &mut ChaCha8Rng, i: usize) -> String {
    if rng.random_bool(0.5) {
        format!("{}", 10_000_000 + i as u64 * 7919)
    } else {
        format!("{:032x}", rng.random::<u128>())
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn organic_post(rng: &mut ChaCha8Rng, world: &mut World) -> SimPost {
    let roll: f64 = rng.random();
    if roll < 0.3 {
        // A retweet in a viral cascade: soon after the source, exponentially fewer later.
        if let Some((id, author, time)) = world.viral_pick(rng) {
            let delay = Exp::new(1.0 / 7_200_000.0).expect("valid rate").sample(rng) as i64;
            return SimPost {
                time_ms: time + delay,
                text: String::new(),
                retweet_of: Some((id, author)),
                ..SimPost::default()
            };
        }
    }
    let mut post = SimPost {
        time_ms: world.random_time(rng),
        ..SimPost::default()
    };
    if roll < 0.33 {
        post.text = world.phrases.choose(rng).cloned().unwrap_or_default();
        return post;
    }
    post.text = world.sentence(rng, 5..18);
    if roll < 0.4 {
        if let Some((id, author, time)) = world.viral_pick(rng) {
            post.time_ms =
                time + Exp::new(1.0 / 3_600_000.0).expect("valid rate").sample(rng) as i64;
            post.reply_to = Some((id, author));
        }
    }
    if rng.random_bool(0.2) {
        post.urls
            .push(world.links[rank(&world.link_rank, rng)].clone());
    }
    if rng.random_bool(0.3) {
        for _ in 0..rng.random_range(1..4) {
            post.hashtags
                .push(world.hashtags[rank(&world.hashtag_rank, rng)].clone());
        }
    }
    post
}

fn write_user(writers: &mut Writers, account: &SimAccount) -> std::io::Result<()> {
    writers.users.write_record([
        account.id.as_str(),
        &account.name,
        &account.handle,
        "",
        "",
        "",
        "100",
        "100",
        &format_time_ms(account.created_ms)[..10],
        "en",
    ])?;
    Ok(())
}

fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

fn write_post(
    writers: &mut Writers,
    world: &mut World,
    account: &SimAccount,
    post: &SimPost,
) -> std::io::Result<()> {
    let id = world.tweet_id(post.time_ms).to_string();
    let mut text = post.text.clone();
    for tag in &post.hashtags {
        text.push_str(&format!(" #{tag}"));
    }
    for url in &post.urls {
        text.push_str(&format!(" {url}"));
    }
    let (retweet_user, retweet_id) = match &post.retweet_of {
        Some((tweet, author)) => {
            text = format!(
                "RT @{author}: {}",
                world.sentence(&mut ChaCha8Rng::seed_from_u64(*tweet), 10..11)
            );
            (author.clone(), tweet.to_string())
        }
        None => (String::new(), String::new()),
    };
    let reply = post
        .reply_to
        .as_ref()
        .map(|(id, _)| id.to_string())
        .unwrap_or_default();
    // The archive gives minute precision; the id carries the milliseconds.
    let minute = format_time_ms(post.time_ms)[..16].replace('T', " ");
    writers.tweets.write_record([
        id.as_str(),
        &account.id,
        &account.handle,
        &text,
        &minute,
        &reply,
        if post.retweet_of.is_some() {
            "True"
        } else {
            "False"
        },
        &retweet_user,
        &retweet_id,
        &python_list(&post.hashtags),
        &python_list(&post.urls),
        &format_time_ms(account.created_ms)[..10],
    ])?;
    if let Some(q) = writers.qut.as_mut() {
        // Whole seconds: the toolkit compares float seconds, facade integer milliseconds, so
        // whole seconds make both exact (and put many pairs exactly on the window edge).
        let seconds = post.time_ms.div_euclid(1000);
        q.write_record([
            id.as_str(),
            &account.id,
            &account.handle,
            &retweet_id,
            &reply,
            &text,
            &seconds.to_string(),
            &post.urls.join(" "),
        ])?;
    }
    writers.posts += 1;
    Ok(())
}

fn plant(
    writers: &mut Writers,
    rng: &mut ChaCha8Rng,
    world: &mut World,
    style: Style,
    n: usize,
) -> std::io::Result<PlantedNetwork> {
    let scale = world.params.network_scale;
    let (size, events, name) = match style {
        Style::CopyPaste => (30.0, 40, "copy-paste"),
        Style::RetweetRing => (25.0, 50, "retweet-ring"),
        Style::LinkSpam => (20.0, 25, "link-spam"),
        Style::SlowLowVolume => (15.0, 8, "slow-low-volume"),
        Style::HashtagSequence => (18.0, 6, "hashtag-sequence"),
        Style::SlowTemplate => (10.0, 12, "slow-template"),
    };
    let size = ((size * scale).round() as usize).max(4);
    // Operations create their accounts in bursts: within a few days (hours for the slow one).
    let burst_start = 1_514_764_800_000 + rng.random_range(0..600) * DAY_MS;
    let burst_span = if matches!(style, Style::SlowLowVolume) {
        6 * 3_600_000
    } else {
        3 * DAY_MS
    };
    let members: Vec<SimAccount> = (0..size)
        .map(|i| {
            let mut account = organic_account(rng, 1_000_000 * (n + 1) + i);
            account.created_ms = burst_start + rng.random_range(0..burst_span);
            if matches!(style, Style::SlowLowVolume) {
                let first = FIRST_NAMES.choose(rng).unwrap_or(&"x");
                account.handle = format!("{first}{}", rng.random_range(10_000_000..99_999_999));
            }
            account
        })
        .collect();
    for account in &members {
        write_user(writers, account)?;
        // Cover: each member also posts like an ordinary account.
        let cover = if matches!(style, Style::SlowLowVolume) {
            3
        } else {
            rng.random_range(5..30)
        };
        for _ in 0..cover {
            let post = organic_post(rng, world);
            write_post(writers, world, account, &post)?;
        }
    }
    match style {
        Style::HashtagSequence => {
            for _ in 0..events {
                hashtag_sequence_day(writers, rng, world, &members, n)?;
            }
        }
        Style::SlowTemplate => {
            for _ in 0..events {
                template_campaign(writers, rng, world, &members)?;
            }
        }
        _ => plant_events(writers, rng, world, style, n, events, &members)?,
    }
    Ok(PlantedNetwork {
        name: format!("{name}-{}", n + 1),
        style: name.to_owned(),
        accounts: members.into_iter().map(|a| a.id).collect(),
    })
}

/// One day of a hashtag-sequence campaign: 5–8 hashtags (the operation's and popular ones,
/// to blend in); each participating member posts them in order, one per post, at its own
/// times over the day, with unrelated posts between.
fn hashtag_sequence_day(
    writers: &mut Writers,
    rng: &mut ChaCha8Rng,
    world: &mut World,
    members: &[SimAccount],
    n: usize,
) -> std::io::Result<()> {
    let day = rng.random_range(0..world.params.days);
    let start = START_MS + day * DAY_MS;
    let sequence: Vec<String> = (0..rng.random_range(5..9))
        .map(|_| {
            if rng.random_bool(0.5) {
                world.hashtags[rank(&world.hashtag_rank, rng)].clone()
            } else {
                format!("op{n}{}", rng.random_range(0..1000))
            }
        })
        .collect();
    for account in members {
        if !rng.random_bool(0.7) {
            continue;
        }
        let mut times: Vec<i64> = (0..sequence.len())
            .map(|_| start + rng.random_range(0..DAY_MS))
            .collect();
        times.sort_unstable();
        for (tag, time) in sequence.iter().zip(times) {
            let post = SimPost {
                time_ms: time,
                text: world.sentence(rng, 4..12),
                hashtags: vec![tag.clone()],
                ..SimPost::default()
            };
            write_post(writers, world, account, &post)?;
        }
        for _ in 0..rng.random_range(0..3) {
            let post = SimPost {
                time_ms: start + rng.random_range(0..DAY_MS),
                text: world.sentence(rng, 5..15),
                ..SimPost::default()
            };
            write_post(writers, world, account, &post)?;
        }
    }
    Ok(())
}

/// One campaign of a slow template: a 10–14-word template; each participating member posts a
/// variant (one word swapped, punctuation varied) within a burst of 5–20 minutes.
fn template_campaign(
    writers: &mut Writers,
    rng: &mut ChaCha8Rng,
    world: &mut World,
    members: &[SimAccount],
) -> std::io::Result<()> {
    let start = world.random_time(rng);
    let burst = rng.random_range(5..=20) * 60_000;
    let template: Vec<String> = world
        .sentence(rng, 10..15)
        .split(' ')
        .map(str::to_owned)
        .collect();
    for account in members {
        if !rng.random_bool(0.6) {
            continue;
        }
        let mut words = template.clone();
        let swapped = rng.random_range(0..words.len());
        words[swapped] = world.sentence(rng, 1..2);
        let ending = ["", "!", ".", "!!", "..."]
            .choose(rng)
            .copied()
            .unwrap_or("");
        let post = SimPost {
            time_ms: start + rng.random_range(0..burst),
            text: format!("{}{ending}", words.join(" ")),
            ..SimPost::default()
        };
        write_post(writers, world, account, &post)?;
    }
    Ok(())
}

/// The events of the first four styles: a moment, and members acting within seconds of it.
fn plant_events(
    writers: &mut Writers,
    rng: &mut ChaCha8Rng,
    world: &mut World,
    style: Style,
    n: usize,
    events: usize,
    members: &[SimAccount],
) -> std::io::Result<()> {
    let amplified: Vec<(u64, String)> = (0..3).map(|k| (0, format!("amplified{n}_{k}"))).collect();
    for _ in 0..events {
        let time = world.random_time(rng);
        let text = world.sentence(rng, 8..16);
        let link = format!("https://campaign{n}.example.org/a/{}", rng.random::<u32>());
        let hashtags: Vec<String> = (0..3)
            .map(|_| format!("op{n}{}", rng.random_range(0..1000)))
            .collect();
        let source = {
            let author = amplified
                .choose(rng)
                .map(|a| a.1.clone())
                .unwrap_or_default();
            (world.tweet_id(time - 60_000), author)
        };
        let participation = match style {
            Style::SlowLowVolume => 0.5,
            _ => 0.7,
        };
        let mut acted = BTreeSet::new();
        for (m, account) in members.iter().enumerate() {
            if !rng.random_bool(participation) {
                continue;
            }
            acted.insert(m);
            let delay = match style {
                Style::LinkSpam | Style::SlowLowVolume => rng.random_range(0..50_000),
                _ => rng.random_range(0..25_000),
            };
            let mut post = SimPost {
                time_ms: time + delay,
                ..SimPost::default()
            };
            match style {
                Style::CopyPaste => {
                    post.text = if rng.random_bool(0.2) {
                        format!("{text} {}", world.sentence(rng, 1..2))
                    } else {
                        text.clone()
                    };
                }
                Style::RetweetRing => post.retweet_of = Some(source.clone()),
                Style::LinkSpam => {
                    post.text = world.sentence(rng, 4..10);
                    post.urls
                        .push(format!("{link}?utm_source=acct{m}&utm_medium=social"));
                }
                Style::SlowLowVolume => {
                    post.text = world.sentence(rng, 4..10);
                    post.hashtags = hashtags.clone();
                    if rng.random_bool(0.5) {
                        post.urls.push(link.clone());
                    }
                }
                Style::HashtagSequence | Style::SlowTemplate => {}
            }
            write_post(writers, world, account, &post)?;
        }
    }
    Ok(())
}

/// How well detected networks recover the planted ones.
#[derive(Clone, Debug, Serialize)]
pub struct Recovery {
    /// Per planted network: its name, the best-matching detected network and the F1.
    pub per_network: Vec<(String, Option<String>, f64)>,
    /// Flagged networks with no planted network among their best matches (F1 < 0.5 with all).
    pub false_networks: Vec<String>,
}

/// Best-match F1 of each planted network among the `detected` (id, accounts) networks.
pub fn recovery(truth: &GroundTruth, detected: &[(String, Vec<String>)]) -> Recovery {
    let f1 = |planted: &BTreeSet<&str>, found: &[String]| {
        let hits = found
            .iter()
            .filter(|a| planted.contains(a.as_str()))
            .count();
        2.0 * hits as f64 / (planted.len() + found.len()) as f64
    };
    let planted: Vec<(String, BTreeSet<&str>)> = truth
        .networks
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                n.accounts.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let per_network = planted
        .iter()
        .map(|(name, members)| {
            let best = detected
                .iter()
                .map(|(id, accounts)| (id.clone(), f1(members, accounts)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((id, score)) => (name.clone(), Some(id), score),
                None => (name.clone(), None, 0.0),
            }
        })
        .collect();
    let false_networks = detected
        .iter()
        .filter(|(_, accounts)| {
            planted
                .iter()
                .all(|(_, members)| f1(members, accounts) < 0.5)
        })
        .map(|(id, _)| id.clone())
        .collect();
    Recovery {
        per_network,
        false_networks,
    }
}
