//! Louvain community detection (Blondel et al. 2008) on a weighted undirected graph, made
//! deterministic (nodes visited in index order), with Leiden's guarantee added at the end:
//! every community is split into its connected components.

/// Undirected weighted graph as adjacency lists; an edge appears in both lists.
#[derive(Clone, Debug, Default)]
pub struct WeightedGraph {
    pub adjacency: Vec<Vec<(u32, f64)>>,
}

impl WeightedGraph {
    pub fn with_nodes(n: usize) -> Self {
        Self {
            adjacency: vec![Vec::new(); n],
        }
    }

    pub fn add_edge(&mut self, a: u32, b: u32, weight: f64) {
        self.adjacency[a as usize].push((b, weight));
        if a != b {
            self.adjacency[b as usize].push((a, weight));
        }
    }

    fn len(&self) -> usize {
        self.adjacency.len()
    }
}

/// The community of every node (communities numbered 0.. by their smallest node).
pub fn communities(graph: &WeightedGraph, resolution: f64) -> Vec<u32> {
    let mut membership: Vec<u32> = (0..graph.len() as u32).collect();
    let mut level = graph.clone();
    loop {
        let (moved, local) = one_level(&level, resolution);
        for m in membership.iter_mut() {
            *m = local[*m as usize];
        }
        if !moved {
            break;
        }
        level = aggregate(&level, &local);
    }
    split_disconnected(graph, &membership)
}

/// Moves nodes to the neighbouring community of best modularity gain until none moves.
/// Returns whether any node moved, and the (renumbered) community of each node.
fn one_level(graph: &WeightedGraph, resolution: f64) -> (bool, Vec<u32>) {
    let n = graph.len();
    let degree: Vec<f64> = graph
        .adjacency
        .iter()
        .map(|adj| adj.iter().map(|(_, w)| w).sum())
        .collect();
    let total: f64 = degree.iter().sum();
    if total == 0.0 {
        return (false, (0..n as u32).collect());
    }
    let mut community: Vec<u32> = (0..n as u32).collect();
    let mut community_degree = degree.clone();
    let mut links_to: Vec<f64> = vec![0.0; n];
    let mut touched: Vec<u32> = Vec::new();
    let mut moved_any = false;
    for _sweep in 0..100 {
        let mut moved = false;
        for node in 0..n {
            let current = community[node];
            for &(other, w) in &graph.adjacency[node] {
                if other as usize == node {
                    continue;
                }
                let c = community[other as usize];
                if links_to[c as usize] == 0.0 {
                    touched.push(c);
                }
                links_to[c as usize] += w;
            }
            community_degree[current as usize] -= degree[node];
            let gain = |c: u32, links: f64| {
                links - resolution * community_degree[c as usize] * degree[node] / total
            };
            let mut best = current;
            let mut best_gain = gain(current, links_to[current as usize]);
            for &c in &touched {
                let g = gain(c, links_to[c as usize]);
                if g > best_gain + 1e-12 || (g > best_gain - 1e-12 && c < best && g >= best_gain) {
                    best = c;
                    best_gain = g;
                }
            }
            community_degree[best as usize] += degree[node];
            if best != current {
                community[node] = best;
                moved = true;
                moved_any = true;
            }
            for &c in &touched {
                links_to[c as usize] = 0.0;
            }
            links_to[current as usize] = 0.0;
            touched.clear();
        }
        if !moved {
            break;
        }
    }
    (moved_any, renumber(&community))
}

fn renumber(community: &[u32]) -> Vec<u32> {
    let mut map = vec![u32::MAX; community.len()];
    let mut next = 0;
    community
        .iter()
        .map(|&c| {
            if map[c as usize] == u32::MAX {
                map[c as usize] = next;
                next += 1;
            }
            map[c as usize]
        })
        .collect()
}

/// One node per community; edge weights summed (internal weight becomes a self-loop).
fn aggregate(graph: &WeightedGraph, community: &[u32]) -> WeightedGraph {
    let count = community.iter().max().map_or(0, |m| *m as usize + 1);
    let mut weights: Vec<rustc_hash::FxHashMap<u32, f64>> = vec![Default::default(); count];
    for (node, adj) in graph.adjacency.iter().enumerate() {
        let a = community[node];
        for &(other, w) in adj {
            let b = community[other as usize];
            // Each undirected edge is listed twice; a self-loop once.
            let share = if other as usize == node { w } else { w / 2.0 };
            *weights[a.min(b) as usize].entry(a.max(b)).or_default() += share;
        }
    }
    let mut next = WeightedGraph::with_nodes(count);
    for (a, targets) in weights.into_iter().enumerate() {
        let mut targets: Vec<(u32, f64)> = targets.into_iter().collect();
        targets.sort_by_key(|t| t.0);
        for (b, w) in targets {
            if a as u32 == b {
                // A self-loop counts twice in the degree, as both endpoints.
                next.adjacency[a].push((b, 2.0 * w));
            } else {
                next.add_edge(a as u32, b, w);
            }
        }
    }
    next
}

/// Splits each community into connected components (of the original graph).
fn split_disconnected(graph: &WeightedGraph, membership: &[u32]) -> Vec<u32> {
    let n = graph.len();
    let mut result = vec![u32::MAX; n];
    let mut next = 0;
    let mut stack = Vec::new();
    for start in 0..n {
        if result[start] != u32::MAX {
            continue;
        }
        result[start] = next;
        stack.push(start);
        while let Some(node) = stack.pop() {
            for &(other, _) in &graph.adjacency[node] {
                let other = other as usize;
                if result[other] == u32::MAX && membership[other] == membership[node] {
                    result[other] = next;
                    stack.push(other);
                }
            }
        }
        next += 1;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clique(graph: &mut WeightedGraph, nodes: std::ops::Range<u32>, w: f64) {
        for a in nodes.clone() {
            for b in a + 1..nodes.end {
                graph.add_edge(a, b, w);
            }
        }
    }

    #[test]
    fn finds_two_cliques_joined_by_a_weak_edge() {
        let mut graph = WeightedGraph::with_nodes(10);
        clique(&mut graph, 0..5, 3.0);
        clique(&mut graph, 5..10, 3.0);
        graph.add_edge(4, 5, 0.5);
        let c = communities(&graph, 1.0);
        assert!(c[..5].iter().all(|&x| x == c[0]));
        assert!(c[5..].iter().all(|&x| x == c[5]));
        assert_ne!(c[0], c[5]);
    }

    #[test]
    fn ring_of_cliques_is_resolved() {
        // 8 cliques of 6 in a ring: the textbook case.
        let mut graph = WeightedGraph::with_nodes(48);
        for k in 0..8u32 {
            clique(&mut graph, 6 * k..6 * k + 6, 1.0);
            graph.add_edge(6 * k, (6 * k + 6) % 48, 1.0);
        }
        let c = communities(&graph, 1.0);
        for k in 0..8 {
            let block = &c[6 * k..6 * k + 6];
            assert!(block.iter().all(|&x| x == block[0]));
        }
        let distinct: std::collections::BTreeSet<_> = c.iter().collect();
        assert_eq!(distinct.len(), 8);
    }

    #[test]
    fn isolated_nodes_stay_alone() {
        let graph = WeightedGraph::with_nodes(3);
        assert_eq!(communities(&graph, 1.0), [0, 1, 2]);
    }
}
