//! A region allocator over an index space `0..size`: the one bookkeeping behind every
//! "2^k contiguous, aligned entries for one device" in the interrupt layer.
//!
//! A multi-message MSI device sends one message and ORs its message number into the low
//! bits of the data word (PCI Local Bus 3.0 §6.8.1.6), so whatever those bits select —
//! a vector on one CPU, or an interrupt-remapping entry under a handle + subhandle — must
//! be a run of 2^k entries aligned to 2^k. The same shape serves three index spaces:
//! a device's MSI message numbers, a CPU's vectors, and (next) a VT-d IRTE table.
//!
//! Four operations, and no bulk free that frees "whatever was allocated with this one":
//!
//! 1. [`RegionAllocator::reserve`] / [`RegionAllocator::reserve_at`]: set aside an aligned
//!    power-of-two region large enough for the device, when it is set up;
//! 2. [`RegionAllocator::alloc`] / [`RegionAllocator::alloc_at`]: allocate one entry
//!    (a *member*) inside a region;
//! 3. [`RegionAllocator::free`]: free one member — the region stays, so the device's
//!    remaining members keep their place and their alignment;
//! 4. [`RegionAllocator::teardown`]: give the region back, only once it has no member.
//!
//! Every refusal is a [`RegionError`] value and leaves the allocator exactly as it was.
//! Placement is lowest-fit: the lowest aligned base whose whole run is free.
//!
//! Locking: none of its own; the owner's lock covers it (the vector lock for vector
//! blocks, a domain's own lock for its message numbers).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::error::IrqError;

/// Largest index space served (a VT-d interrupt-remapping table has 65536 entries).
pub const MAX_INDEX_SPACE: u32 = 1 << 16;

/// Why a region operation was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// The region length is zero or not a power of two.
    NotPowerOfTwo(u32),
    /// The region (or the index space asked for) is larger than allowed.
    TooBig(u32),
    /// `base` is not a multiple of the region length.
    Misaligned {
        /// Requested base.
        base: u32,
        /// Requested length.
        len: u32,
    },
    /// The index lies outside the index space.
    OutOfRange(u32),
    /// No aligned run of the requested length is free.
    NoSpace,
    /// The requested run intersects an existing region.
    Overlaps {
        /// Base of the first region it intersects.
        base: u32,
    },
    /// No region starts at this base.
    UnknownRegion(u32),
    /// The index lies in no region.
    NotInRegion(u32),
    /// The member is already allocated.
    AlreadyAllocated(u32),
    /// The member is not allocated (a double free, or never allocated).
    NotAllocated(u32),
    /// Every member of the region at this base is allocated.
    Full(u32),
    /// The region at `base` still has `live` members: free them first.
    NotEmpty {
        /// The region.
        base: u32,
        /// Members still allocated.
        live: u32,
    },
}

impl From<RegionError> for IrqError {
    fn from(e: RegionError) -> Self {
        match e {
            RegionError::NotPowerOfTwo(_)
            | RegionError::TooBig(_)
            | RegionError::Misaligned { .. }
            | RegionError::OutOfRange(_) => IrqError::InvalidArgument,
            RegionError::NoSpace | RegionError::Full(_) => IrqError::NoSpace,
            RegionError::Overlaps { .. }
            | RegionError::AlreadyAllocated(_)
            | RegionError::NotEmpty { .. } => IrqError::Busy,
            RegionError::UnknownRegion(_)
            | RegionError::NotInRegion(_)
            | RegionError::NotAllocated(_) => IrqError::InvalidState,
        }
    }
}

/// A region as the allocator reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// First index (a multiple of `len`).
    pub base: u32,
    /// Number of entries (a power of two).
    pub len: u32,
    /// Members allocated.
    pub live: u32,
}

impl RegionInfo {
    /// Does the region cover `index`?
    pub fn contains(&self, index: u32) -> bool {
        index >= self.base && index - self.base < self.len
    }
}

/// What [`RegionAllocator::free`] left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freed {
    /// The region the member belonged to (it is still reserved).
    pub base: u32,
    /// Members the region still has; 0 means it may now be torn down.
    pub live: u32,
}

#[derive(Clone, Debug)]
struct Region {
    len: u32,
    /// One bit per member, bit `i` of word `i / 64` = entry `base + i`.
    members: Vec<u64>,
    live: u32,
}

impl Region {
    fn new(len: u32) -> Self {
        Self {
            len,
            members: alloc::vec![0; len.div_ceil(64) as usize],
            live: 0,
        }
    }

    fn test(&self, off: u32) -> bool {
        self.members[(off / 64) as usize] & 1 << (off % 64) != 0
    }

    fn set(&mut self, off: u32, on: bool) {
        let w = &mut self.members[(off / 64) as usize];
        if on {
            *w |= 1 << (off % 64);
        } else {
            *w &= !(1 << (off % 64));
        }
    }

    fn first_free(&self) -> Option<u32> {
        self.members.iter().enumerate().find_map(|(i, &w)| {
            let off = i as u32 * 64 + (!w).trailing_zeros();
            (w != u64::MAX && off < self.len).then_some(off)
        })
    }
}

/// Regions of an index space `0..size`; see the module documentation.
#[derive(Clone, Debug)]
pub struct RegionAllocator {
    size: u32,
    /// Regions by base; they never overlap.
    regions: BTreeMap<u32, Region>,
}

impl RegionAllocator {
    /// An empty allocator over `0..size` (`size` may be 0: everything is then refused).
    pub fn new(size: u32) -> Result<Self, RegionError> {
        if size > MAX_INDEX_SPACE {
            return Err(RegionError::TooBig(size));
        }
        Ok(Self {
            size,
            regions: BTreeMap::new(),
        })
    }

    /// An empty allocator over `0..min(size, MAX_INDEX_SPACE)` (for sizes read from
    /// hardware, e.g. an MSI-X table).
    pub fn up_to(size: u32) -> Self {
        Self {
            size: size.min(MAX_INDEX_SPACE),
            regions: BTreeMap::new(),
        }
    }

    /// Size of the index space.
    pub fn size(&self) -> u32 {
        self.size
    }

    fn check_len(&self, len: u32) -> Result<(), RegionError> {
        if !len.is_power_of_two() {
            return Err(RegionError::NotPowerOfTwo(len));
        }
        if len > self.size {
            return Err(RegionError::TooBig(len));
        }
        Ok(())
    }

    /// The first region that intersects `base..base + len`, if any.
    fn overlapping(&self, base: u32, len: u32) -> Option<u32> {
        let end = base + len;
        // A region starting before `base` reaches into the run only if it ends after it;
        // regions are disjoint, so only the last one starting at or before `base` can.
        let before = self
            .regions
            .range(..=base)
            .next_back()
            .filter(|(b, r)| **b + r.len > base)
            .map(|(b, _)| *b);
        before.or_else(|| self.regions.range(base..end).next().map(|(b, _)| *b))
    }

    /// Reserve the lowest free aligned run of `len` entries (a power of two) and return
    /// its base. The region starts with no member.
    pub fn reserve(&mut self, len: u32) -> Result<u32, RegionError> {
        self.check_len(len)?;
        // Walk the gaps between regions in order: a gap fits the run if its first aligned
        // base leaves `len` entries before the next region (or the end of the space).
        let mut cursor = 0u32;
        let ends = self
            .regions
            .iter()
            .map(|(&b, r)| (b, b + r.len))
            .chain(core::iter::once((self.size, self.size)));
        for (next_base, next_end) in ends {
            let base = cursor.next_multiple_of(len);
            if base.checked_add(len).is_some_and(|e| e <= next_base) {
                self.regions.insert(base, Region::new(len));
                return Ok(base);
            }
            cursor = cursor.max(next_end);
        }
        Err(RegionError::NoSpace)
    }

    /// Reserve exactly `base..base + len` (e.g. a multi-MSI device's message numbers,
    /// which start at 0, or a block of vectors the matrix found free).
    pub fn reserve_at(&mut self, base: u32, len: u32) -> Result<(), RegionError> {
        self.check_len(len)?;
        if !base.is_multiple_of(len) {
            return Err(RegionError::Misaligned { base, len });
        }
        if base.checked_add(len).is_none_or(|e| e > self.size) {
            return Err(RegionError::OutOfRange(base));
        }
        if let Some(b) = self.overlapping(base, len) {
            return Err(RegionError::Overlaps { base: b });
        }
        self.regions.insert(base, Region::new(len));
        Ok(())
    }

    /// Allocate the lowest free member of the region at `base`; returns its index.
    pub fn alloc(&mut self, base: u32) -> Result<u32, RegionError> {
        let r = self
            .regions
            .get_mut(&base)
            .ok_or(RegionError::UnknownRegion(base))?;
        let off = r.first_free().ok_or(RegionError::Full(base))?;
        r.set(off, true);
        r.live += 1;
        Ok(base + off)
    }

    /// Allocate member `index` of whichever region covers it; returns that region's base.
    pub fn alloc_at(&mut self, index: u32) -> Result<u32, RegionError> {
        let base = self.region_base(index)?;
        let r = self
            .regions
            .get_mut(&base)
            .ok_or(RegionError::NotInRegion(index))?;
        if r.test(index - base) {
            return Err(RegionError::AlreadyAllocated(index));
        }
        r.set(index - base, true);
        r.live += 1;
        Ok(base)
    }

    /// Free member `index`. Its region stays reserved (and so do the other members'
    /// places); [`Freed::live`] says whether it is now empty.
    pub fn free(&mut self, index: u32) -> Result<Freed, RegionError> {
        let base = self.region_base(index)?;
        let r = self
            .regions
            .get_mut(&base)
            .ok_or(RegionError::NotInRegion(index))?;
        if !r.test(index - base) {
            return Err(RegionError::NotAllocated(index));
        }
        r.set(index - base, false);
        r.live -= 1;
        Ok(Freed { base, live: r.live })
    }

    /// Give back the region at `base`; refused while it has members. Returns its length.
    pub fn teardown(&mut self, base: u32) -> Result<u32, RegionError> {
        let r = self
            .regions
            .get(&base)
            .ok_or(RegionError::UnknownRegion(base))?;
        if r.live > 0 {
            return Err(RegionError::NotEmpty { base, live: r.live });
        }
        let len = r.len;
        self.regions.remove(&base);
        Ok(len)
    }

    fn region_base(&self, index: u32) -> Result<u32, RegionError> {
        if index >= self.size {
            return Err(RegionError::OutOfRange(index));
        }
        self.region_of(index)
            .map(|r| r.base)
            .ok_or(RegionError::NotInRegion(index))
    }

    fn info(base: u32, r: &Region) -> RegionInfo {
        RegionInfo {
            base,
            len: r.len,
            live: r.live,
        }
    }

    /// The region starting at `base`.
    pub fn region(&self, base: u32) -> Option<RegionInfo> {
        self.regions.get(&base).map(|r| Self::info(base, r))
    }

    /// The region covering `index`.
    pub fn region_of(&self, index: u32) -> Option<RegionInfo> {
        let (&b, r) = self.regions.range(..=index).next_back()?;
        let info = Self::info(b, r);
        info.contains(index).then_some(info)
    }

    /// Is `index` an allocated member?
    pub fn is_allocated(&self, index: u32) -> bool {
        self.region_of(index)
            .and_then(|i| self.regions.get(&i.base).map(|r| r.test(index - i.base)))
            .unwrap_or(false)
    }

    /// Every region, by base.
    pub fn regions(&self) -> impl Iterator<Item = RegionInfo> + '_ {
        self.regions.iter().map(|(&b, r)| Self::info(b, r))
    }

    /// The allocated members of the region at `base`, ascending (empty if no region).
    pub fn members(&self, base: u32) -> impl Iterator<Item = u32> + '_ {
        let r = self.regions.get(&base);
        let len = r.map_or(0, |r| r.len);
        (0..len)
            .filter(move |&o| r.is_some_and(|r| r.test(o)))
            .map(move |o| base + o)
    }

    /// Recompute what the allocator promises and compare (tests, diagnostics): regions
    /// inside the space, aligned, power-of-two, disjoint; live counts match the bitmaps.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut end = 0;
        for (&b, r) in &self.regions {
            if !r.len.is_power_of_two() || !b.is_multiple_of(r.len) {
                return Err("region not an aligned power of two");
            }
            if b < end {
                return Err("regions overlap");
            }
            end = b + r.len;
            if end > self.size {
                return Err("region outside the index space");
            }
            let counted: u32 = (0..r.len).filter(|&o| r.test(o)).count() as u32;
            if counted != r.live {
                return Err("live count disagrees with the member bitmap");
            }
            let beyond = r.members.iter().map(|w| w.count_ones()).sum::<u32>();
            if beyond != counted {
                return Err("member bit set beyond the region");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_operations() {
        let mut a = RegionAllocator::new(32).unwrap();
        let b = a.reserve(8).unwrap();
        assert_eq!(b, 0);
        assert_eq!(a.alloc(b), Ok(0));
        assert_eq!(a.alloc_at(5), Ok(0));
        assert_eq!(a.alloc(b), Ok(1));
        // Freeing one member keeps the region and the others.
        assert_eq!(a.free(0), Ok(Freed { base: 0, live: 2 }));
        assert!(a.is_allocated(5) && a.is_allocated(1) && !a.is_allocated(0));
        assert_eq!(a.region(0).unwrap().live, 2);
        assert_eq!(
            a.teardown(0),
            Err(RegionError::NotEmpty { base: 0, live: 2 })
        );
        a.free(1).unwrap();
        assert_eq!(a.free(5), Ok(Freed { base: 0, live: 0 }));
        assert_eq!(a.teardown(0), Ok(8));
        assert_eq!(a.regions().count(), 0);
        a.check_invariants().unwrap();
    }

    #[test]
    fn lowest_aligned_fit() {
        let mut a = RegionAllocator::new(64).unwrap();
        a.reserve_at(1, 1).unwrap();
        assert_eq!(a.reserve(4), Ok(4));
        assert_eq!(a.reserve(2), Ok(2));
        assert_eq!(a.reserve(1), Ok(0));
        assert_eq!(a.reserve(16), Ok(16));
        assert_eq!(a.reserve(32), Ok(32));
        assert_eq!(a.reserve(8), Ok(8));
        assert_eq!(a.reserve(8), Err(RegionError::NoSpace));
        a.check_invariants().unwrap();
    }

    #[test]
    fn errors_change_nothing() {
        let mut a = RegionAllocator::new(16).unwrap();
        a.reserve_at(4, 4).unwrap();
        a.alloc_at(6).unwrap();
        let before = format!("{a:?}");
        assert_eq!(a.reserve(3), Err(RegionError::NotPowerOfTwo(3)));
        assert_eq!(a.reserve(0), Err(RegionError::NotPowerOfTwo(0)));
        assert_eq!(a.reserve(32), Err(RegionError::TooBig(32)));
        assert_eq!(
            a.reserve_at(2, 4),
            Err(RegionError::Misaligned { base: 2, len: 4 })
        );
        assert_eq!(a.reserve_at(0, 8), Err(RegionError::Overlaps { base: 4 }));
        assert_eq!(a.reserve_at(16, 1), Err(RegionError::OutOfRange(16)));
        assert_eq!(a.alloc_at(6), Err(RegionError::AlreadyAllocated(6)));
        assert_eq!(a.alloc_at(1), Err(RegionError::NotInRegion(1)));
        assert_eq!(a.alloc_at(99), Err(RegionError::OutOfRange(99)));
        assert_eq!(a.alloc(0), Err(RegionError::UnknownRegion(0)));
        assert_eq!(a.free(5), Err(RegionError::NotAllocated(5)));
        assert_eq!(a.free(0), Err(RegionError::NotInRegion(0)));
        assert_eq!(a.teardown(5), Err(RegionError::UnknownRegion(5)));
        assert_eq!(
            a.teardown(4),
            Err(RegionError::NotEmpty { base: 4, live: 1 })
        );
        assert_eq!(format!("{a:?}"), before);
        for m in [4, 5, 7] {
            a.alloc_at(m).unwrap();
        }
        assert_eq!(a.alloc(4), Err(RegionError::Full(4)));
        assert!(RegionAllocator::new(MAX_INDEX_SPACE + 1).is_err());
        let mut none = RegionAllocator::new(0).unwrap();
        assert_eq!(none.reserve(1), Err(RegionError::TooBig(1)));
    }

    #[test]
    fn large_regions_use_several_bitmap_words() {
        let mut a = RegionAllocator::new(MAX_INDEX_SPACE).unwrap();
        let b = a.reserve(2048).unwrap();
        for i in 0..2048 {
            assert_eq!(a.alloc(b), Ok(b + i));
        }
        assert_eq!(a.alloc(b), Err(RegionError::Full(b)));
        a.free(b + 1000).unwrap();
        assert_eq!(a.alloc(b), Ok(b + 1000));
        assert_eq!(a.members(b).count(), 2048);
        a.check_invariants().unwrap();
    }
}
