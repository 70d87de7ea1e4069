//! The invalidation queue against the model: ring wrap-around, batches, wait status,
//! invalid descriptors, timeouts, and ranged interrupt entry cache invalidation.

use sluice_sim::vtd as model;

use model::{BUDGET, QiMode, Unit, queue_for, with_queue};
use proptest::prelude::*;
use sluice_vtd::descriptor::{Decoded, DescriptorProblem, IecScope, MAX_INDEX_MASK, kind};
use sluice_vtd::registers::{self as regs, QueuePointer};
use sluice_vtd::{
    Descriptor, FaultStatus, Irte, QiError, QueueMemory, Registers, WaitingFor, iec_ranges,
};

fn units() -> Vec<(&'static str, Unit)> {
    let mut lazy_qemu = Unit::qemu();
    lazy_qemu.qi_mode = QiMode::Lazy { polls: 1 };
    vec![
        ("qemu", Unit::qemu()),
        ("hardware", Unit::hardware()),
        ("lazy qemu", lazy_qemu),
    ]
}

fn is_wait(d: &Descriptor) -> bool {
    d.kind() == kind::WAIT
}

#[test]
fn a_batch_is_followed_by_a_wait_and_completes() {
    for (name, unit) in units() {
        let (mut u, mut q) = with_queue(unit, 0);
        q.invalidate_iec_global(&mut u).unwrap();
        assert_eq!(u.processed.len(), 2, "{}", name);
        assert_eq!(u.processed[0], Descriptor::iec_global());
        match u.processed[1].decode() {
            Decoded::Wait {
                interrupt,
                status_write,
                fence,
            } => {
                assert!(!interrupt && !fence);
                assert_eq!(status_write, Some((u.status_address, 1)));
            }
            other => panic!("{}: {:?}", name, other),
        }
        assert_eq!(u.read_status(), 1);
        assert_eq!(q.tail(), 2);
        assert_eq!(QueuePointer(u.iqt).slot(), 2);
        assert_eq!(u.iqh, 2);
        assert!(u.aborted.is_none());
    }
}

#[test]
fn wraps_around_the_ring_many_times() {
    for (name, unit) in units() {
        let (mut u, mut q) = with_queue(unit, 0);
        assert_eq!(q.entries(), 256);
        let mut expected = Vec::new();
        for i in 0..700u32 {
            let d = Descriptor::iec_indexed((i % 0x1000) as u16, 0).unwrap();
            q.submit(&mut u, &[d])
                .unwrap_or_else(|e| panic!("{} batch {}: {}", name, i, e));
            expected.push(d);
            assert_eq!(u.read_status(), i + 1, "{}", name);
        }
        let got: Vec<_> = u
            .processed
            .iter()
            .filter(|d| !is_wait(d))
            .copied()
            .collect();
        assert_eq!(got, expected, "{}", name);
        assert_eq!(u.processed.len(), 1400);
        // 1400 slots used on a 256-slot ring: the tail wrapped five times.
        assert_eq!(q.tail(), 1400 % 256);
        assert_eq!(u.iqh, q.tail());
    }
}

#[test]
fn a_batch_larger_than_the_ring_goes_in_rounds() {
    for (name, unit) in units() {
        let (mut u, mut q) = with_queue(unit, 0);
        let batch: Vec<_> = (0..1000u16)
            .map(|i| Descriptor::iec_indexed(i, 0).unwrap())
            .collect();
        q.submit(&mut u, &batch).unwrap();
        let got: Vec<_> = u
            .processed
            .iter()
            .filter(|d| !is_wait(d))
            .copied()
            .collect();
        assert_eq!(got, batch, "{}", name);
        // 254 descriptors + 1 wait per round: 4 rounds.
        assert_eq!(u.processed.iter().filter(|d| is_wait(d)).count(), 4);
        assert_eq!(u.read_status(), 4);
    }
}

#[test]
fn an_empty_batch_is_a_barrier() {
    let (mut u, mut q) = with_queue(Unit::hardware(), 0);
    q.submit(&mut u, &[]).unwrap();
    assert_eq!(u.processed.len(), 1);
    assert!(is_wait(&u.processed[0]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_batches_complete_in_order(
        sizes in prop::collection::vec(0usize..40, 1..60),
        polls in 1u32..5,
        qs in 0u8..2,
    ) {
        let mut unit = Unit::hardware();
        unit.qi_mode = QiMode::Lazy { polls };
        let (mut u, mut q) = with_queue(unit, qs);
        let mut expected = Vec::new();
        let mut n = 0u16;
        for (b, size) in sizes.iter().enumerate() {
            let batch: Vec<_> = (0..*size)
                .map(|_| { n = n.wrapping_add(1); Descriptor::iec_indexed(n, 0).unwrap() })
                .collect();
            q.submit(&mut u, &batch).unwrap();
            expected.extend(batch);
            prop_assert_eq!(u.read_status(), b as u32 + 1);
            prop_assert_eq!(u.iqh, q.tail());
        }
        let got: Vec<_> = u.processed.iter().filter(|d| !is_wait(d)).copied().collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(u.fsts & FaultStatus::IQE.bits(), 0);
    }
}

/// An IEC descriptor with reserved bit 63 set: well formed for this crate, invalid for
/// the unit.
const BAD: Descriptor = Descriptor::from_raw(0x4 | 1 << 63, 0);

#[test]
fn an_invalid_descriptor_is_reported_and_the_queue_recovers() {
    for (name, unit) in units() {
        let (mut u, mut q) = with_queue(unit, 0);
        q.invalidate_iec_global(&mut u).unwrap(); // slots 0, 1
        let after = Descriptor::iec_indexed(5, 0).unwrap();
        let err = q
            .submit(&mut u, &[Descriptor::iec_global(), BAD, after])
            .unwrap_err();
        assert_eq!(
            err,
            QiError::InvalidDescriptor {
                slot: 3,
                descriptor: BAD
            },
            "{}",
            name
        );
        assert_eq!(
            err.to_string(),
            "invalidation queue error: the unit rejected slot 3: IEC invalidate global \
             [0x0000000000000000_8000000000000004]"
        );
        // The bad slot ran as a global IEC invalidation; the rest of the batch and its
        // wait completed.
        let tail: Vec<_> = u.processed[2..].to_vec();
        assert_eq!(tail.len(), 4, "{}: {:?}", name, tail);
        assert_eq!(
            &tail[..3],
            &[Descriptor::iec_global(), Descriptor::iec_global(), after]
        );
        assert!(is_wait(&tail[3]));
        assert_eq!(u.fsts & FaultStatus::IQE.bits(), 0, "{}", name);
        assert_eq!(u.iqh, q.tail());
        // And the queue goes on.
        q.invalidate_iec_index(&mut u, 7).unwrap();
        assert_eq!(u.read_status(), 3);
    }
}

#[test]
fn qemu_needs_an_iqt_write_to_resume_after_iqe() {
    // The recovery writes IQT again; without that write QEMU's queue would stay stopped.
    let (mut u, mut q) = with_queue(Unit::qemu(), 0);
    let _ = q.submit(&mut u, &[BAD]);
    let writes = u.register_writes();
    let n = writes.len();
    assert_eq!(writes[n - 2], ("FSTS", u64::from(FaultStatus::IQE.bits())));
    assert_eq!(writes[n - 1], ("IQT", 2 << 4));
}

#[test]
fn a_rejected_wait_descriptor_is_reported_and_drained() {
    let mut unit = Unit::hardware();
    unit.rejected_types = vec![kind::WAIT];
    let (mut u, mut q) = with_queue(unit, 0);
    let err = q.invalidate_iec_global(&mut u).unwrap_err();
    match err {
        QiError::InvalidDescriptor {
            slot: 1,
            descriptor,
        } => assert!(is_wait(&descriptor)),
        other => panic!("{:?}", other),
    }
    assert_eq!(u.iqh, q.tail());
    assert_eq!(u.fsts & FaultStatus::IQE.bits(), 0);
}

#[test]
fn a_status_never_written_times_out() {
    let mut unit = Unit::qemu();
    unit.drop_status_writes = true;
    let (mut u, mut q) = with_queue(unit, 0);
    let err = q.invalidate_iec_global(&mut u).unwrap_err();
    match err {
        QiError::Timeout(t) => {
            assert_eq!(t.waiting_for, WaitingFor::WaitDescriptor { status_data: 1 });
            assert!(t.waited_ns > BUDGET.timeout_ns);
        }
        other => panic!("{:?}", other),
    }
    assert!(
        err.to_string()
            .contains("waiting for the invalidation wait descriptor to write status 0x1")
    );
}

#[test]
fn a_stuck_queue_times_out_then_reports_busy() {
    let mut unit = Unit::hardware();
    unit.qi_mode = QiMode::Lazy { polls: u32::MAX };
    let (mut u, mut q) = with_queue(unit, 0);
    assert!(matches!(
        q.invalidate_iec_global(&mut u),
        Err(QiError::Timeout(_))
    ));
    let before = u.log.len();
    assert_eq!(
        q.invalidate_iec_index(&mut u, 1),
        Err(QiError::Busy { head: 0, tail: 2 })
    );
    // Nothing was written to the ring while it was busy.
    assert!(
        u.log[before..]
            .iter()
            .all(|e| !matches!(e, model::Event::Descriptor(..)))
    );
}

#[test]
fn sw_and_if_together_are_refused_before_anything_is_written() {
    let (mut u, mut q) = with_queue(Unit::qemu(), 0);
    let both = Descriptor::from_raw(0x5 | 1 << 4 | 1 << 5, u.status_address);
    let before = u.log.len();
    let err = q
        .submit(&mut u, &[Descriptor::iec_global(), both])
        .unwrap_err();
    assert_eq!(
        err,
        QiError::Refused {
            descriptor: both,
            problem: DescriptorProblem::StatusWriteAndInterrupt
        }
    );
    assert_eq!(u.log.len(), before);
    assert!(u.aborted.is_none());
    let neither = Descriptor::from_raw(0x5, 0);
    assert!(matches!(
        q.submit(&mut u, &[neither]),
        Err(QiError::Refused {
            problem: DescriptorProblem::WaitWithoutAction,
            ..
        })
    ));
}

#[test]
fn the_model_really_aborts_on_sw_and_if() {
    // Why the refusal matters: hand the same descriptor to the model directly.
    let (mut u, _q) = with_queue(Unit::qemu(), 0);
    let both = Descriptor::from_raw(0x5 | 1 << 4 | 1 << 5, u.status_address);
    u.write_descriptor(0, both);
    regs::IQT.write(&u.registers(), QueuePointer::from_slot(1));
    assert!(u.aborted.is_some());
}

#[test]
fn a_stale_queue_error_is_cleared_and_reported() {
    let (mut u, mut q) = with_queue(Unit::hardware(), 0);
    u.fsts |= FaultStatus::IQE.bits();
    assert_eq!(
        q.invalidate_iec_global(&mut u),
        Err(QiError::StaleError { slot: 0 })
    );
    assert_eq!(u.fsts & FaultStatus::IQE.bits(), 0);
    q.invalidate_iec_global(&mut u).unwrap();
}

#[test]
fn a_disabled_queue_refuses() {
    let mut u = Unit::qemu();
    let mut q = queue_for(&u, 0);
    assert_eq!(q.invalidate_iec_global(&mut u), Err(QiError::Disabled));
}

#[test]
fn the_queue_disables_after_use_even_on_qemu() {
    let (mut u, mut q) = with_queue(Unit::qemu(), 0);
    q.invalidate_iec_range(&mut u, 3, 9).unwrap();
    q.disable(&mut u).unwrap();
    assert!(!u.qi_enabled);
    assert_eq!(u.iqh, 0);
    assert!(!q.is_enabled());
}

#[test]
fn every_range_is_covered_exactly_by_aligned_blocks() {
    for max_mask in [0u8, 3, MAX_INDEX_MASK] {
        for first in 0..=300u32 {
            for count in 1..=300u32 {
                let mut next = first;
                let mut blocks = 0;
                for (index, mask) in iec_ranges(first, count, max_mask).unwrap() {
                    let index = u32::from(index);
                    assert!(mask <= max_mask);
                    assert_eq!(index, next, "gap or overlap at {} + {}", first, count);
                    assert_eq!(index % (1 << mask), 0, "unaligned block");
                    next += 1 << mask;
                    blocks += 1;
                }
                assert_eq!(next, first + count, "{} + {} not covered", first, count);
                if max_mask == MAX_INDEX_MASK {
                    assert!(
                        blocks <= 2 * 9,
                        "{} blocks for {} + {}",
                        blocks,
                        first,
                        count
                    );
                }
            }
        }
    }
    assert_eq!(
        iec_ranges(0, 65536, 15).unwrap().collect::<Vec<_>>(),
        vec![(0, 15), (0x8000, 15)]
    );
    assert_eq!(iec_ranges(5, 0, 15).unwrap().count(), 0);
    assert!(iec_ranges(0xffff, 2, 15).is_err());
}

#[test]
fn ranged_invalidation_flushes_exactly_the_range() {
    let (mut u, mut q) = with_queue(Unit::hardware(), 0);
    for i in 0..64u16 {
        u.iec.insert(i, Irte::from_halves(1, 0));
    }
    q.invalidate_iec_range(&mut u, 5, 20).unwrap();
    let blocks: Vec<_> = u
        .processed
        .iter()
        .filter_map(|d| match d.decode() {
            Decoded::Iec(IecScope::Indexed { index, mask }) => Some((index, mask)),
            _ => None,
        })
        .collect();
    assert_eq!(blocks, vec![(5, 0), (6, 1), (8, 3), (16, 3), (24, 0)]);
    let left: Vec<u16> = u.iec.keys().copied().collect();
    let expected: Vec<u16> = (0..5).chain(25..64).collect();
    assert_eq!(left, expected);
}

#[test]
fn descriptor_encodings() {
    assert_eq!(Descriptor::iec_global(), Descriptor::from_raw(0x4, 0));
    let d = Descriptor::iec_indexed(0x1230, 4).unwrap();
    assert_eq!(
        d,
        Descriptor::from_raw(0x4 | 1 << 4 | 4 << 27 | 0x1230 << 32, 0)
    );
    assert_eq!(
        d.decode(),
        Decoded::Iec(IecScope::Indexed {
            index: 0x1230,
            mask: 4
        })
    );
    assert!(Descriptor::iec_indexed(0x1231, 4).is_err());
    assert!(Descriptor::iec_indexed(0, 16).is_err());
    let w = Descriptor::wait_status(0x2000_0040, 0xabcd).unwrap();
    assert_eq!(
        w,
        Descriptor::from_raw(0x5 | 1 << 5 | 0xabcd << 32, 0x2000_0040)
    );
    assert!(Descriptor::wait_status(0x2000_0042, 1).is_err());
    assert_eq!(Descriptor::wait_interrupt(), Descriptor::from_raw(0x15, 0));
    assert_eq!(
        Descriptor::context_cache_global(),
        Descriptor::from_raw(0x11, 0)
    );
    assert_eq!(
        Descriptor::iotlb_global(true, true),
        Descriptor::from_raw(0xd2, 0)
    );
    for d in [
        Descriptor::iec_global(),
        d,
        w,
        Descriptor::wait_interrupt(),
        Descriptor::context_cache_global(),
        Descriptor::iotlb_global(false, true),
    ] {
        assert_eq!(d.problem(), None, "{}", d);
    }
    assert_eq!(
        w.to_string(),
        "wait IF 0 FN 0 SW status 0xabcd -> 0x20000040 [0x0000000020000040_0000abcd00000025]"
    );
    assert_eq!(
        Descriptor::from_raw(0x7, 0).decode(),
        Decoded::Other { kind: 7 }
    );
    assert_eq!(Descriptor::from_raw(0x3 | 1 << 9, 0).kind(), 0x13);
}

#[test]
fn the_qemu_model_accepts_every_descriptor_the_crate_builds() {
    let (mut u, mut q) = with_queue(Unit::qemu(), 0);
    let batch = [
        Descriptor::context_cache_global(),
        Descriptor::iotlb_global(true, true),
        Descriptor::iec_global(),
        Descriptor::iec_indexed(0x40, 6).unwrap(),
        Descriptor::wait_interrupt(),
    ];
    q.submit(&mut u, &batch).unwrap();
    assert_eq!(u.processed.len(), 6);
    assert_eq!(u.ics & 1, 1);
}

#[test]
fn enabling_over_a_running_queue_is_refused() {
    let (mut u, mut q) = with_queue(Unit::qemu(), 0);
    q.invalidate_iec_global(&mut u).unwrap();
    let mut second = queue_for(&u, 0);
    let before = u.log.len();
    assert_eq!(second.enable(&mut u), Err(QiError::AlreadyEnabled));
    assert_eq!(
        u.log.len(),
        before,
        "IQT was not reset under the running queue"
    );
}

/// The unit's IQH is 15 bits wide (slot 32767); the ring has 256 slots. A queue error
/// with IQH beyond the ring must not send the recovery's store outside the ring.
#[test]
fn a_queue_error_with_iqh_beyond_the_ring_stores_nothing_outside_it() {
    for (name, unit) in units() {
        // Once the unit reports a queue error, its IQH reads as the register's maximum.
        let mut error_seen = false;
        let unit = unit.hostile(move |off, v| {
            error_seen |= off == regs::FSTS.offset() && v & u64::from(FaultStatus::IQE.bits()) != 0;
            if off == regs::IQH.offset() && error_seen {
                0x7fff << 4
            } else {
                v
            }
        });
        let (mut u, mut q) = with_queue(unit, 0);
        let err = q.submit(&mut u, &[BAD]).unwrap_err();
        let slots: Vec<usize> = u
            .log
            .iter()
            .filter_map(|e| match e {
                model::Event::Descriptor(slot, _) => Some(*slot),
                _ => None,
            })
            .collect();
        let outside: Vec<usize> = slots.into_iter().filter(|&s| s >= q.entries()).collect();
        assert!(
            outside.is_empty(),
            "{}: {} descriptor store(s) outside the {}-slot ring, first at slot {}",
            name,
            outside.len(),
            q.entries(),
            outside[0]
        );
        assert_eq!(
            err,
            QiError::HeadOutOfRange {
                head: 0x7fff,
                entries: 256
            },
            "{}",
            name
        );
        // The queue stays refused (IQE is left for someone who can read IQH), and says why.
        let again = q.invalidate_iec_global(&mut u).unwrap_err();
        assert!(matches!(again, QiError::HeadOutOfRange { .. }), "{name}");
        assert!(
            again
                .to_string()
                .contains("IQH names slot 32767 of a 256-slot queue"),
            "{again}"
        );
    }
}
