//! Exhaustive exploration by replay: a run asks the scheduler to pick one of `n` options
//! at each nondeterministic point; the scheduler remembers every pick and its `n`, and
//! [`Scheduler::advance`] turns the record into the next untried run (depth first, last
//! decision first). The code under test is run again from scratch for each run, so
//! nothing needs to be cloned — only the run must be deterministic given its picks
//! (checked: a replayed pick beyond the options it meets panics).
//!
//! Self-contained, for the shared simulator: it knows nothing of what the options mean.

#![allow(dead_code)]

/// The record of picks, and what the next run replays.
#[derive(Debug, Clone, Default)]
pub struct Scheduler {
    /// Picks the current run replays before choosing option 0 everywhere.
    prefix: Vec<usize>,
    /// (pick, options) of every decision with more than one option, this run.
    trail: Vec<(usize, usize)>,
    runs: usize,
}

impl Scheduler {
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Picks one of `n` options (`n` ≥ 1): the replayed pick, or the first option.
    pub fn choose(&mut self, n: usize) -> usize {
        assert!(n > 0, "a decision with no option");
        if n == 1 {
            return 0;
        }
        let at = self.trail.len();
        let pick = self.prefix.get(at).copied().unwrap_or(0);
        assert!(
            pick < n,
            "replay diverged at decision {at}: pick {pick} of {n} (nondeterministic run)"
        );
        self.trail.push((pick, n));
        pick
    }

    /// Prepares the next run; `false` once every combination of picks was run.
    pub fn advance(&mut self) -> bool {
        self.runs += 1;
        while let Some((pick, n)) = self.trail.pop() {
            if pick + 1 < n {
                self.prefix = self.trail.iter().map(|&(p, _)| p).collect();
                self.prefix.push(pick + 1);
                self.trail.clear();
                return true;
            }
        }
        self.prefix.clear();
        false
    }

    /// Runs finished so far (each `advance` ends one).
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// This run's picks so far, as (pick, options).
    pub fn picks(&self) -> &[(usize, usize)] {
        &self.trail
    }
}
