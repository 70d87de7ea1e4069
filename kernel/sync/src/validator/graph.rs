//! The nesting graph over lock classes, in fixed-size bit matrices: an edge A → B means
//! B was taken while A was held; `reach` is the transitive closure, kept up to date on
//! every insertion so that "would A → B close a cycle?" is one bit test. Pure logic, no
//! locking: the validator calls it under its own lock, and the property tests compare it
//! with a plain depth-first search.

/// Lock classes the validator can tell apart (the table overflows beyond this, reported).
pub const MAX_CLASSES: usize = 128;
const WORDS: usize = MAX_CLASSES / 64;

/// A set of class slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassSet([u64; WORDS]);

impl ClassSet {
    /// No class.
    pub const EMPTY: ClassSet = ClassSet([0; WORDS]);

    /// `{c}`.
    pub fn single(c: usize) -> ClassSet {
        let mut s = ClassSet::EMPTY;
        s.insert(c);
        s
    }
    /// Whether `c` is in the set.
    pub fn contains(&self, c: usize) -> bool {
        self.0[c / 64] & (1 << (c % 64)) != 0
    }
    /// Adds `c`.
    pub fn insert(&mut self, c: usize) {
        self.0[c / 64] |= 1 << (c % 64)
    }
    /// Removes `c`.
    pub fn remove(&mut self, c: usize) {
        self.0[c / 64] &= !(1 << (c % 64))
    }
    /// `self ∪ other`.
    pub fn union(self, other: ClassSet) -> ClassSet {
        let mut r = self;
        for (a, b) in r.0.iter_mut().zip(other.0) {
            *a |= b;
        }
        r
    }
    /// `self ∩ other`.
    pub fn intersection(self, other: ClassSet) -> ClassSet {
        let mut r = self;
        for (a, b) in r.0.iter_mut().zip(other.0) {
            *a &= b;
        }
        r
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
    /// The members, smallest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_CLASSES).filter(move |&c| self.contains(c))
    }
    /// The smallest member.
    pub fn first(&self) -> Option<usize> {
        self.0
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
    }
}

/// A path of classes, each nested under the one before it.
#[derive(Clone, Copy, Debug)]
pub struct ClassPath {
    /// A path visits each class once, except that a cycle ends where it began.
    nodes: [u8; MAX_CLASSES + 1],
    len: usize,
}

impl ClassPath {
    /// The classes, first to last.
    pub fn nodes(&self) -> &[u8] {
        &self.nodes[..self.len]
    }
}

/// Direct nestings and their transitive closure.
pub struct Graph {
    edges: [ClassSet; MAX_CLASSES],
    reach: [ClassSet; MAX_CLASSES],
}

impl Graph {
    /// No nesting known.
    pub const fn new() -> Graph {
        Graph {
            edges: [ClassSet::EMPTY; MAX_CLASSES],
            reach: [ClassSet::EMPTY; MAX_CLASSES],
        }
    }

    /// Whether `to` was taken directly under `from`.
    pub fn has_edge(&self, from: usize, to: usize) -> bool {
        self.edges[from].contains(to)
    }

    /// The classes `from` reaches through one or more nestings.
    pub fn reach(&self, from: usize) -> ClassSet {
        self.reach[from]
    }

    /// Whether adding `from → to` would close a cycle: `to` is `from`, or reaches it.
    pub fn closes_cycle(&self, from: usize, to: usize) -> bool {
        from == to || self.reach[to].contains(from)
    }

    /// The classes that are `to` or reach it.
    pub fn reaching(&self, to: usize) -> ClassSet {
        let mut s = ClassSet::single(to);
        for x in 0..MAX_CLASSES {
            if self.reach[x].contains(to) {
                s.insert(x);
            }
        }
        s
    }

    /// Records `from → to` (a cycle is recorded too, so it is reported only once).
    pub fn add_edge(&mut self, from: usize, to: usize) {
        if self.edges[from].contains(to) {
            return;
        }
        self.edges[from].insert(to);
        let gained = self.reach[to].union(ClassSet::single(to));
        for x in self.reaching(from).iter() {
            self.reach[x] = self.reach[x].union(gained);
        }
    }

    /// Every edge from or to `class` removed, and the closure rebuilt.
    pub fn forget(&mut self, class: usize) {
        self.edges[class] = ClassSet::EMPTY;
        for e in self.edges.iter_mut() {
            e.remove(class);
        }
        self.reach = self.edges;
        // Warshall's algorithm on bit rows: after step k, reach holds every path whose
        // inner nodes are below k.
        for k in 0..MAX_CLASSES {
            let via = self.reach[k];
            for x in 0..MAX_CLASSES {
                if self.reach[x].contains(k) {
                    self.reach[x] = self.reach[x].union(via);
                }
            }
        }
    }

    /// A shortest path of direct nestings from `from` to `to` (at least one edge), if any.
    pub fn path(&self, from: usize, to: usize) -> Option<ClassPath> {
        const NONE: u8 = u8::MAX;
        let mut parent = [NONE; MAX_CLASSES];
        let mut seen = ClassSet::EMPTY;
        let mut queue = [0u8; MAX_CLASSES];
        let (mut head, mut tail) = (0, 0);
        for n in self.edges[from].iter() {
            seen.insert(n);
            parent[n] = from as u8;
            queue[tail] = n as u8;
            tail += 1;
        }
        while head < tail {
            let x = queue[head] as usize;
            head += 1;
            if x == to {
                let mut rev = [0u8; MAX_CLASSES];
                let mut len = 0;
                let mut at = to;
                // Walk back to `from`; a path visits each class once, so it fits.
                loop {
                    rev[len] = at as u8;
                    len += 1;
                    let p = parent[at] as usize;
                    if p == from {
                        break;
                    }
                    at = p;
                }
                let mut nodes = [0u8; MAX_CLASSES + 1];
                nodes[0] = from as u8;
                for i in 0..len {
                    nodes[1 + i] = rev[len - 1 - i];
                }
                return Some(ClassPath {
                    nodes,
                    len: len + 1,
                });
            }
            for n in self.edges[x].iter() {
                if !seen.contains(n) {
                    seen.insert(n);
                    parent[n] = x as u8;
                    queue[tail] = n as u8;
                    tail += 1;
                }
            }
        }
        None
    }
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new()
    }
}
