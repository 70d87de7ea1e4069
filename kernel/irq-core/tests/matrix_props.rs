//! Property tests of the vector matrix against a trivially-correct model.
//!
//! Random operation sequences on small machines (1..=4 CPUs, so exhaustion happens often)
//! check after every step: no vector handed out twice, system vectors never handed out,
//! every counter agrees with the bitmaps, and reservations are honoured (a reserved
//! allocation on the full online mask always succeeds).

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_irq_core::matrix::VectorMatrix;
use sluice_irq_core::vector::{Vector, is_system};
use sluice_irq_core::{CpuMask, IrqError};

#[derive(Clone, Debug)]
enum Op {
    Alloc(u8),
    AllocReserved,
    Reserve,
    Unreserve,
    Free(usize),
    ReserveManaged(u8),
    AllocManaged(usize),
    FreeManaged(usize),
    AllocBlock(u8, u32),
    Offline(u8),
    Online(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u8>().prop_map(Op::Alloc),
        2 => Just(Op::AllocReserved),
        2 => Just(Op::Reserve),
        1 => Just(Op::Unreserve),
        5 => any::<usize>().prop_map(Op::Free),
        1 => any::<u8>().prop_map(Op::ReserveManaged),
        2 => any::<usize>().prop_map(Op::AllocManaged),
        1 => any::<usize>().prop_map(Op::FreeManaged),
        2 => (any::<u8>(), 0u32..6).prop_map(|(m, k)| Op::AllocBlock(m, 1 << k)),
        1 => any::<u8>().prop_map(Op::Offline),
        1 => any::<u8>().prop_map(Op::Online),
    ]
}

fn mask_of(bits: u8, n: usize) -> CpuMask {
    let mut m = CpuMask::new();
    for c in 0..n {
        if bits & (1 << c) != 0 {
            m.set(c as u32);
        }
    }
    m
}

#[derive(Default)]
struct Model {
    /// (cpu, vector) -> managed?
    handed: BTreeMap<(u32, u8), bool>,
    blocks: Vec<(u32, u8, u32)>,
    managed_masks: Vec<CpuMask>,
    /// managed allocations: index into managed_masks
    managed_alloc: BTreeMap<(u32, u8), usize>,
    reserved: u32,
}

impl Model {
    fn take(&mut self, cpu: u32, v: Vector, managed: bool) -> Result<(), TestCaseError> {
        prop_assert!(!is_system(v), "system vector {v} handed out");
        prop_assert!(
            self.handed.insert((cpu, v.0), managed).is_none(),
            "vector {v} on cpu {cpu} handed out twice"
        );
        Ok(())
    }
}

fn run(n: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut m = VectorMatrix::new(n).unwrap();
    for c in 0..n as u32 {
        m.online(c).unwrap();
    }
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Alloc(bits) => {
                let mask = mask_of(bits, n);
                match m.alloc(&mask, false) {
                    Ok((cpu, v)) => {
                        prop_assert!(mask.contains(cpu) && m.is_online(cpu));
                        model.take(cpu, v, false)?;
                    }
                    Err(IrqError::NoSpace) => {}
                    Err(IrqError::InvalidMask) => prop_assert!(mask.is_empty()),
                    Err(IrqError::OfflineTarget(_)) => {
                        prop_assert!(!mask.intersects(m.online_mask()))
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::AllocReserved => {
                if model.reserved > 0 {
                    let online = *m.online_mask();
                    // Reservations are honoured: with the whole online mask it must succeed
                    // as long as no forced offline broke the promise.
                    let promise_kept = m.global_available() >= m.global_reserved();
                    match m.alloc(&online, true) {
                        Ok((cpu, v)) => {
                            model.take(cpu, v, false)?;
                            model.reserved -= 1;
                        }
                        Err(e) => prop_assert!(!promise_kept, "reservation not honoured: {e:?}"),
                    }
                } else {
                    prop_assert_eq!(
                        m.alloc(&CpuMask::first_n(n), true),
                        Err(IrqError::InvalidState)
                    );
                }
            }
            Op::Reserve => {
                if m.reserve().is_ok() {
                    model.reserved += 1;
                }
            }
            Op::Unreserve => {
                let r = m.remove_reserved();
                if model.reserved > 0 {
                    prop_assert!(r.is_ok());
                    model.reserved -= 1;
                } else {
                    prop_assert!(r.is_err());
                }
            }
            Op::Free(i) => {
                let singles: Vec<(u32, u8)> = model
                    .handed
                    .iter()
                    .filter(|(k, managed)| {
                        !**managed
                            && !model.blocks.iter().any(|&(c, b, cnt)| {
                                c == k.0 && k.1 >= b && (k.1 as u32) < b as u32 + cnt
                            })
                    })
                    .map(|(k, _)| *k)
                    .collect();
                if !model.blocks.is_empty() && i % 3 == 0 {
                    let (c, b, cnt) = model.blocks.remove(i % model.blocks.len());
                    m.free_block(c, Vector(b), cnt).unwrap();
                    for j in 0..cnt {
                        model.handed.remove(&(c, b + j as u8));
                    }
                } else if !singles.is_empty() {
                    let (c, v) = singles[i % singles.len()];
                    m.free(c, Vector(v)).unwrap();
                    model.handed.remove(&(c, v));
                }
            }
            Op::ReserveManaged(bits) => {
                let mask = mask_of(bits, n);
                if m.reserve_managed(&mask).is_ok() {
                    model.managed_masks.push(mask);
                }
            }
            Op::AllocManaged(i) => {
                if !model.managed_masks.is_empty() {
                    let idx = i % model.managed_masks.len();
                    let mask = model.managed_masks[idx];
                    if let Ok((cpu, v)) = m.alloc_managed(&mask) {
                        prop_assert!(mask.contains(cpu));
                        model.take(cpu, v, true)?;
                        model.managed_alloc.insert((cpu, v.0), idx);
                    }
                }
            }
            Op::FreeManaged(i) => {
                // Free one managed allocation (vector returns to its reservation).
                if let Some((&(c, v), _)) = model
                    .managed_alloc
                    .iter()
                    .nth(i % (model.managed_alloc.len().max(1)))
                {
                    let before = m.cpu_stats(c).unwrap();
                    m.free(c, Vector(v)).unwrap();
                    let after = m.cpu_stats(c).unwrap();
                    prop_assert_eq!(before.managed, after.managed);
                    prop_assert_eq!(before.available, after.available);
                    model.managed_alloc.remove(&(c, v));
                    model.handed.remove(&(c, v));
                }
            }
            Op::AllocBlock(bits, cnt) => {
                let mask = mask_of(bits, n);
                if let Ok((cpu, base)) = m.alloc_block(&mask, cnt) {
                    prop_assert_eq!(base.0 as u32 % cnt, 0, "block not aligned");
                    for j in 0..cnt {
                        model.take(cpu, Vector(base.0 + j as u8), false)?;
                    }
                    model.blocks.push((cpu, base.0, cnt));
                }
            }
            Op::Offline(c) => {
                let c = c as u32 % n as u32;
                if m.can_offline(c).is_ok() {
                    m.offline(c).unwrap();
                    // can_offline promised room for everything plus the reservations.
                    prop_assert!(m.global_available() >= m.global_reserved());
                }
            }
            Op::Online(c) => {
                m.online(c as u32 % n as u32).unwrap();
            }
        }
        if let Err(e) = m.check_invariants() {
            prop_assert!(false, "invariant broken: {}", e);
        }
        prop_assert_eq!(m.total_allocated() as usize, model.handed.len());
        prop_assert_eq!(m.global_reserved(), model.reserved);
        for &(c, v) in model.handed.keys() {
            prop_assert!(m.is_allocated(c, Vector(v)));
        }
        // Unmanaged reservations never overlap: every managed vector is distinct from handed unmanaged.
        let managed_total: u32 = (0..n as u32).map(|c| m.cpu_stats(c).unwrap().managed).sum();
        let managed_expected: u32 = model.managed_masks.iter().map(|mk| mk.weight()).sum();
        prop_assert_eq!(managed_total, managed_expected);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn matrix_random_ops_1cpu(ops in proptest::collection::vec(op(), 1..160)) {
        run(1, ops)?;
    }

    #[test]
    fn matrix_random_ops_4cpu(ops in proptest::collection::vec(op(), 1..160)) {
        run(4, ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Unmanaged allocation picks the online CPU with the most available vectors.
    #[test]
    fn alloc_picks_emptiest_cpu(pre in proptest::collection::vec((0u32..4, 1u32..40), 0..6), bits in 1u8..16) {
        let mut m = VectorMatrix::new(4).unwrap();
        for c in 0..4 { m.online(c).unwrap(); }
        for (c, k) in pre { for _ in 0..k { let _ = m.alloc(&CpuMask::single(c), false); } }
        let mask = mask_of(bits, 4);
        let best = mask.iter().map(|c| m.cpu_stats(c).unwrap().available).max().unwrap();
        let (cpu, v) = m.alloc(&mask, false).unwrap();
        let before = m.cpu_stats(cpu).unwrap().available + 1;
        prop_assert_eq!(before, best);
        // ... and the lowest free vector on it.
        for lower in 0x20..v.0 {
            prop_assert!(is_system(Vector(lower)) || m.is_allocated(cpu, Vector(lower)));
        }
    }
}
