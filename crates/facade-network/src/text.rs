//! What makes two posts "the same": text normalised as the QUT coordination-network-toolkit
//! does it (so co-tweet edges equal the toolkit's), word tokens for near-duplicates, URLs.

use xxhash_rust::xxh3::xxh3_64;

/// Lower-cases, removes @mentions (an `@` up to the next whitespace), and collapses
/// whitespace — `coordination_network_toolkit.similarity.message_preprocessor`.
pub fn normalise_text(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut in_mention = false;
    let mut pending_space = false;
    for c in lower.chars() {
        if is_python_space(c) {
            in_mention = false;
            pending_space = !out.is_empty();
            continue;
        }
        if c == '@' {
            in_mention = true;
        }
        if in_mention {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out
}

/// Python's `str.split()` whitespace: Unicode White_Space plus the ASCII separators 0x1C–0x1F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The key of a post's normalised text; `None` when nothing is left (a post of only mentions
/// matches nothing — the toolkit would match all such posts with each other).
pub fn text_key(text: &str) -> Option<u64> {
    key_of_normalised(&normalise_text(text))
}

/// [`text_key`] of a text already passed through [`normalise_text`].
pub fn key_of_normalised(normalised: &str) -> Option<u64> {
    (!normalised.is_empty()).then(|| xxh3_64(normalised.as_bytes()))
}

/// The set of word tokens of a post (lower-case, mentions removed, punctuation dropped),
/// hashed and sorted, for near-duplicate detection.
pub fn token_set(text: &str) -> Vec<u32> {
    tokens_of_normalised(&normalise_text(text))
}

/// [`token_set`] of a text already passed through [`normalise_text`].
pub fn tokens_of_normalised(normalised: &str) -> Vec<u32> {
    let mut tokens: Vec<u32> = normalised
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '#')
        .map(|t| t.trim_matches('\''))
        .filter(|t| !t.is_empty())
        .map(|t| xxh3_64(t.as_bytes()) as u32)
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    tokens
}

/// Jaccard similarity of two sorted, deduplicated sets.
pub fn jaccard(a: &[u32], b: &[u32]) -> f64 {
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - shared;
    if union == 0 {
        0.0
    } else {
        shared as f64 / union as f64
    }
}

/// How two links are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LinkMatch {
    /// Byte for byte, as the toolkit compares them.
    Exact,
    /// Scheme, `www.`, case of the host, fragment, trailing slash and tracking parameters
    /// (`utm_*`, `fbclid`, `gclid`) ignored: the same article shared through different
    /// campaign links is the same link.
    #[default]
    Normalised,
}

/// The form of `url` that [`LinkMatch`] compares.
pub fn link_form(url: &str, mode: LinkMatch) -> String {
    match mode {
        LinkMatch::Exact => url.to_owned(),
        LinkMatch::Normalised => normalise_url(url),
    }
}

fn normalise_url(url: &str) -> String {
    let url = url.trim();
    let without_scheme =
        url.split_once("://").map_or(
            url,
            |(scheme, rest)| if scheme.len() <= 10 { rest } else { url },
        );
    let without_fragment = without_scheme.split('#').next().unwrap_or("");
    let (location, query) = match without_fragment.split_once('?') {
        Some((loc, q)) => (loc, Some(q)),
        None => (without_fragment, None),
    };
    let (host, path) = location.split_at(location.find('/').unwrap_or(location.len()));
    let host = host.to_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let mut out = format!("{host}{}", path.trim_end_matches('/'));
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split('=').next().unwrap_or("").to_lowercase();
                !(name.starts_with("utm_") || name == "fbclid" || name == "gclid")
            })
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_the_toolkit() {
        // Expected values produced by coordination_network_toolkit 1.5.2 message_preprocessor.
        assert_eq!(
            normalise_text("Hello  @bob World\n\tAgain"),
            "hello world again"
        );
        assert_eq!(normalise_text("@a @b"), "");
        assert_eq!(normalise_text("mail me: x@y.com now"), "mail me: x now");
        assert_eq!(normalise_text("  ÉCOLE  "), "école");
        assert_eq!(normalise_text("a\u{1f}b"), "a b");
    }

    #[test]
    fn empty_text_has_no_key() {
        assert_eq!(text_key("@only @mentions"), None);
        assert_eq!(text_key("Same Text"), text_key("same   text @x"));
    }

    #[test]
    fn tokens_and_jaccard() {
        let a = token_set("Vote for the plan today, friends!");
        let b = token_set("vote for the plan today friends");
        assert_eq!(jaccard(&a, &b), 1.0);
        let c = token_set("vote for the plan tomorrow friends");
        assert!((jaccard(&a, &c) - 5.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn normalised_links() {
        let n = |u| link_form(u, LinkMatch::Normalised);
        assert_eq!(
            n("https://www.Example.com/a/?utm_source=x&id=3#top"),
            "example.com/a?id=3"
        );
        assert_eq!(n("http://example.com/a"), "example.com/a");
        assert_eq!(
            link_form("http://example.com/a/", LinkMatch::Exact),
            "http://example.com/a/"
        );
    }
}
