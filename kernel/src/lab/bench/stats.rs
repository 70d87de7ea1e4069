//! Order statistics of a set of timings: what every benchmark prints.

/// Median, 10th and 90th percentile and maximum of some samples, in their unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub median: u64,
    pub p10: u64,
    pub p90: u64,
    pub max: u64,
}

impl Summary {
    /// Sorts `samples` in place and summarises them (all zero when empty). Percentiles
    /// are nearest-rank: the smallest sample with at least that share at or below it.
    pub fn of(samples: &mut [u64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        let rank = |pct: usize| {
            let k = (samples.len() * pct).div_ceil(100).max(1);
            samples[k - 1]
        };
        Summary {
            count: samples.len(),
            median: rank(50),
            p10: rank(10),
            p90: rank(90),
            max: samples[samples.len() - 1],
        }
    }
}
