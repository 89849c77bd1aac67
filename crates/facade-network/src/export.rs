//! Writes an analysis for people and tools: `networks.json` (networks by score with their
//! signals and evidence edges), `edges.csv` and `nodes.csv`, `networks.gexf` (Gephi), the
//! per-signal directed edges in the toolkit's form (`signal-edges.csv`) and the ingest's
//! `diagnostics.json`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::dataset::{AccountIx, Dataset, PostIx};
use crate::diagnostics::Diagnostics;
use crate::networks::{Analysis, Link, Network, NetworkSignals};
use crate::signals::Signal;
use crate::time::format_time_ms;

#[derive(Serialize)]
struct NetworkOut<'a> {
    id: &'a str,
    score: f64,
    flagged: bool,
    accounts: Vec<&'a str>,
    signals: &'a NetworkSignals,
    members: Vec<MemberOut<'a>>,
    /// Links inside the network; `evidence` lists the strongest [`EVIDENCE_LISTED`].
    links: usize,
    evidence: Vec<EvidenceOut<'a>>,
    /// The members' posts over time.
    activity: Activity,
    /// What limits the analysis of the whole export (minute-precision times), repeated in
    /// each network so that it travels with it; absent when nothing does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    caveats: Vec<String>,
}

/// Posts per time bucket, from the bucket of the first post to that of the last.
#[derive(Serialize)]
struct Activity {
    /// `hour` when the posts span at most three days, else `day`.
    bucket: &'static str,
    /// Start of the first bucket (UTC).
    start: Option<String>,
    counts: Vec<u32>,
}

#[derive(Serialize)]
struct MemberOut<'a> {
    id: &'a str,
    handle: &'a str,
    display_name: &'a str,
    created: Option<String>,
    posts: u32,
    creation_burst: Option<u32>,
    face: Option<crate::dataset::FaceEvidence>,
    profile_image: Option<String>,
}

#[derive(Serialize)]
struct EvidenceOut<'a> {
    accounts: [&'a str; 2],
    strength: f64,
    same_burst: bool,
    both_ai_faces: bool,
    signals: BTreeMap<&'static str, SignalOut<'a>>,
}

#[derive(Serialize)]
struct SignalOut<'a> {
    /// Distinct posts of the first account matched by the second within `--window`, and the
    /// reverse: the QUT toolkit's weights.
    weights: [u32; 2],
    /// The same within each item's adaptive window (what the strength counts).
    matched: [u32; 2],
    /// What the signal adds to the link's strength: rarity-weighted coordinated posts less
    /// what chance explains.
    strength: f64,
    /// Example matched posts: (post of the first account, post of the second).
    examples: Vec<PostPair<'a>>,
}

#[derive(Serialize)]
struct PostPair<'a> {
    posts: [&'a str; 2],
    times: [String; 2],
}

/// The strongest links listed as evidence per network (all are in edges.csv).
const EVIDENCE_LISTED: usize = 200;

/// Everything `facade networks` writes into `out`; `signal-edges.csv` (every pair of every
/// signal, coincidences included — large) only when `signal_edges`. Returns the networks as
/// written in `networks.json`, for a caller that keeps them elsewhere too.
pub fn write_all(
    out: &Path,
    data: &Dataset,
    analysis: &Analysis,
    diag: &Diagnostics,
    signal_edges: bool,
) -> std::io::Result<Vec<serde_json::Value>> {
    std::fs::create_dir_all(out)?;
    let posts = posts_per_account(data);
    let membership = network_of_accounts(data, analysis);
    let activity = activity_of_networks(data, analysis)?;
    let caveats: Vec<String> = diag.minute_precision_note().into_iter().collect();
    let networks: Vec<serde_json::Value> = networks_out(data, analysis, &posts, activity)
        .into_iter()
        .map(|mut network| {
            network.caveats = caveats.clone();
            network
        })
        .collect::<Vec<_>>()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(std::io::Error::other)?;
    write_json(&out.join("networks.json"), &networks)?;
    write_json(&out.join("diagnostics.json"), diag)?;
    write_edges(&out.join("edges.csv"), data, analysis, &membership)?;
    write_nodes(&out.join("nodes.csv"), data, analysis, &membership, &posts)?;
    if signal_edges {
        write_signal_edges(&out.join("signal-edges.csv"), data, analysis)?;
    }
    write_gexf(&out.join("networks.gexf"), data, analysis, &membership)?;
    Ok(networks)
}

fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let mut file = BufWriter::new(File::create(path)?);
    serde_json::to_writer_pretty(&mut file, value).map_err(std::io::Error::other)?;
    file.write_all(b"\n")?;
    file.flush()
}

fn posts_per_account(data: &Dataset) -> Vec<u32> {
    data.accounts.iter().map(|a| a.posts).collect()
}

/// The network each account belongs to (networks are disjoint).
fn network_of_accounts<'a>(data: &Dataset, analysis: &'a Analysis) -> Vec<Option<&'a Network>> {
    let mut of = vec![None; data.accounts.len()];
    for network in &analysis.networks {
        for &a in &network.accounts {
            of[a as usize] = Some(network);
        }
    }
    of
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Each network's posting activity, in the order of `analysis.networks`.
fn activity_of_networks(data: &Dataset, analysis: &Analysis) -> std::io::Result<Vec<Activity>> {
    let mut network_of = vec![u32::MAX; data.accounts.len()];
    for (n, network) in analysis.networks.iter().enumerate() {
        for &a in &network.accounts {
            network_of[a as usize] = n as u32;
        }
    }
    let mut times: Vec<Vec<i64>> = vec![Vec::new(); analysis.networks.len()];
    data.for_each_post(|_, account, time_ms| {
        let n = network_of[account as usize];
        if n != u32::MAX {
            times[n as usize].push(time_ms);
        }
    })?;
    Ok(times.into_iter().map(|t| activity(&t)).collect())
}

fn activity(times: &[i64]) -> Activity {
    let (Some(&first), Some(&last)) = (times.iter().min(), times.iter().max()) else {
        return Activity {
            bucket: "day",
            start: None,
            counts: Vec::new(),
        };
    };
    let (bucket, size) = if last - first <= 3 * DAY_MS {
        ("hour", HOUR_MS)
    } else {
        ("day", DAY_MS)
    };
    let start = first.div_euclid(size) * size;
    let mut counts = vec![0u32; ((last - start) / size + 1) as usize];
    for &t in times {
        counts[((t - start) / size) as usize] += 1;
    }
    Activity {
        bucket,
        start: Some(format_time_ms(start)),
        counts,
    }
}

fn networks_out<'a>(
    data: &'a Dataset,
    analysis: &'a Analysis,
    posts: &[u32],
    activity: Vec<Activity>,
) -> Vec<NetworkOut<'a>> {
    analysis
        .networks
        .iter()
        .zip(activity)
        .map(|(network, activity)| NetworkOut {
            id: &network.id,
            score: round(network.score),
            flagged: network.flagged,
            accounts: network
                .accounts
                .iter()
                .map(|&a| data.accounts[a as usize].id.as_str())
                .collect(),
            signals: &network.signals,
            members: network
                .accounts
                .iter()
                .map(|&a| member_out(data, analysis, posts, a))
                .collect(),
            links: network.links.len(),
            evidence: strongest(analysis, &network.links)
                .into_iter()
                .map(|i| evidence_out(data, analysis, &analysis.links[i]))
                .collect(),
            activity,
            caveats: Vec::new(),
        })
        .collect()
}

fn strongest(analysis: &Analysis, links: &[usize]) -> Vec<usize> {
    let mut links = links.to_vec();
    links.sort_by(|&x, &y| {
        analysis.links[y]
            .strength
            .total_cmp(&analysis.links[x].strength)
            .then(x.cmp(&y))
    });
    links.truncate(EVIDENCE_LISTED);
    links
}

fn member_out<'a>(
    data: &'a Dataset,
    analysis: &Analysis,
    posts: &[u32],
    a: AccountIx,
) -> MemberOut<'a> {
    let account = &data.accounts[a as usize];
    MemberOut {
        id: &account.id,
        handle: &account.handle,
        display_name: &account.display_name,
        created: account.created_ms.map(format_time_ms),
        posts: posts[a as usize],
        creation_burst: analysis.bursts[a as usize],
        face: account.face,
        profile_image: account
            .profile_image
            .as_ref()
            .map(|p| p.display().to_string()),
    }
}

fn evidence_out<'a>(data: &'a Dataset, analysis: &'a Analysis, link: &Link) -> EvidenceOut<'a> {
    let time = |p: PostIx| {
        analysis
            .example_posts
            .get(&p)
            .map_or(String::new(), |e| format_time_ms(e.time_ms))
    };
    let pair = |(p, q): (PostIx, PostIx)| PostPair {
        posts: [analysis.example_id(p), analysis.example_id(q)],
        times: [time(p), time(q)],
    };
    EvidenceOut {
        accounts: [
            &data.accounts[link.a as usize].id,
            &data.accounts[link.b as usize].id,
        ],
        strength: link.strength,
        same_burst: link.same_burst,
        both_ai_faces: link.both_ai_faces,
        signals: link
            .evidence
            .iter()
            .map(|(signal, e)| {
                let examples = if *signal == Signal::SharedFace {
                    Vec::new()
                } else {
                    e.examples.iter().map(|&p| pair(p)).collect()
                };
                (
                    signal.name(),
                    SignalOut {
                        weights: [e.counts.low_to_high, e.counts.high_to_low],
                        matched: [e.counts.matched_low_to_high, e.counts.matched_high_to_low],
                        strength: round(e.strength),
                        examples,
                    },
                )
            })
            .collect(),
    }
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn write_edges(
    path: &Path,
    data: &Dataset,
    analysis: &Analysis,
    membership: &[Option<&Network>],
) -> std::io::Result<()> {
    let mut out = csv::Writer::from_path(path)?;
    let signals: Vec<Signal> = analysis.signal_edges.iter().map(|(s, _)| *s).collect();
    let mut header = vec![
        "source".to_owned(),
        "target".into(),
        "strength".into(),
        "network".into(),
    ];
    header.extend(signals.iter().map(|s| s.name().to_owned()));
    header.extend([
        "same_burst".into(),
        "both_ai_faces".into(),
        "example_posts".into(),
    ]);
    out.write_record(&header)?;
    for link in &analysis.links {
        let (na, nb) = (membership[link.a as usize], membership[link.b as usize]);
        let network = match (na, nb) {
            (Some(x), Some(y)) if x.id == y.id => x.id.clone(),
            _ => String::new(),
        };
        let mut row = vec![
            data.accounts[link.a as usize].id.clone(),
            data.accounts[link.b as usize].id.clone(),
            link.strength.to_string(),
            network,
        ];
        row.extend(signals.iter().map(|s| {
            link.evidence
                .get(s)
                .map_or(0, |e| e.counts.coordinated_posts())
                .to_string()
        }));
        let examples: Vec<String> = link
            .evidence
            .values()
            .flat_map(|e| e.examples.iter())
            .map(|&(p, q)| format!("{}:{}", analysis.example_id(p), analysis.example_id(q)))
            .collect();
        row.extend([
            link.same_burst.to_string(),
            link.both_ai_faces.to_string(),
            examples.join(" "),
        ]);
        out.write_record(&row)?;
    }
    out.flush()
}

fn write_nodes(
    path: &Path,
    data: &Dataset,
    analysis: &Analysis,
    membership: &[Option<&Network>],
    posts: &[u32],
) -> std::io::Result<()> {
    let mut out = csv::Writer::from_path(path)?;
    out.write_record([
        "id",
        "handle",
        "display_name",
        "created",
        "posts",
        "network",
        "network_score",
        "creation_burst",
        "face_ai_score",
        "face_ai_made",
    ])?;
    let mut linked = vec![false; data.accounts.len()];
    for link in &analysis.links {
        linked[link.a as usize] = true;
        linked[link.b as usize] = true;
    }
    for (i, account) in data.accounts.iter().enumerate() {
        if !linked[i] && account.face.is_none() {
            continue;
        }
        let network = membership[i];
        out.write_record([
            account.id.as_str(),
            &account.handle,
            &account.display_name,
            &account.created_ms.map(format_time_ms).unwrap_or_default(),
            &posts[i].to_string(),
            network.map_or("", |n| n.id.as_str()),
            &network
                .map(|n| round(n.score).to_string())
                .unwrap_or_default(),
            &analysis.bursts[i]
                .map(|b| b.to_string())
                .unwrap_or_default(),
            &account
                .face
                .map(|f| f.ai_score.to_string())
                .unwrap_or_default(),
            &account
                .face
                .map(|f| f.ai_made.to_string())
                .unwrap_or_default(),
        ])?;
    }
    out.flush()
}

/// Directed, per signal, every pair before any filtering: `signal,user_1,user_2,weight` as
/// the toolkit's `co_*_network` tables hold them (without its self-loops).
fn write_signal_edges(path: &Path, data: &Dataset, analysis: &Analysis) -> std::io::Result<()> {
    let mut out = csv::Writer::from_path(path)?;
    out.write_record(["signal", "user_1", "user_2", "weight"])?;
    for (signal, edges) in &analysis.signal_edges {
        for pair in edges.iter()? {
            let ((a, b), e) = pair?;
            let (ia, ib) = (&data.accounts[a as usize].id, &data.accounts[b as usize].id);
            for (from, to, w) in [(ia, ib, e.low_to_high), (ib, ia, e.high_to_low)] {
                if w > 0 {
                    out.write_record([signal.name(), from, to, &w.to_string()])?;
                }
            }
        }
    }
    out.flush()
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// GEXF 1.2 for Gephi: linked accounts with their network id and score, links weighted by
/// strength with the signals that make them.
fn write_gexf(
    path: &Path,
    data: &Dataset,
    analysis: &Analysis,
    membership: &[Option<&Network>],
) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<gexf xmlns="http://gexf.net/1.2" version="1.2">"#)?;
    writeln!(
        out,
        r#"  <meta><creator>facade</creator><description>coordination networks</description></meta>"#
    )?;
    writeln!(
        out,
        r#"  <graph mode="static" defaultedgetype="undirected">"#
    )?;
    writeln!(out, r#"    <attributes class="node">"#)?;
    for (id, title, kind) in [
        (0, "network", "string"),
        (1, "network_score", "double"),
        (2, "flagged", "boolean"),
        (3, "handle", "string"),
        (4, "face_ai_score", "double"),
    ] {
        writeln!(
            out,
            r#"      <attribute id="{id}" title="{title}" type="{kind}"/>"#
        )?;
    }
    writeln!(out, r#"    </attributes>"#)?;
    writeln!(
        out,
        r#"    <attributes class="edge"><attribute id="0" title="signals" type="string"/></attributes>"#
    )?;
    writeln!(out, "    <nodes>")?;
    let mut linked: Vec<AccountIx> = analysis.links.iter().flat_map(|l| [l.a, l.b]).collect();
    linked.sort_unstable();
    linked.dedup();
    for a in linked {
        let account = &data.accounts[a as usize];
        let label = if account.handle.is_empty() {
            &account.id
        } else {
            &account.handle
        };
        let network = membership[a as usize];
        writeln!(
            out,
            r#"      <node id="{}" label="{}"><attvalues>"#,
            xml_escape(&account.id),
            xml_escape(label)
        )?;
        writeln!(
            out,
            r#"        <attvalue for="0" value="{}"/>"#,
            network.map_or("", |n| n.id.as_str())
        )?;
        writeln!(
            out,
            r#"        <attvalue for="1" value="{}"/>"#,
            network.map_or(0.0, |n| round(n.score))
        )?;
        writeln!(
            out,
            r#"        <attvalue for="2" value="{}"/>"#,
            network.is_some_and(|n| n.flagged)
        )?;
        writeln!(
            out,
            r#"        <attvalue for="3" value="{}"/>"#,
            xml_escape(&account.handle)
        )?;
        if let Some(face) = account.face {
            writeln!(
                out,
                r#"        <attvalue for="4" value="{}"/>"#,
                face.ai_score
            )?;
        }
        writeln!(out, "      </attvalues></node>")?;
    }
    writeln!(out, "    </nodes>")?;
    writeln!(out, "    <edges>")?;
    for (i, link) in analysis.links.iter().enumerate() {
        let names: Vec<&str> = link.evidence.keys().map(|s| s.name()).collect();
        writeln!(
            out,
            r#"      <edge id="{i}" source="{}" target="{}" weight="{}"><attvalues><attvalue for="0" value="{}"/></attvalues></edge>"#,
            xml_escape(&data.accounts[link.a as usize].id),
            xml_escape(&data.accounts[link.b as usize].id),
            link.strength,
            names.join(" ")
        )?;
    }
    writeln!(out, "    </edges>")?;
    writeln!(out, "  </graph>")?;
    writeln!(out, "</gexf>")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_spans_count_by_hour_long_ones_by_day() {
        let a = activity(&[HOUR_MS * 10 + 5, HOUR_MS * 10 + 9, HOUR_MS * 12]);
        assert_eq!((a.bucket, a.counts), ("hour", vec![2, 0, 1]));
        assert_eq!(a.start.as_deref(), Some("1970-01-01T10:00:00Z"));
        let b = activity(&[0, 10 * DAY_MS + 1]);
        assert_eq!(b.bucket, "day");
        assert_eq!(b.counts.len(), 11);
        assert!(activity(&[]).counts.is_empty());
    }
}
