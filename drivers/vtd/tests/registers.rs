//! Typed register views, their text, and the GCMD read-modify-write rule.

use sluice_sim::vtd as model;

use model::unit::{QEMU_CAP, QEMU_ECAP};
use sluice_vtd::registers::queue::{LayoutError, QueuePointer};
use sluice_vtd::registers::{self as regs, InvalidationCompletionStatus};
use sluice_vtd::{
    Capability, Command, EventControl, ExtendedCapability, FaultRecording, FaultStatus,
    GlobalCommand, GlobalStatus, Iqa, Irta, Version, gcmd_value,
};

#[test]
fn offsets_are_the_specs() {
    let expected = [
        (regs::VER.offset(), 0x0),
        (regs::CAP.offset(), 0x8),
        (regs::ECAP.offset(), 0x10),
        (regs::GCMD.offset(), 0x18),
        (regs::GSTS.offset(), 0x1c),
        (regs::RTADDR.offset(), 0x20),
        (regs::CCMD.offset(), 0x28),
        (regs::FSTS.offset(), 0x34),
        (regs::FECTL.offset(), 0x38),
        (regs::FEDATA.offset(), 0x3c),
        (regs::FEADDR.offset(), 0x40),
        (regs::FEUADDR.offset(), 0x44),
        (regs::IQH.offset(), 0x80),
        (regs::IQT.offset(), 0x88),
        (regs::IQA.offset(), 0x90),
        (regs::ICS.offset(), 0x9c),
        (regs::IECTL.offset(), 0xa0),
        (regs::IEDATA.offset(), 0xa4),
        (regs::IEADDR.offset(), 0xa8),
        (regs::IEUADDR.offset(), 0xac),
        (regs::IRTA.offset(), 0xb8),
    ];
    for (got, want) in expected {
        assert_eq!(got, want, "{}", regs::name(got));
    }
}

#[test]
fn version() {
    let v = Version(0x10);
    assert_eq!((v.major(), v.minor()), (1, 0));
    assert_eq!(v.to_string(), "VER 0x10: 1.0");
    assert_eq!(Version(0x43).to_string(), "VER 0x43: 4.3");
}

#[test]
fn qemu_capability_decodes() {
    let cap = Capability(QEMU_CAP);
    assert_eq!(cap.fault_recording_offset(), 0x220);
    assert_eq!(cap.fault_recording_count(), 1);
    assert_eq!(cap.fault_record_offset(0), Some(0x220));
    assert_eq!(cap.fault_record_offset(1), None);
    assert_eq!(cap.mgaw(), 48);
    assert_eq!(cap.sagaw_widths().collect::<Vec<_>>(), vec![39, 48]);
    assert_eq!(cap.nd(), 6);
    assert_eq!(cap.domains(), 65536);
    assert_eq!(cap.mamv(), 18);
    assert_eq!(cap.sllps(), 0b11);
    assert!(cap.psi() && cap.drd() && cap.dwd());
    assert!(!cap.caching_mode() && !cap.rwbf() && !cap.pi() && !cap.esirtps());
    assert_eq!(
        cap.to_string(),
        "CAP 0x00d2008c222f0606: NFR 1 at 0x220, MGAW 48, SAGAW 39/48-bit, ND 6 (65536 domains), \
         MAMV 18, SLLPS 0x3, flags PSI DWD DRD"
    );
}

#[test]
fn real_capability_decodes() {
    // A Sandy Bridge-era client unit: 0x00c0000020e60262 (NFR 1 at 0x200, MGAW 39).
    let cap = Capability(0x00c0_0000_20e6_0262);
    assert_eq!(cap.fault_recording_offset(), 0x200);
    assert_eq!(cap.fault_recording_count(), 1);
    assert_eq!(cap.mgaw(), 39);
    assert_eq!(cap.sagaw_widths().collect::<Vec<_>>(), vec![39]);
    assert!(cap.zlr() && cap.isoch() && cap.plmr() && cap.phmr() && cap.drd() && cap.dwd());
    // The brief's example value: FRO is 0x40 units (offset 0x400) and MGAW 39.
    let brief = Capability(0x00d2_008c_4066_0462);
    assert_eq!(brief.fault_recording_offset(), 0x400);
    assert_eq!(brief.fault_recording_count(), 1);
    assert_eq!(brief.mgaw(), 39);
    assert_eq!(brief.sagaw_widths().collect::<Vec<_>>(), vec![48]);
    assert_eq!(brief.nd(), 2);
    assert_eq!(brief.domains(), 256);
    assert!(
        brief
            .to_string()
            .starts_with("CAP 0x00d2008c40660462: NFR 1 at 0x400, MGAW 39, SAGAW 48-bit")
    );
}

#[test]
fn extended_capability_decodes() {
    let ecap = ExtendedCapability(QEMU_ECAP);
    assert!(ecap.qi() && ecap.ir() && ecap.eim() && ecap.pt());
    assert!(!ecap.c() && !ecap.dt() && !ecap.sc() && !ecap.smts());
    assert_eq!(ecap.iotlb_offset(), 0xf0);
    assert_eq!(ecap.mhmv(), 15);
    assert_eq!(
        ecap.to_string(),
        "ECAP 0x0000000000f00f5a: IRO 0xf0, MHMV 15, flags QI IR EIM PT"
    );
    assert_eq!(
        ExtendedCapability(0).to_string(),
        "ECAP 0x0000000000000000: IRO 0x0, MHMV 0, flags none"
    );
}

#[test]
fn gcmd_keeps_persistent_state_and_drops_one_shots() {
    let all = GlobalStatus::all();
    // Turning IRE on when everything is set: one-shot statuses are not written back.
    let v = gcmd_value(all, Command::InterruptRemapping(true));
    assert_eq!(v.bits(), 0x9680_0000);
    assert_eq!(
        v,
        GlobalCommand::TE
            | GlobalCommand::EAFL
            | GlobalCommand::QIE
            | GlobalCommand::IRE
            | GlobalCommand::CFI
    );
    // Turning CFI off keeps IRE and QIE.
    let on = GlobalStatus::QIES | GlobalStatus::IRES | GlobalStatus::CFIS | GlobalStatus::IRTPS;
    assert_eq!(
        gcmd_value(on, Command::CompatibilityFormat(false)),
        GlobalCommand::QIE | GlobalCommand::IRE
    );
    // SIRTP: persistent bits plus SIRTP, not the stale IRTPS.
    assert_eq!(
        gcmd_value(on, Command::SetInterruptRemapTablePointer),
        GlobalCommand::QIE | GlobalCommand::IRE | GlobalCommand::CFI | GlobalCommand::SIRTP
    );
    // Reserved low bits never leak into a command.
    let junk = GlobalStatus::from_bits_retain(0x007f_ffff | GlobalStatus::QIES.bits());
    assert_eq!(
        gcmd_value(junk, Command::QueuedInvalidation(false)),
        GlobalCommand::empty()
    );
}

#[test]
fn gcmd_exhaustive_over_status_bits() {
    let commands = [
        Command::TranslationEnable(true),
        Command::TranslationEnable(false),
        Command::AdvancedFaultLogging(true),
        Command::AdvancedFaultLogging(false),
        Command::QueuedInvalidation(true),
        Command::QueuedInvalidation(false),
        Command::InterruptRemapping(true),
        Command::InterruptRemapping(false),
        Command::CompatibilityFormat(true),
        Command::CompatibilityFormat(false),
        Command::SetRootTablePointer,
        Command::SetFaultLog,
        Command::WriteBufferFlush,
        Command::SetInterruptRemapTablePointer,
    ];
    for bits in 0..512u32 {
        let gsts = GlobalStatus::from_bits_retain(bits << 23);
        for c in commands {
            let v = gcmd_value(gsts, c).bits();
            let persistent = GlobalStatus::PERSISTENT.bits();
            let bit = c.command_bit().bits();
            // Every persistent bit other than the command's is copied.
            assert_eq!(
                v & persistent & !bit,
                gsts.bits() & persistent & !bit,
                "{:?}",
                c
            );
            // No one-shot other than the command's own.
            assert_eq!(v & !persistent & !bit, 0, "{:?} {:#x}", c, v);
            let (status, done) = c.completion();
            assert_eq!(status.bits(), bit);
            let sets_bit = match c {
                Command::TranslationEnable(on)
                | Command::AdvancedFaultLogging(on)
                | Command::QueuedInvalidation(on)
                | Command::InterruptRemapping(on)
                | Command::CompatibilityFormat(on) => {
                    assert_eq!(done, on);
                    on
                }
                Command::WriteBufferFlush => {
                    assert!(!done, "WBFS clears when the flush is done");
                    true
                }
                _ => {
                    assert!(done);
                    true
                }
            };
            assert_eq!(v & bit != 0, sets_bit, "{:?}", c);
        }
    }
}

#[test]
fn global_status_text() {
    let s = GlobalStatus::QIES | GlobalStatus::IRES | GlobalStatus::IRTPS;
    assert_eq!(s.to_string(), "GSTS 0x07000000: QIES IRES IRTPS");
    assert_eq!(GlobalStatus::empty().to_string(), "GSTS 0x00000000: none");
}

#[test]
fn irta_encodes_size_and_eime() {
    let irta = Irta::new(0x1234_5000, 65536, true).unwrap();
    assert_eq!(irta.0, 0x1234_5000 | 1 << 11 | 0xf);
    assert_eq!(
        (
            irta.address(),
            irta.eime(),
            irta.size_field(),
            irta.entries()
        ),
        (0x1234_5000, true, 15, 65536)
    );
    let small = Irta::new(0x1000, 2, false).unwrap();
    assert_eq!(
        (small.size_field(), small.entries(), small.eime()),
        (0, 2, false)
    );
    for s in 0..16u32 {
        let n = 1 << (s + 1);
        assert_eq!(Irta::new(0, n, false).unwrap().entries(), n);
    }
    assert_eq!(
        Irta::new(0x1800, 256, false),
        Err(LayoutError::Misaligned {
            what: "interrupt remapping table",
            address: 0x1800,
            align: 4096
        })
    );
    for bad in [0, 1, 3, 100, 131072] {
        assert_eq!(
            Irta::new(0, bad, false),
            Err(LayoutError::TableEntries(bad))
        );
    }
    assert_eq!(
        irta.to_string(),
        "IRTA 0x000000001234580f: table at 0x12345000, 65536 entries (S 15), EIME (x2APIC destinations)"
    );
}

#[test]
fn iqa_and_queue_pointers() {
    let iqa = Iqa::new(0x8_0000, 0).unwrap();
    assert_eq!(
        (iqa.address(), iqa.qs(), iqa.entries(), iqa.dw()),
        (0x8_0000, 0, 256, false)
    );
    assert_eq!(Iqa::new(0, 7).unwrap().entries(), 32768);
    assert_eq!(Iqa(Iqa::DW | 1).entries(), 256);
    assert_eq!(Iqa::new(0, 8), Err(LayoutError::QueueSize(8)));
    assert!(Iqa::new(0x10, 0).is_err());
    assert_eq!(
        iqa.to_string(),
        "IQA 0x0000000000080000: queue at 0x80000, 256 128-bit descriptors (QS 0)"
    );
    for slot in [0usize, 1, 255, 32767] {
        let p = QueuePointer::from_slot(slot);
        assert_eq!(p.0, (slot as u64) << 4);
        assert_eq!(p.slot(), slot);
    }
    assert_eq!(QueuePointer(0xffff_ffff_ffff_ffff).slot(), 0x7fff);
    assert!(InvalidationCompletionStatus(1).iwc());
    assert_eq!(InvalidationCompletionStatus(0).to_string(), "ICS 0x0: none");
}

#[test]
fn fault_status_and_event_control() {
    let f = FaultStatus::from_bits_retain(0x0312);
    assert!(f.contains(FaultStatus::PPF | FaultStatus::IQE));
    assert_eq!(f.fri(), 3);
    assert_eq!(f.to_string(), "FSTS 0x00000312: FRI 3, PPF IQE");
    assert_eq!(
        EventControl::from_bits_retain(0xc000_0000).to_string(),
        "CTL 0xc0000000: IM IP"
    );
}

#[test]
fn fault_recording_fields() {
    // QEMU's record of an IRTE-not-present fault: index 0x12 from 00:03.0.
    let r = FaultRecording {
        lo: 0x12 << 48,
        hi: 0x18 | 0x22 << 32 | 1 << 63,
    };
    assert!(r.fault());
    assert_eq!(
        (r.source_id(), r.reason(), r.fault_info()),
        (0x18, 0x22, 0x12 << 48)
    );
    assert!(!r.t1() && !r.t2() && !r.pasid_present());
    let dma = FaultRecording {
        lo: 0xdead_b123,
        hi: 0x0100 | 1 << 28 | 1 << 31 | 0x05 << 32 | 0x12345 << 40 | 2 << 60 | 1 << 62 | 1 << 63,
    };
    assert_eq!(dma.fault_info(), 0xdead_b000);
    assert!(dma.t1() && dma.t2() && dma.pasid_present());
    assert_eq!(
        (dma.pasid(), dma.address_type(), dma.reason()),
        (0x12345, 2, 5)
    );
    assert_eq!(
        r.to_string(),
        "FRCD 0x8000002200000018_0012000000000000: F 1, FR 0x22, SID 0x0018, FI 0x12000000000000, T1 0 T2 0, AT 0, PP 0 PV 0x0"
    );
}

#[test]
fn snapshot_of_an_enabled_qemu_unit() {
    use sluice_vtd::registers::Snapshot;
    let mut u = model::Unit::qemu();
    let mut q = model::queue_for(&u, 0);
    let layout = sluice_vtd::RegisterLayout::read(&mut u).unwrap();
    let config = sluice_vtd::RemappingConfig {
        table_address: 0x30_0000,
        table_entries: 65536,
        eim: true,
        budget: model::BUDGET,
        layout,
    };
    sluice_vtd::enable_remapping(&mut u, &mut q, &config).unwrap();
    u.frcd[0] = (0x11 << 48, 0x18 | 0x22 << 32 | 1 << 63);
    let text = Snapshot::read(&mut u, &layout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "VER 0x10: 1.0");
    assert!(lines[1].starts_with("CAP 0x00d2008c222f0606: NFR 1 at 0x220"));
    assert!(lines[2].starts_with("ECAP 0x0000000000f00f5a"));
    assert_eq!(lines[3], "GSTS 0x07000000: QIES IRES IRTPS");
    assert_eq!(
        lines[4],
        "IRTA 0x000000000030080f: table at 0x300000, 65536 entries (S 15), EIME (x2APIC destinations)"
    );
    assert_eq!(lines[6], "IQH 0x20 (slot 2), IQT 0x20 (slot 2)");
    assert_eq!(lines[8], "FECTL 0x80000000: IM, IECTL 0x00000000: none");
    assert!(lines[10].ends_with(
        "= interrupt remapping fault 0x22 (IRTE not present) from 00:03.0, IRTE index 0x11"
    ));
    assert_eq!(
        GlobalCommand::from_bits_retain(0x0600_0000).to_string(),
        "GCMD 0x06000000: QIE IRE"
    );
}
