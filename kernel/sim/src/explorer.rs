//! Stateless exhaustive exploration: a schedule is run from scratch, calling
//! [`Explorer::pick`] at each decision with the number of options it has; the explorer
//! remembers every pick and backtracks depth first, last decision first, until every
//! sequence of picks was run. Nothing is cloned: the run must only be deterministic given
//! its picks.
//!
//! A run may find, part-way, that it is only a reordering of one explored anyway — two
//! adjacent events that do not affect each other, in the order the reduction does not
//! keep (`schedule.rs`). It calls [`Explorer::prune`] and stops: it is neither counted
//! nor judged, and none of the schedules that would extend it are run.

/// The picks of the schedule being run, and what the next one replays.
pub struct Explorer {
    prefix: Vec<(usize, usize)>,
    pos: usize,
    pruned: bool,
}

impl Explorer {
    /// This schedule repeats another in a different order of independent events: drop it.
    /// The body should return at once (any `Err` will do; it is not recorded).
    pub fn prune(&mut self) {
        self.pruned = true;
    }

    /// Has this schedule been dropped?
    pub fn is_pruned(&self) -> bool {
        self.pruned
    }

    /// One of `n` options (`n` ≥ 1): the replayed pick, or the first option.
    pub fn pick(&mut self, n: usize) -> usize {
        assert!(n > 0);
        if self.pos < self.prefix.len() {
            let (c, was) = self.prefix[self.pos];
            assert_eq!(
                was, n,
                "replay diverged at decision {} (nondeterministic run)",
                self.pos
            );
            self.pos += 1;
            return c;
        }
        self.prefix.push((0, n));
        self.pos += 1;
        0
    }
}

/// Explore every schedule; `body` returns Err(description) for a bad run. Returns
/// (schedules explored, failing descriptions); pruned runs are not schedules. Stops
/// after `limit` schedules. A body that keeps statistics adds a schedule's only once it
/// ended (a pruned run stops part-way).
pub fn explore(
    mut body: impl FnMut(&mut Explorer) -> Result<(), String>,
    limit: usize,
) -> (usize, Vec<String>) {
    let mut ex = Explorer {
        prefix: Vec::new(),
        pos: 0,
        pruned: false,
    };
    let mut runs = 0;
    let mut fails = Vec::new();
    loop {
        ex.pos = 0;
        ex.pruned = false;
        let r = body(&mut ex);
        if !ex.pruned {
            runs += 1;
            if let Err(e) = r {
                fails.push(e);
            }
        }
        ex.prefix.truncate(ex.pos);
        // Backtrack: bump the deepest choice that has options left.
        while let Some(&(c, n)) = ex.prefix.last() {
            if c + 1 < n {
                ex.prefix.last_mut().unwrap().0 += 1;
                break;
            }
            ex.prefix.pop();
        }
        if ex.prefix.is_empty() || runs >= limit {
            return (runs, fails);
        }
    }
}
