//! The nesting graph's incremental closure against a plain depth-first search: after any
//! sequence of insertions and forgets, `reach`, `closes_cycle` and `path` agree with the
//! edges actually present.

use proptest::prelude::*;
use sluice_sync::validator::graph::{Graph, MAX_CLASSES};

/// Classes used: few enough that random edges form cycles and long chains often.
const N: usize = 12;

#[derive(Clone, Debug)]
enum Op {
    Add(usize, usize),
    Forget(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..N, 0..N).prop_map(|(a, b)| Op::Add(a, b)),
        1 => (0..N).prop_map(Op::Forget),
    ]
}

/// Whether `to` is reachable from `from` through one or more edges.
fn dfs(edges: &[[bool; N]; N], from: usize, to: usize) -> bool {
    let mut seen = [false; N];
    let mut stack = vec![from];
    while let Some(x) = stack.pop() {
        for y in 0..N {
            if edges[x][y] {
                if y == to {
                    return true;
                }
                if !seen[y] {
                    seen[y] = true;
                    stack.push(y);
                }
            }
        }
    }
    false
}

fn shortest(edges: &[[bool; N]; N], from: usize, to: usize) -> Option<usize> {
    let mut dist = [usize::MAX; N];
    let mut q = std::collections::VecDeque::new();
    for y in 0..N {
        if edges[from][y] {
            dist[y] = 1;
            q.push_back(y);
        }
    }
    while let Some(x) = q.pop_front() {
        if x == to {
            return Some(dist[x]);
        }
        for y in 0..N {
            if edges[x][y] && dist[y] == usize::MAX {
                dist[y] = dist[x] + 1;
                q.push_back(y);
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn closure_and_paths_match_a_search(ops in prop::collection::vec(op(), 1..60)) {
        let mut g = Box::new(Graph::new());
        let mut edges = [[false; N]; N];
        for op in &ops {
            match *op {
                Op::Add(a, b) => {
                    prop_assert_eq!(g.closes_cycle(a, b), a == b || dfs(&edges, b, a));
                    g.add_edge(a, b);
                    edges[a][b] = true;
                }
                Op::Forget(c) => {
                    g.forget(c);
                    edges[c] = [false; N];
                    for row in edges.iter_mut() {
                        row[c] = false;
                    }
                }
            }
        }
        for a in 0..N {
            for b in 0..N {
                prop_assert_eq!(g.has_edge(a, b), edges[a][b]);
                let reach = dfs(&edges, a, b);
                prop_assert_eq!(g.reach(a).contains(b), reach, "reach {} -> {}", a, b);
                prop_assert_eq!(g.reaching(b).contains(a), a == b || reach);
                match g.path(a, b) {
                    Some(p) => {
                        let nodes = p.nodes();
                        prop_assert!(reach);
                        prop_assert_eq!(nodes[0] as usize, a);
                        prop_assert_eq!(*nodes.last().unwrap() as usize, b);
                        for w in nodes.windows(2) {
                            prop_assert!(edges[w[0] as usize][w[1] as usize]);
                        }
                        prop_assert_eq!(Some(nodes.len() - 1), shortest(&edges, a, b));
                    }
                    None => prop_assert!(!reach),
                }
            }
        }
    }
}

#[test]
fn a_chain_through_every_class_fits() {
    let mut g = Box::new(Graph::new());
    for c in 0..MAX_CLASSES - 1 {
        g.add_edge(c, c + 1);
    }
    assert!(g.closes_cycle(MAX_CLASSES - 1, 0));
    g.add_edge(MAX_CLASSES - 1, 0);
    let p = g.path(0, 0).expect("the whole ring");
    assert_eq!(p.nodes().len(), MAX_CLASSES + 1);
}
