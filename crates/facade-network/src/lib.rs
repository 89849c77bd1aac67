//! facade-network owns the *account → network* stage: it reads account exports (the Twitter
//! Information Operations archive, facade's JSON Lines, the QUT toolkit's CSV) with per-row
//! diagnostics, finds coordination between accounts (same text, near-duplicate text, retweet,
//! link, reply or hashtag sequence within a time window; creation bursts; shared or AI-made
//! faces), builds the weighted graph, finds its communities, and scores each as a network with
//! the evidence behind it. It also simulates exports with planted networks, for tests.
//! Faces arrive as plain data ([`dataset::FaceEvidence`]); this crate never opens an image.
//! Posts, signal keys and account pairs go to sorted runs on disk past 16 MB each
//! ([`spill`]), so memory grows with accounts, not posts.

pub mod dataset;
pub mod diagnostics;
pub mod export;
pub mod ingest;
pub mod louvain;
pub mod networks;
pub mod pylist;
pub mod sequences;
pub mod signals;
pub mod simulate;
pub mod spill;
pub mod text;
pub mod time;
