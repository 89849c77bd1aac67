#!/usr/bin/env python3
"""Best-match F1 of each planted network of a `facade simulate` export, for facade (its flagged
networks) and for the QUT coordination-network-toolkit + Louvain (networkx), side by side.

The peer's protocol, written down so it can be argued with: the toolkit's directed edges of
co-tweet, co-retweet, co-link, co-reply and co-similar-tweet at a 60 s window (bench/
toolkit_edges.py), kept where the weight is at least 2 (the toolkit's --min_edge_weight 2,
facade's --min-strength 2), summed into one undirected graph, split by Louvain (seed 1); every
community of 3 or more accounts is the peer's network (the toolkit has no score to flag by).

usage: recovery.py SIM_DIR FACADE_NETWORKS_JSON TOOLKIT_EDGES_CSV  → one JSON line on stdout
"""
import csv
import json
import sys
from collections import defaultdict

import networkx as nx


def f1(planted, found):
    return 2 * len(planted & found) / (len(planted) + len(found))


def score(truth, found):
    planted = {n["name"]: (n["style"], set(n["accounts"])) for n in truth["networks"]}
    per_network = {}
    for name, (style, members) in planted.items():
        per_network[name] = {"style": style,
                             "f1": max((f1(members, f) for f in found), default=0.0)}
    false = [len(f) for f in found
             if all(f1(members, f) < 0.5 for _, members in planted.values())]
    return {"per_network": per_network, "false_networks": false,
            "mean_f1": sum(v["f1"] for v in per_network.values()) / len(per_network)}


def peer_networks(edges_csv):
    weights = defaultdict(float)
    with open(edges_csv) as f:
        for row in csv.DictReader(f):
            w = float(row["weight"])
            if w >= 2:
                a, b = sorted((row["user_1"], row["user_2"]))
                weights[(a, b)] += w
    graph = nx.Graph()
    graph.add_weighted_edges_from((a, b, w) for (a, b), w in weights.items())
    communities = nx.community.louvain_communities(graph, weight="weight", seed=1)
    return [set(c) for c in communities if len(c) >= 3]


def main():
    sim, facade_json, toolkit_csv = sys.argv[1:4]
    truth = json.load(open(f"{sim}/truth.json"))
    ours = [set(n["accounts"]) for n in json.load(open(facade_json)) if n["flagged"]]
    print(json.dumps({"sim": sim, "params": truth["params"],
                      "facade": score(truth, ours),
                      "peer": score(truth, peer_networks(toolkit_csv))}))


if __name__ == "__main__":
    main()
