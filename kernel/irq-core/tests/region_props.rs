//! Property tests of the region allocator (`src/region.rs`) against a brute-force model.
//!
//! The model keeps a plain list of (base, length, members) and answers every operation by
//! exhaustive search; after each operation the allocator's whole state must equal the
//! model's. That one comparison covers the promises: no two regions overlap, every region
//! is aligned to its power-of-two size, freeing a member keeps the region and the other
//! members, a region goes only when torn down empty, nothing is left after teardown, and
//! a refused operation (whatever the error) changes nothing.

use proptest::prelude::*;
use sluice_irq_core::region::{Freed, RegionAllocator, RegionError, RegionInfo};
use std::collections::BTreeSet;

#[derive(Clone, Debug, Default)]
struct Model {
    size: u32,
    /// (base, len, members)
    regions: Vec<(u32, u32, BTreeSet<u32>)>,
}

impl Model {
    fn overlaps(&self, base: u32, len: u32) -> Option<u32> {
        let mut hit: Vec<u32> = self
            .regions
            .iter()
            .filter(|(b, l, _)| *b < base + len && base < b + l)
            .map(|(b, _, _)| *b)
            .collect();
        hit.sort();
        hit.first().copied()
    }

    fn check_len(&self, len: u32) -> Result<(), RegionError> {
        if len == 0 || !len.is_power_of_two() {
            return Err(RegionError::NotPowerOfTwo(len));
        }
        if len > self.size {
            return Err(RegionError::TooBig(len));
        }
        Ok(())
    }

    fn reserve(&mut self, len: u32) -> Result<u32, RegionError> {
        self.check_len(len)?;
        let base = (0..self.size)
            .step_by(len as usize)
            .find(|&b| b + len <= self.size && self.overlaps(b, len).is_none())
            .ok_or(RegionError::NoSpace)?;
        self.regions.push((base, len, BTreeSet::new()));
        Ok(base)
    }

    fn reserve_at(&mut self, base: u32, len: u32) -> Result<(), RegionError> {
        self.check_len(len)?;
        if !base.is_multiple_of(len) {
            return Err(RegionError::Misaligned { base, len });
        }
        if base + len > self.size {
            return Err(RegionError::OutOfRange(base));
        }
        if let Some(b) = self.overlaps(base, len) {
            return Err(RegionError::Overlaps { base: b });
        }
        self.regions.push((base, len, BTreeSet::new()));
        Ok(())
    }

    fn find(&mut self, index: u32) -> Result<&mut (u32, u32, BTreeSet<u32>), RegionError> {
        if index >= self.size {
            return Err(RegionError::OutOfRange(index));
        }
        self.regions
            .iter_mut()
            .find(|(b, l, _)| index >= *b && index < b + l)
            .ok_or(RegionError::NotInRegion(index))
    }

    fn alloc(&mut self, base: u32) -> Result<u32, RegionError> {
        let (b, l, m) = self
            .regions
            .iter_mut()
            .find(|(b, _, _)| *b == base)
            .ok_or(RegionError::UnknownRegion(base))?;
        let i = (*b..*b + *l)
            .find(|i| !m.contains(i))
            .ok_or(RegionError::Full(base))?;
        m.insert(i);
        Ok(i)
    }

    fn alloc_at(&mut self, index: u32) -> Result<u32, RegionError> {
        let (b, _, m) = self.find(index)?;
        if !m.insert(index) {
            return Err(RegionError::AlreadyAllocated(index));
        }
        Ok(*b)
    }

    fn free(&mut self, index: u32) -> Result<Freed, RegionError> {
        let (b, _, m) = self.find(index)?;
        if !m.remove(&index) {
            return Err(RegionError::NotAllocated(index));
        }
        Ok(Freed {
            base: *b,
            live: m.len() as u32,
        })
    }

    fn teardown(&mut self, base: u32) -> Result<u32, RegionError> {
        let pos = self
            .regions
            .iter()
            .position(|(b, _, _)| *b == base)
            .ok_or(RegionError::UnknownRegion(base))?;
        let live = self.regions[pos].2.len() as u32;
        if live > 0 {
            return Err(RegionError::NotEmpty { base, live });
        }
        Ok(self.regions.remove(pos).1)
    }

    fn infos(&self) -> Vec<RegionInfo> {
        let mut v: Vec<RegionInfo> = self
            .regions
            .iter()
            .map(|(b, l, m)| RegionInfo {
                base: *b,
                len: *l,
                live: m.len() as u32,
            })
            .collect();
        v.sort_by_key(|r| r.base);
        v
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Lengths drawn from 0..=33 so non-powers of two and too-big lengths occur.
    Reserve(u32),
    ReserveAt(u32, u32),
    /// The n-th existing region (or an arbitrary base when there is none).
    Alloc(usize),
    AllocAt(u32),
    /// An allocated member most of the time, any index otherwise (double frees).
    Free(usize, u32),
    Teardown(usize),
}

fn op(size: u32) -> impl Strategy<Value = Op> {
    let idx = 0..size + 2;
    prop_oneof![
        3 => (0u32..=33).prop_map(Op::Reserve),
        2 => (idx.clone(), 0u32..=17).prop_map(|(b, l)| Op::ReserveAt(b, l)),
        4 => any::<usize>().prop_map(Op::Alloc),
        2 => idx.clone().prop_map(Op::AllocAt),
        4 => (any::<usize>(), idx).prop_map(|(i, x)| Op::Free(i, x)),
        2 => any::<usize>().prop_map(Op::Teardown),
    ]
}

fn run(size: u32, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut a = RegionAllocator::new(size).unwrap();
    let mut m = Model {
        size,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Reserve(len) => {
                let got = a.reserve(len);
                prop_assert_eq!(got, m.reserve(len), "reserve({})", len);
                if let Ok(b) = got {
                    prop_assert_eq!(b % len, 0, "not aligned to its size");
                }
            }
            Op::ReserveAt(b, l) => prop_assert_eq!(a.reserve_at(b, l), m.reserve_at(b, l)),
            Op::Alloc(i) => {
                let base = match m.regions.len() {
                    0 => i as u32 % (size + 1),
                    n => m.regions[i % n].0,
                };
                prop_assert_eq!(a.alloc(base), m.alloc(base));
            }
            Op::AllocAt(x) => prop_assert_eq!(a.alloc_at(x), m.alloc_at(x)),
            Op::Free(i, x) => {
                let members: Vec<u32> = m.regions.iter().flat_map(|r| r.2.clone()).collect();
                let index = if members.is_empty() || i % 4 == 0 {
                    x
                } else {
                    members[i % members.len()]
                };
                let got = a.free(index);
                prop_assert_eq!(got, m.free(index));
                if let Ok(f) = got {
                    prop_assert!(
                        a.region(f.base).is_some(),
                        "freeing a member dropped its region"
                    );
                }
            }
            Op::Teardown(i) => {
                let base = match m.regions.len() {
                    0 => i as u32 % (size + 1),
                    n => m.regions[i % n].0,
                };
                prop_assert_eq!(a.teardown(base), m.teardown(base));
            }
        }
        prop_assert_eq!(a.regions().collect::<Vec<_>>(), m.infos());
        for (b, l, mem) in &m.regions {
            let got: BTreeSet<u32> = a.members(*b).collect();
            prop_assert_eq!(&got, mem);
            for i in *b..b + l {
                prop_assert_eq!(a.is_allocated(i), mem.contains(&i));
                prop_assert_eq!(a.region_of(i).map(|r| r.base), Some(*b));
            }
        }
        if let Err(e) = a.check_invariants() {
            prop_assert!(false, "{}", e);
        }
    }
    // Nothing leaks: free every member and tear every region down; the space is whole again.
    for (b, _, mem) in m.regions.clone() {
        for i in mem {
            a.free(i).unwrap();
        }
        a.teardown(b).unwrap();
    }
    prop_assert_eq!(a.regions().count(), 0);
    if size > 0 {
        let whole = 1 << (31 - size.leading_zeros());
        prop_assert_eq!(a.reserve(whole), Ok(0), "space not whole after teardown");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, .. ProptestConfig::default() })]

    #[test]
    fn region_allocator_matches_model_small(size in 0u32..=40, ops in proptest::collection::vec(op(40), 1..80)) {
        run(size, ops)?;
    }

    #[test]
    fn region_allocator_matches_model_vector_space(ops in proptest::collection::vec(op(256), 1..120)) {
        run(256, ops)?;
    }
}
