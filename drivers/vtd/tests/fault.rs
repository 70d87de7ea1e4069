//! Fault record decoding, reason names, draining the recording registers, and the
//! rate limiter.

use sluice_sim::vtd as model;

use model::Unit;
use sluice_vtd::fault::{drain_fault_records, reason};
use sluice_vtd::{
    Capability, Fault, FaultKind, FaultRateLimiter, FaultRecording, Verdict, reason_name,
};

fn record(lo: u64, hi: u64) -> FaultRecording {
    FaultRecording { lo, hi }
}

const F: u64 = 1 << 63;

#[test]
fn interrupt_remapping_faults_as_qemu_records_them() {
    // QEMU: lo = index << 48, hi = SID | reason << 32 | F, T1 = 0 ("write").
    let f = Fault::decode(record(0x1234 << 48, 0x0018 | 0x26 << 32 | F)).unwrap();
    assert_eq!(
        f,
        Fault {
            source_id: 0x18,
            reason: reason::IR_SOURCE_ID,
            kind: FaultKind::InterruptRemapping,
            irte_index: Some(0x1234),
            address: None,
            pasid: None,
        }
    );
    assert_eq!(
        f.to_string(),
        "interrupt remapping fault 0x26 (source-id check failed) from 00:03.0, IRTE index 0x1234"
    );
    // 0x25 leaves the index undefined.
    let compat = Fault::decode(record(0xffff << 48, 0x25 << 32 | F)).unwrap();
    assert_eq!(
        (compat.kind, compat.irte_index),
        (FaultKind::InterruptRemapping, None)
    );
}

#[test]
fn dma_faults_by_type_bits() {
    let cases = [
        (0u64, FaultKind::DmaWrite),
        (1 << 62, FaultKind::DmaRead),
        (1 << 28, FaultKind::PageRequest),
        (1 << 62 | 1 << 28, FaultKind::AtomicOp),
    ];
    for (bits, kind) in cases {
        let f = Fault::decode(record(0xdead_beef, 0x0100 | 0x05 << 32 | bits | F)).unwrap();
        assert_eq!(
            (f.kind, f.address, f.irte_index),
            (kind, Some(0xdead_b000), None)
        );
    }
    let with_pasid = Fault::decode(record(
        0x1000,
        0x06 << 32 | 1 << 31 | 0x42 << 40 | 1 << 62 | F,
    ))
    .unwrap();
    assert_eq!(with_pasid.pasid, Some(0x42));
    assert_eq!(
        with_pasid.to_string(),
        "DMA read fault 0x06 (read not permitted by the page tables) from 00:00.0, address 0x1000, PASID 0x42"
    );
    assert_eq!(
        Fault::decode(record(0x1000, 0x06 << 32)),
        None,
        "F clear: no fault"
    );
}

#[test]
fn reason_names() {
    for r in (0x00..=0x0d).chain(0x20..=0x28) {
        assert!(reason_name(r).is_some(), "{:#x}", r);
    }
    for r in [0x0e, 0x1f, 0x29, 0x30, 0xff] {
        assert_eq!(reason_name(r), None, "{:#x}", r);
    }
    assert_eq!(
        reason_name(0x21),
        Some("interrupt index beyond the remapping table")
    );
    assert_eq!(reason_name(0x22), Some("IRTE not present"));
    let unknown = Fault::decode(record(0, 0x99 << 32 | F)).unwrap();
    assert_eq!(unknown.kind, FaultKind::DmaWrite);
    assert!(unknown.to_string().contains("unknown reason"));
}

#[test]
fn draining_clears_records_and_overflow_but_not_the_queue_error() {
    let mut u = Unit::qemu();
    // Four recording registers at 0x220.
    u.cap = (u.cap & !(0xff << 40)) | 3 << 40;
    u.frcd = vec![(0, 0); 4];
    u.frcd[1] = (2 << 48, 0x18 | 0x22 << 32 | F);
    u.frcd[3] = (0x5000, 0x20 | 0x05 << 32 | F);
    u.fsts = 0b1_0011; // PFO, PPF, IQE
    let cap = Capability(u.cap);
    let drained = drain_fault_records(&mut u, cap);
    assert_eq!(
        drained,
        vec![
            record(2 << 48, 0x18 | 0x22 << 32 | F),
            record(0x5000, 0x20 | 0x05 << 32 | F)
        ]
    );
    assert!(u.frcd.iter().all(|f| f.1 & F == 0));
    assert_eq!(
        u.fsts, 0b1_0000,
        "PFO cleared, PPF follows the records, IQE left to the queue"
    );
    assert!(drain_fault_records(&mut u, cap).is_empty());
}

#[test]
fn the_rate_limiter_prints_a_burst_then_counts() {
    let mut rl = FaultRateLimiter::new(1_000, 3);
    let verdicts: Vec<_> = (0..10).map(|t| rl.check(t)).collect();
    assert_eq!(&verdicts[..3], &[Verdict::Print { suppressed: 0 }; 3]);
    assert!(verdicts[3..].iter().all(|v| *v == Verdict::Suppress));
    assert_eq!(rl.pending_suppressed(), 7);
    // A new window: the next fault is printed with the count of those dropped.
    assert_eq!(rl.check(1_000), Verdict::Print { suppressed: 7 });
    assert_eq!(rl.pending_suppressed(), 0);
    assert_eq!(rl.total_suppressed(), 7);
    assert_eq!(rl.check(1_001), Verdict::Print { suppressed: 0 });
}

#[test]
fn a_storm_prints_a_bounded_number_of_lines() {
    let mut rl = FaultRateLimiter::linux_default();
    let mut printed = 0u64;
    let mut reported = 0u64;
    // One fault every microsecond for 60 simulated seconds.
    let n = 60_000_000u64;
    for i in 0..n {
        if let Verdict::Print { suppressed } = rl.check(i * 1_000) {
            printed += 1;
            reported += suppressed;
        }
    }
    assert!(printed <= 12 * 10, "{} lines", printed);
    assert_eq!(
        printed + reported + rl.pending_suppressed(),
        n,
        "every fault is accounted for"
    );
}
