//! Fixed-size CPU bitmaps.
//!
//! A `CpuMask` is 1024 bits (16 words) by value: cheap to copy, no allocation, enough for
//! the benchmark's 1024 CPUs and for any machine Sluice targets. CPU numbers are the
//! kernel's logical numbers (0..nr_cpus), not APIC ids.

use core::fmt;

/// Logical CPU number.
pub type CpuId = u32;

/// The largest number of CPUs a mask can describe.
pub const MAX_CPUS: usize = 1024;
/// 64-bit words in a mask.
pub const MASK_WORDS: usize = MAX_CPUS / 64;
const WORDS: usize = MASK_WORDS;

/// A set of logical CPUs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CpuMask {
    bits: [u64; WORDS],
}

impl Default for CpuMask {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuMask {
    /// The empty mask.
    pub const fn new() -> Self {
        Self { bits: [0; WORDS] }
    }

    /// CPUs `0..n` (clamped to [`MAX_CPUS`]).
    pub fn first_n(n: usize) -> Self {
        let mut m = Self::new();
        for c in 0..n.min(MAX_CPUS) {
            m.bits[c / 64] |= 1 << (c % 64);
        }
        m
    }

    /// A mask with exactly one CPU (empty if `cpu` is out of range).
    pub fn single(cpu: CpuId) -> Self {
        let mut m = Self::new();
        m.set(cpu);
        m
    }

    /// Mask from a list of CPUs; out-of-range numbers are ignored.
    pub fn from_cpus(cpus: &[CpuId]) -> Self {
        let mut m = Self::new();
        for &c in cpus {
            m.set(c);
        }
        m
    }

    /// The mask as 64-bit words, CPU `64·i + b` at bit `b` of word `i` (for atomic
    /// copies of a mask).
    pub const fn words(&self) -> &[u64; MASK_WORDS] {
        &self.bits
    }

    /// A mask from words in the layout of [`Self::words`].
    pub const fn from_words(bits: [u64; MASK_WORDS]) -> Self {
        Self { bits }
    }

    /// Add `cpu`; returns false (and does nothing) if it is out of range.
    pub fn set(&mut self, cpu: CpuId) -> bool {
        let c = cpu as usize;
        if c >= MAX_CPUS {
            return false;
        }
        self.bits[c / 64] |= 1 << (c % 64);
        true
    }

    /// Remove `cpu`.
    pub fn clear(&mut self, cpu: CpuId) {
        let c = cpu as usize;
        if c < MAX_CPUS {
            self.bits[c / 64] &= !(1 << (c % 64));
        }
    }

    /// Is `cpu` in the mask?
    pub fn contains(&self, cpu: CpuId) -> bool {
        let c = cpu as usize;
        c < MAX_CPUS && self.bits[c / 64] & (1 << (c % 64)) != 0
    }

    /// No CPU set.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// Number of CPUs in the mask.
    pub fn weight(&self) -> u32 {
        self.bits.iter().map(|w| w.count_ones()).sum()
    }

    /// Lowest CPU in the mask.
    pub fn first(&self) -> Option<CpuId> {
        self.iter().next()
    }

    /// Intersection.
    pub fn and(&self, other: &CpuMask) -> CpuMask {
        let mut r = *self;
        for (a, b) in r.bits.iter_mut().zip(other.bits.iter()) {
            *a &= *b;
        }
        r
    }

    /// Union.
    pub fn or(&self, other: &CpuMask) -> CpuMask {
        let mut r = *self;
        for (a, b) in r.bits.iter_mut().zip(other.bits.iter()) {
            *a |= *b;
        }
        r
    }

    /// `self` minus `other`.
    pub fn and_not(&self, other: &CpuMask) -> CpuMask {
        let mut r = *self;
        for (a, b) in r.bits.iter_mut().zip(other.bits.iter()) {
            *a &= !*b;
        }
        r
    }

    /// Do the masks share a CPU?
    pub fn intersects(&self, other: &CpuMask) -> bool {
        self.bits
            .iter()
            .zip(other.bits.iter())
            .any(|(a, b)| a & b != 0)
    }

    /// Is every CPU of `self` in `other`?
    pub fn is_subset_of(&self, other: &CpuMask) -> bool {
        self.bits
            .iter()
            .zip(other.bits.iter())
            .all(|(a, b)| a & !b == 0)
    }

    /// CPUs in ascending order.
    pub fn iter(&self) -> CpuMaskIter<'_> {
        CpuMaskIter {
            mask: self,
            word: 0,
            cur: self.bits[0],
        }
    }

    /// Parse a Linux-style cpu list: `"0-3,8,10-11"`. Whitespace around items is allowed.
    pub fn parse_list(s: &str) -> Option<CpuMask> {
        let mut m = CpuMask::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
                None => {
                    let v = part.parse::<u32>().ok()?;
                    (v, v)
                }
            };
            if lo > hi || hi as usize >= MAX_CPUS {
                return None;
            }
            for c in lo..=hi {
                m.set(c);
            }
        }
        Some(m)
    }
}

/// Iterator over the CPUs of a mask.
pub struct CpuMaskIter<'a> {
    mask: &'a CpuMask,
    word: usize,
    cur: u64,
}

impl Iterator for CpuMaskIter<'_> {
    type Item = CpuId;
    fn next(&mut self) -> Option<CpuId> {
        loop {
            if self.cur != 0 {
                let bit = self.cur.trailing_zeros() as usize;
                self.cur &= self.cur - 1;
                return Some((self.word * 64 + bit) as CpuId);
            }
            self.word += 1;
            if self.word >= WORDS {
                return None;
            }
            self.cur = self.mask.bits[self.word];
        }
    }
}

/// Prints as a cpu list, e.g. `0-3,8`; the empty mask prints as `(none)`.
impl fmt::Display for CpuMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut it = self.iter().peekable();
        if it.peek().is_none() {
            return write!(f, "(none)");
        }
        while let Some(lo) = it.next() {
            let mut hi = lo;
            while it.peek() == Some(&(hi + 1)) {
                hi += 1;
                it.next();
            }
            if !first {
                write!(f, ",")?;
            }
            first = false;
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CpuMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuMask({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn list_round_trip() {
        let m = CpuMask::parse_list("0-3, 8,10-11,1023").unwrap();
        assert_eq!(m.weight(), 8);
        assert_eq!(m.to_string(), "0-3,8,10-11,1023");
        assert_eq!(CpuMask::parse_list("3-1"), None);
        assert_eq!(CpuMask::parse_list("1024"), None);
        assert_eq!(CpuMask::new().to_string(), "(none)");
    }

    #[test]
    fn set_ops() {
        let a = CpuMask::first_n(4);
        let b = CpuMask::from_cpus(&[2, 3, 700]);
        assert_eq!(a.and(&b), CpuMask::from_cpus(&[2, 3]));
        assert_eq!(a.or(&b).weight(), 5);
        assert_eq!(a.and_not(&b), CpuMask::from_cpus(&[0, 1]));
        assert!(CpuMask::from_cpus(&[1]).is_subset_of(&a));
        assert!(!b.is_subset_of(&a));
        assert_eq!(b.iter().collect::<alloc::vec::Vec<_>>(), [2, 3, 700]);
        assert!(!CpuMask::new().set(5000));
    }
}
