//! The enable and disable sequences against the model: order of register writes,
//! firmware leftovers, units that never answer, EIME.

use sluice_sim::vtd as model;

use model::{BUDGET, BusRangeOrder, Event, QiMode, Unit, queue_for};
use sluice_vtd::descriptor::kind;
use sluice_vtd::registers as regs;
use sluice_vtd::{
    DisableStep, EnableError, FaultRecording, FaultStatus, GlobalCommand, GlobalStatus,
    InvalidationQueue, MsiMessage, QueueShutdown, RegisterLayout, RemappingConfig, Step, StepError,
    WaitingFor, disable_remapping, enable_remapping,
};

const TABLE: u64 = 0x30_0000;

/// The configuration for `unit`, whose CAP and ECAP are read (not written) here, as
/// the kernel reads them when it probes a unit.
fn config(unit: &mut Unit, eim: bool) -> RemappingConfig {
    RemappingConfig {
        table_address: TABLE,
        table_entries: 65536,
        eim,
        budget: BUDGET,
        layout: RegisterLayout::read(unit).expect("the model's layout is valid"),
    }
}

fn enable(
    unit: &mut Unit,
    eim: bool,
) -> (Result<sluice_vtd::Enabled, EnableError>, InvalidationQueue) {
    let mut q = queue_for(unit, 0);
    let config = config(unit, eim);
    let r = enable_remapping(unit, &mut q, &config);
    (r, q)
}

const QIE: u32 = GlobalCommand::QIE.bits();
const IRE: u32 = GlobalCommand::IRE.bits();
const SIRTP: u32 = GlobalCommand::SIRTP.bits();
const CFI: u32 = GlobalCommand::CFI.bits();

/// The accesses of interest, in order: register writes and the kinds of descriptors
/// written to the ring.
fn trace(u: &Unit) -> Vec<String> {
    u.log
        .iter()
        .map(|e| match *e {
            Event::Write32(o, v) => format!("{}={:#x}", regs::name(o), v),
            Event::Write64(o, v) => format!("{}={:#x}", regs::name(o), v),
            Event::Descriptor(slot, d) => format!(
                "ring[{}]={}",
                slot,
                match d.kind() {
                    kind::IEC => "iec",
                    kind::WAIT => "wait",
                    _ => "other",
                }
            ),
            other => format!("{:?}", other),
        })
        .collect()
}

#[test]
fn qemu_happy_path_in_order() {
    let mut u = Unit::qemu();
    let (r, q) = enable(&mut u, true);
    let enabled = r.unwrap();
    assert_eq!(
        trace(&u),
        vec![
            "FSTS=0x65".to_string(), // stale fault status (not IQE)
            "FSTS=0x10".into(),      // a stale queue error, separately
            "IQT=0x0".into(),
            format!("IQA={:#x}", u.ring_address),
            format!("GCMD={:#x}", QIE),
            format!("IRTA={:#x}", TABLE | 1 << 11 | 0xf),
            format!("GCMD={:#x}", QIE | SIRTP),
            "ring[0]=iec".into(),
            "ring[1]=wait".into(),
            "IQT=0x20".into(),
            format!("GCMD={:#x}", QIE | IRE),
        ]
    );
    assert_eq!(
        enabled.status,
        GlobalStatus::QIES | GlobalStatus::IRES | GlobalStatus::IRTPS
    );
    assert_eq!(enabled.firmware_status, GlobalStatus::empty());
    assert!(enabled.stale_faults.is_empty());
    assert!(q.is_enabled());
    assert_eq!((u.intr_root, u.intr_size, u.eime), (TABLE, 65536, true));
    assert!(u.aborted.is_none());
}

#[test]
fn hardware_happy_path_blocks_compatibility_format() {
    let mut u = Unit::hardware();
    assert!(u.status().contains(GlobalStatus::CFIS));
    let (r, _q) = enable(&mut u, false);
    let enabled = r.unwrap();
    let gcmd: Vec<u32> = u.gcmd_writes().iter().map(|c| c.bits()).collect();
    // CFIS was set by firmware, so every command carries CFI until the last one drops it.
    assert_eq!(
        gcmd,
        vec![QIE | CFI, QIE | SIRTP | CFI, QIE | IRE | CFI, QIE | IRE]
    );
    assert!(!enabled.status.contains(GlobalStatus::CFIS));
    assert!(
        enabled
            .status
            .contains(GlobalStatus::IRES | GlobalStatus::QIES)
    );
    let compat = MsiMessage {
        address_lo: 0xfee0_1000,
        address_hi: 0,
        data: 0x41,
    };
    assert_eq!(
        u.deliver(compat, Some(0x18), BusRangeOrder::Spec),
        Err(0x25)
    );
}

#[test]
fn eime_is_set_exactly_when_asked() {
    for eim in [false, true] {
        let mut u = Unit::qemu();
        enable(&mut u, eim).0.unwrap();
        let irta = u
            .register_writes()
            .into_iter()
            .find(|(n, _)| *n == "IRTA")
            .map(|(_, v)| v)
            .unwrap();
        assert_eq!(irta & 1 << 11 != 0, eim);
        assert_eq!(u.eime, eim);
    }
}

#[test]
fn firmware_left_remapping_and_the_queue_on() {
    for mut u in [Unit::qemu(), Unit::hardware()] {
        let cfi = u.gsts & CFI;
        u.gsts |= (GlobalStatus::IRES | GlobalStatus::QIES | GlobalStatus::IRTPS).bits();
        u.qi_enabled = true;
        u.iq_size = 256;
        u.iqh = 5;
        u.iqt = 5 << 4;
        u.last_desc_type = kind::WAIT;
        let (r, _q) = enable(&mut u, true);
        let enabled = r.unwrap();
        assert!(
            enabled
                .firmware_status
                .contains(GlobalStatus::IRES | GlobalStatus::QIES)
        );
        let gcmd: Vec<u32> = u.gcmd_writes().iter().map(|c| c.bits() & !CFI).collect();
        let mut expected = vec![QIE, 0, QIE, QIE | SIRTP, QIE | IRE];
        if cfi != 0 {
            expected.push(QIE | IRE); // the same, with CFI now dropped
        }
        assert_eq!(gcmd, expected);
        assert!(
            u.gcmd_writes()
                .iter()
                .take(3)
                .all(|c| c.bits() & CFI == cfi)
        );
        assert_eq!(enabled.firmware_queue, QueueShutdown::Drained);
        // Our queue starts from slot 0 again.
        assert_eq!(u.iqh, 2);
    }
}

#[test]
fn a_firmware_queue_qemu_will_not_disable_is_an_error_naming_the_step() {
    let mut u = Unit::qemu();
    u.gsts |= GlobalStatus::QIES.bits();
    u.qi_enabled = true;
    u.iq_size = 256;
    u.last_desc_type = kind::IEC; // QEMU refuses to clear QIE after a non-wait descriptor
    let (r, q) = enable(&mut u, true);
    let err = r.unwrap_err();
    assert_eq!(err.step, Step::DisableFirmwareQueue);
    match err.cause {
        StepError::Timeout(t) => assert_eq!(
            t.waiting_for,
            WaitingFor::Status {
                bit: GlobalStatus::QIES,
                set: false
            }
        ),
        other => panic!("{:?}", other),
    }
    // Turning it off again fails for the same reason, and says so.
    let rb = err.rollback.unwrap_err();
    assert_eq!(rb.step, DisableStep::DisableQueue);
    assert!(!q.is_enabled());
    assert!(!u.status().contains(GlobalStatus::IRES));
    assert!(err.to_string().starts_with(
        "VT-d: turn off the invalidation queue left on by firmware failed: timed out after"
    ));
}

#[test]
fn a_unit_that_never_sets_irtps_is_turned_back_off() {
    for mut u in [Unit::qemu(), Unit::hardware()] {
        u.refuse = GlobalStatus::IRTPS;
        let (r, q) = enable(&mut u, true);
        let err = r.unwrap_err();
        assert_eq!(err.step, Step::SetTablePointer);
        assert_eq!(
            err.cause,
            StepError::Timeout(match err.cause {
                StepError::Timeout(t) => {
                    assert_eq!(
                        t.waiting_for,
                        WaitingFor::Status {
                            bit: GlobalStatus::IRTPS,
                            set: true
                        }
                    );
                    t
                }
                other => panic!("{:?}", other),
            })
        );
        assert_eq!(err.rollback, Ok(()));
        assert!(
            !u.status()
                .intersects(GlobalStatus::IRES | GlobalStatus::QIES)
        );
        assert!(!q.is_enabled());
        assert!(
            u.gcmd_writes()
                .iter()
                .all(|c| !c.contains(GlobalCommand::IRE)),
            "IRE never asked for"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(
                "VT-d: set the interrupt remapping table pointer failed: timed out after"
            ),
            "{}",
            text
        );
        assert!(
            text.ends_with(
                "waiting for GSTS.IRTPS to set; remapping and queued invalidation are off"
            ),
            "{}",
            text
        );
    }
}

#[test]
fn a_unit_that_never_sets_ires_is_turned_back_off() {
    let mut u = Unit::hardware();
    u.refuse = GlobalStatus::IRES;
    let (r, q) = enable(&mut u, false);
    let err = r.unwrap_err();
    assert_eq!(err.step, Step::EnableRemapping);
    assert_eq!(err.rollback, Ok(()));
    // GCMD.IRE was written, so the rollback writes it off again.
    let last = *u.gcmd_writes().last().unwrap();
    assert!(!last.intersects(GlobalCommand::IRE | GlobalCommand::QIE));
    assert!(
        !u.status()
            .intersects(GlobalStatus::IRES | GlobalStatus::QIES)
    );
    assert!(!q.is_enabled());
}

#[test]
fn an_invalidation_that_never_completes_is_turned_back_off() {
    let mut u = Unit::hardware();
    u.drop_status_writes = true;
    let (r, _q) = enable(&mut u, true);
    let err = r.unwrap_err();
    assert_eq!(err.step, Step::InvalidateEntryCache);
    assert!(
        matches!(err.cause, StepError::Timeout(t) if t.waiting_for == WaitingFor::WaitDescriptor { status_data: 1 })
    );
    assert_eq!(err.rollback, Ok(()));
    assert!(
        !u.status()
            .intersects(GlobalStatus::IRES | GlobalStatus::QIES)
    );
}

#[test]
fn missing_capabilities_and_bad_layouts_touch_nothing() {
    let cases = [
        (0x8u64, true, "ECAP.IR (interrupt remapping)"),
        (0x2, true, "ECAP.QI (queued invalidation)"),
        (0x10, true, "ECAP.EIM (x2APIC destinations)"),
    ];
    for (clear, eim, what) in cases {
        let mut u = Unit::qemu();
        u.ecap &= !clear;
        let err = enable(&mut u, eim).0.unwrap_err();
        assert_eq!(
            (err.step, err.cause),
            (Step::CheckCapabilities, StepError::Missing(what))
        );
        assert!(u.log.is_empty());
    }
    let mut u = Unit::qemu();
    let mut q = queue_for(&u, 0);
    let bad = RemappingConfig {
        table_address: TABLE + 8,
        ..config(&mut u, true)
    };
    let err = enable_remapping(&mut u, &mut q, &bad).unwrap_err();
    assert_eq!(err.step, Step::CheckCapabilities);
    assert!(matches!(err.cause, StepError::Layout(_)));
    assert!(u.log.is_empty());
}

#[test]
fn stale_fault_records_are_drained_first() {
    let mut u = Unit::qemu();
    let stale = (0x7 << 48, 0x18 | 0x22 << 32 | 1 << 63);
    u.frcd[0] = stale;
    u.fsts = 0b11;
    let enabled = enable(&mut u, true).0.unwrap();
    assert_eq!(
        enabled.stale_faults,
        vec![FaultRecording {
            lo: stale.0,
            hi: stale.1
        }]
    );
    assert_eq!(u.frcd[0].1 >> 63, 0);
    assert_eq!(u.fsts & 0b11, 0);
}

#[test]
fn disable_after_enable_flushes_then_turns_off_in_order() {
    for unit in [Unit::qemu(), Unit::hardware()] {
        let mut u = unit;
        let (r, mut q) = enable(&mut u, true);
        r.unwrap();
        u.log.clear();
        disable_remapping(&mut u, Some(&mut q), BUDGET).unwrap();
        let t = trace(&u);
        let gcmd_at: Vec<usize> = t
            .iter()
            .enumerate()
            .filter(|(_, s)| s.starts_with("GCMD"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(t[0], "ring[2]=iec", "{:?}", t);
        assert_eq!(t[1], "ring[3]=wait");
        assert_eq!(gcmd_at.len(), 2);
        assert_eq!(t[gcmd_at[0]], format!("GCMD={:#x}", QIE));
        assert_eq!(t[gcmd_at[1]], "GCMD=0x0");
        assert!(
            !u.status()
                .intersects(GlobalStatus::IRES | GlobalStatus::QIES)
        );
        assert!(!q.is_enabled());
        // Disabling twice is harmless.
        u.log.clear();
        disable_remapping(&mut u, Some(&mut q), BUDGET).unwrap();
        assert!(u.log.is_empty());
    }
}

#[test]
fn re_enabling_after_disable_works() {
    let mut u = Unit::hardware();
    u.qi_mode = QiMode::Lazy { polls: 2 };
    let (r, mut q) = enable(&mut u, true);
    r.unwrap();
    disable_remapping(&mut u, Some(&mut q), BUDGET).unwrap();
    let config = config(&mut u, true);
    let again = enable_remapping(&mut u, &mut q, &config).unwrap();
    assert!(
        again
            .status
            .contains(GlobalStatus::IRES | GlobalStatus::QIES)
    );
    assert_eq!(q.tail(), 2);
}

#[test]
fn disable_forgets_a_queue_the_unit_already_dropped() {
    let mut u = Unit::qemu();
    let (r, mut q) = enable(&mut u, true);
    r.unwrap();
    // Something else (a reset, say) turned the unit off behind the driver's back.
    u.gsts = 0;
    u.qi_enabled = false;
    disable_remapping(&mut u, Some(&mut q), BUDGET).unwrap();
    assert!(!q.is_enabled());
}

/// Firmware's queue stopped on an invalid descriptor (FSTS.IQE) can never drain. After
/// the drain wait gives up, QIE is cleared anyway (a real unit takes it; Linux's
/// `dmar_disable_qi` does the same) and enabling goes on with our queue.
#[test]
fn a_firmware_queue_halted_on_an_error_is_turned_off_and_enabling_proceeds() {
    let mut u = Unit::hardware().with_halted_firmware_queue(3, 6);
    let (r, q) = enable(&mut u, true);
    let enabled = r.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        enabled
            .status
            .contains(GlobalStatus::IRES | GlobalStatus::QIES)
    );
    assert!(q.is_enabled());
    assert_eq!(
        enabled.firmware_queue,
        QueueShutdown::Abandoned {
            head: 3,
            tail: 6,
            halted: true
        }
    );
    assert_eq!(u.iq_base, u.ring_address, "our ring, not firmware's");
    assert_eq!(
        u.fsts & FaultStatus::IQE.bits(),
        0,
        "the stale error is cleared"
    );
    let gcmd: Vec<u32> = u.gcmd_writes().iter().map(|c| c.bits() & !CFI).collect();
    assert_eq!(gcmd, vec![0, QIE, QIE | SIRTP, QIE | IRE, QIE | IRE]);
}

/// Firmware handed over with DMA translation on (pre-boot DMA protection). It is
/// turned off before anything else, and no later GCMD write carries TE.
#[test]
fn translation_left_on_by_firmware_is_turned_off_before_remapping() {
    for mut u in [
        Unit::qemu().with_firmware_translation(),
        Unit::hardware().with_firmware_translation(),
    ] {
        let (r, _q) = enable(&mut u, true);
        let enabled = r.unwrap_or_else(|e| panic!("{e}"));
        assert!(enabled.firmware_status.contains(GlobalStatus::TES));
        let gcmd = u.gcmd_writes();
        assert!(
            !gcmd[0].intersects(
                GlobalCommand::TE | GlobalCommand::QIE | GlobalCommand::IRE | GlobalCommand::SRTP
            ),
            "first GCMD turns TE off (and fires no one-shot): {}",
            gcmd[0]
        );
        assert!(
            gcmd.iter().all(|c| !c.contains(GlobalCommand::TE)),
            "TE in {:?}",
            gcmd
        );
        assert!(!u.status().contains(GlobalStatus::TES));
        assert!(!enabled.status.contains(GlobalStatus::TES));
        assert!(enabled.status.contains(GlobalStatus::IRES));
        assert_eq!(enabled.firmware_queue, QueueShutdown::WasOff);
    }
}

/// A firmware queue that is not stopped but never gets anywhere (a unit that stopped
/// fetching) is turned off when the drain wait runs out, and enabling proceeds.
#[test]
fn a_firmware_queue_that_never_drains_is_turned_off_after_the_wait() {
    let mut u = Unit::hardware().with_halted_firmware_queue(3, 6);
    u.fsts &= !FaultStatus::IQE.bits();
    u.qi_mode = QiMode::Lazy { polls: u32::MAX };
    let (r, _q) = enable(&mut u, true);
    // Our own queue then never runs either, so enabling stops at the first invalidation.
    let err = r.unwrap_err();
    assert_eq!(err.step, Step::InvalidateEntryCache, "{err}");
    // But firmware's queue was turned off after its wait and ours was enabled.
    assert_eq!(u.iq_base, u.ring_address);
    let gcmd: Vec<u32> = u.gcmd_writes().iter().map(|c| c.bits() & !CFI).collect();
    assert_eq!(&gcmd[..3], &[0, QIE, QIE | SIRTP]);
}

/// QEMU will not clear QIE while its queue is stopped: the limit the README describes.
#[test]
fn qemu_keeps_a_halted_firmware_queue_and_enabling_says_so() {
    let mut u = Unit::qemu().with_halted_firmware_queue(3, 6);
    let err = enable(&mut u, true).0.unwrap_err();
    assert_eq!(err.step, Step::DisableFirmwareQueue);
    assert!(
        matches!(err.cause, StepError::Timeout(t) if t.waiting_for == WaitingFor::Status { bit: GlobalStatus::QIES, set: false }),
        "{err}"
    );
}
