//! The lspci-style views against text in the form real `lspci` (pciutils 3.9.0) prints
//! for the same register values: `-vv` capabilities of QEMU's e1000e, edu and
//! pcie-root-port, the identity and header lines, `-t` trees and `-x` dumps.
//!
//! The expected text below is written as lspci prints it, including lines Sluice does
//! not decode (the AER registers); the checks say which lines must match exactly and
//! that Sluice prints nothing lspci would not.

mod common;

use common::fake::bridges::*;
use common::fake::{BarModel, FakeConfig, FakeFunction, addr};
use sluice_pci::names::{self, VendorDevice};
use sluice_pci::pci_ids::{DEVICES, PROG_IFS, SUBSYSTEMS, VENDORS};
use sluice_pci::{
    Capabilities, ConfigAccess, ConfigImage, ConfigSize, SegmentRange, Tree, Verbose, enumerate,
    size_bars,
};

/// A 4 KiB configuration space to fill by hand.
struct Space(Vec<u8>);

impl Space {
    fn new(vendor: u16, device: u16, class: u32, revision: u8) -> Space {
        let mut s = Space(vec![0; 4096]);
        s.w16(0, vendor);
        s.w16(2, device);
        s.w32(8, class << 8 | u32::from(revision));
        s
    }
    fn w8(&mut self, at: usize, v: u8) {
        self.0[at] = v;
    }
    fn w16(&mut self, at: usize, v: u16) {
        self.0[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn w32(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    /// A standard capability header.
    fn cap(&mut self, at: usize, id: u8, next: u8) {
        self.w8(at, id);
        self.w8(at + 1, next);
    }
    fn image(self) -> ConfigImage {
        ConfigImage::from_bytes(self.0)
    }
}

/// QEMU's e1000e (82574L) as a Linux guest leaves it: MSI-X enabled with 5 vectors,
/// MSI off, capabilities chained c8 → d0 → e0 → a0, AER and a serial number above 0x100.
fn e1000e() -> ConfigImage {
    let mut s = Space::new(0x8086, 0x10d3, 0x020000, 0);
    s.w16(4, 0x0407); // I/O, memory, bus master, INTx disabled
    s.w16(6, 0x0010); // capability list
    s.w8(0x0c, 0x10); // cache line 64 bytes
    s.w16(0x2c, 0x8086);
    s.w16(0x2e, 0x0000);
    s.w8(0x34, 0xc8);
    s.cap(0xc8, 0x01, 0xd0);
    s.w16(0xca, 0x4822); // PM v2, DSI, PME from D0 and D3hot
    s.w16(0xcc, 0x2000); // D0, DScale 1
    s.cap(0xd0, 0x05, 0xe0);
    s.w16(0xd2, 0x0080); // MSI: 64-bit, 1 vector, off
    s.cap(0xe0, 0x10, 0xa0);
    s.w16(0xe2, 0x0001); // Express v1, endpoint
    s.w32(0xe4, 0x0000_8cc0); // L0s <512ns, L1 <64us, RBE
    s.w16(0xe8, 0x2810); // relaxed ordering, no snoop, MaxReadReq 512
    s.w32(0xec, 0x0000_0c11); // port 0, 2.5GT/s, x1, ASPM L0s L1
    s.w16(0xf2, 0x0011); // 2.5GT/s x1
    s.cap(0xa0, 0x11, 0x00);
    s.w16(0xa2, 0x8004); // MSI-X on, 5 entries
    s.w32(0xa4, 0x0000_0003);
    s.w32(0xa8, 0x0000_2003);
    s.w32(0x100, 0x1402_0001); // AER v2, next 0x140
    s.w32(0x140, 0x0001_0003); // DSN v1, last
    s.w32(0x144, 0xff12_3456);
    s.w32(0x148, 0x5254_00ff);
    s.image()
}

/// `lspci -vv` of the e1000e above: its capability lines, as pciutils 3.9.0 prints
/// them (the AER registers included).
const E1000E_LSPCI_CAPS: &str = "\
\tCapabilities: [c8] Power Management version 2
\t\tFlags: PMEClk- DSI+ D1- D2- AuxCurrent=0mA PME(D0+,D1-,D2-,D3hot+,D3cold-)
\t\tStatus: D0 NoSoftRst- PME-Enable- DSel=0 DScale=1 PME-
\tCapabilities: [d0] MSI: Enable- Count=1/1 Maskable- 64bit+
\t\tAddress: 0000000000000000  Data: 0000
\tCapabilities: [e0] Express (v1) Endpoint, MSI 00
\t\tDevCap:\tMaxPayload 128 bytes, PhantFunc 0, Latency L0s <512ns, L1 <64us
\t\t\tExtTag- AttnBtn- AttnInd- PwrInd- RBE+ FLReset- SlotPowerLimit 0W
\t\tDevCtl:\tCorrErr- NonFatalErr- FatalErr- UnsupReq-
\t\t\tRlxdOrd+ ExtTag- PhantFunc- AuxPwr- NoSnoop+
\t\t\tMaxPayload 128 bytes, MaxReadReq 512 bytes
\t\tDevSta:\tCorrErr- NonFatalErr- FatalErr- UnsupReq- AuxPwr- TransPend-
\t\tLnkCap:\tPort #0, Speed 2.5GT/s, Width x1, ASPM L0s L1, Exit Latency L0s <64ns, L1 <1us
\t\t\tClockPM- Surprise- LLActRep- BwNot- ASPMOptComp-
\t\tLnkCtl:\tASPM Disabled; RCB 64 bytes, Disabled- CommClk-
\t\t\tExtSynch- ClockPM- AutWidDis- BWInt- AutBWInt-
\t\tLnkSta:\tSpeed 2.5GT/s, Width x1
\t\t\tTrErr- Train- SlotClk- DLActive- BWMgmt- ABWMgmt-
\tCapabilities: [a0] MSI-X: Enable+ Count=5 Masked-
\t\tVector table: BAR=3 offset=00000000
\t\tPBA: BAR=3 offset=00002000
\tCapabilities: [100 v2] Advanced Error Reporting
\t\tUESta:\tDLP- SDES- TLP- FCP- CmpltTO- CmpltAbrt- UnxCmplt- RxOF- MalfTLP- ECRC- UnsupReq- ACSViol-
\t\tUEMsk:\tDLP- SDES- TLP- FCP- CmpltTO- CmpltAbrt- UnxCmplt- RxOF- MalfTLP- ECRC- UnsupReq- ACSViol-
\t\tUESvrt:\tDLP+ SDES+ TLP- FCP+ CmpltTO- CmpltAbrt- UnxCmplt- RxOF+ MalfTLP+ ECRC- UnsupReq- ACSViol-
\t\tCESta:\tRxErr- BadTLP- BadDLLP- Rollover- Timeout- AdvNonFatalErr-
\t\tCEMsk:\tRxErr- BadTLP- BadDLLP- Rollover- Timeout- AdvNonFatalErr+
\t\tAERCap:\tFirst Error Pointer: 00, ECRCGenCap- ECRCGenEn- ECRCChkCap- ECRCChkEn-
\t\t\tMultHdrRecCap- MultHdrRecEn- TLPPfxPres- HdrLogCap-
\t\tHeaderLog: 00000000 00000000 00000000 00000000
\tCapabilities: [140 v1] Device Serial Number 52-54-00-ff-ff-12-34-56
";

fn caps(image: &ConfigImage) -> String {
    Capabilities {
        image,
        pointer: 0x34,
    }
    .to_string()
}

/// Every line of `ours` is a line of `lspci`, in the same order.
fn assert_in_order_subset(ours: &str, lspci: &str) {
    let mut theirs = lspci.lines();
    for line in ours.lines() {
        assert!(
            theirs.any(|l| l == line),
            "line not in lspci's output, or out of order: {line:?}\n--- ours:\n{ours}"
        );
    }
}

#[test]
fn e1000e_capabilities_read_as_lspci_prints_them() {
    let ours = caps(&e1000e());
    assert_in_order_subset(&ours, E1000E_LSPCI_CAPS);
    // Everything but the AER registers' body (which Sluice does not decode) is there.
    let expected: String = E1000E_LSPCI_CAPS
        .lines()
        .filter(|l| !is_aer_body(l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(ours, expected);
}

fn is_aer_body(line: &str) -> bool {
    [
        "UESta",
        "UEMsk",
        "UESvrt",
        "CESta",
        "CEMsk",
        "AERCap",
        "MultHdr",
        "HeaderLog",
    ]
    .iter()
    .any(|k| line.trim_start().starts_with(k))
}

/// The MSI and MSI-X lines Linux's lspci shows for edu and e1000e once their drivers
/// enabled them, for the facts the QEMU scenario compares (enable, count, masking,
/// 64-bit; table and PBA place).
#[test]
fn msi_and_msix_lines_carry_the_same_facts_as_lspci() {
    // edu: MSI at 0x40, 64-bit, one vector, enabled with a compatibility message.
    let mut s = Space::new(0x1234, 0x11e8, 0x00ff00, 0x10);
    s.w16(6, 0x0010);
    s.w8(0x34, 0x40);
    s.cap(0x40, 0x05, 0);
    s.w16(0x42, 0x0081);
    s.w32(0x44, 0xfee0_0000);
    s.w32(0x48, 0);
    s.w16(0x4c, 0x4021);
    assert_eq!(
        caps(&s.image()),
        "\tCapabilities: [40] MSI: Enable+ Count=1/1 Maskable- 64bit+\n\
         \t\tAddress: 00000000fee00000  Data: 4021\n"
    );
    // A 32-bit maskable MSI with 4 of 8 vectors enabled: the mask and pending bits.
    let mut s = Space::new(0x8086, 0x2922, 0x010601, 2);
    s.w16(6, 0x0010);
    s.w8(0x34, 0x80);
    s.cap(0x80, 0x05, 0);
    s.w16(0x82, 0x0100 | 2 << 4 | 3 << 1 | 1);
    s.w32(0x84, 0xfee0_1000);
    s.w16(0x88, 0x0031);
    s.w32(0x8c, 0x0000_000e);
    s.w32(0x90, 0x0000_0001);
    assert_eq!(
        caps(&s.image()),
        "\tCapabilities: [80] MSI: Enable+ Count=4/8 Maskable+ 64bit-\n\
         \t\tAddress: fee01000  Data: 0031\n\
         \t\tMasking: 0000000e  Pending: 00000001\n"
    );
    // MSI-X with the function mask set and a table at an offset in BAR 1.
    let mut s = Space::new(0x1af4, 0x1041, 0x020000, 1);
    s.w16(6, 0x0010);
    s.w8(0x34, 0x98);
    s.cap(0x98, 0x11, 0);
    s.w16(0x9a, 0xc000 | 2);
    s.w32(0x9c, 0x0000_1001);
    s.w32(0xa0, 0x0000_1804);
    assert_eq!(
        caps(&s.image()),
        "\tCapabilities: [98] MSI-X: Enable+ Count=3 Masked+\n\
         \t\tVector table: BAR=1 offset=00001000\n\
         \t\tPBA: BAR=4 offset=00001800\n"
    );
}

/// QEMU's pcie-root-port after Linux configured its hot-plug slot.
const ROOT_PORT_LSPCI: &str = "\
\tCapabilities: [54] Express (v2) Root Port (Slot+), MSI 00
\t\tDevCap:\tMaxPayload 128 bytes, PhantFunc 0
\t\t\tExtTag- RBE+
\t\tDevCtl:\tCorrErr+ NonFatalErr+ FatalErr+ UnsupReq+
\t\t\tRlxdOrd- ExtTag- PhantFunc- AuxPwr- NoSnoop-
\t\t\tMaxPayload 128 bytes, MaxReadReq 128 bytes
\t\tDevSta:\tCorrErr- NonFatalErr- FatalErr- UnsupReq- AuxPwr- TransPend-
\t\tLnkCap:\tPort #0, Speed 2.5GT/s, Width x1, ASPM L0s, Exit Latency L0s <64ns
\t\t\tClockPM- Surprise- LLActRep+ BwNot- ASPMOptComp-
\t\tLnkCtl:\tASPM Disabled; RCB 64 bytes, Disabled- CommClk-
\t\t\tExtSynch- ClockPM- AutWidDis- BWInt- AutBWInt-
\t\tLnkSta:\tSpeed 2.5GT/s, Width x1
\t\t\tTrErr- Train- SlotClk- DLActive+ BWMgmt- ABWMgmt-
\t\tSltCap:\tAttnBtn+ PwrCtrl+ MRL- AttnInd+ PwrInd+ HotPlug+ Surprise+
\t\t\tSlot #0, PowerLimit 0W; Interlock+ NoCompl-
\t\tSltCtl:\tEnable: AttnBtn+ PwrFlt- MRL- PresDet+ CmdCplt+ HPIrq+ LinkChg+
\t\t\tControl: AttnInd Off, PwrInd On, Power- Interlock-
\t\tSltSta:\tStatus: AttnBtn- PowerFlt- MRL- CmdCplt- PresDet+ Interlock-
\t\t\tChanged: MRL- PresDet- LinkState-
\t\tRootCap: CRSVisible-
\t\tRootCtl: ErrCorrectable- ErrNon-Fatal- ErrFatal- PMEIntEna+ CRSVisible-
\t\tRootSta: PME ReqID 0000, PMEStatus- PMEPending-
\t\tDevCap2: Completion Timeout: Not Supported, TimeoutDis- NROPrPrP- LTR-
";

#[test]
fn root_port_slot_and_root_registers_read_as_lspci_prints_them() {
    let mut s = Space::new(0x1b36, 0x000c, 0x060400, 0);
    s.w8(0x0e, 1);
    s.w16(6, 0x0010);
    s.w8(0x34, 0x54);
    s.cap(0x54, 0x10, 0);
    s.w16(0x56, 0x0142); // v2, root port, slot implemented
    s.w32(0x58, 0x0000_8000); // RBE
    s.w16(0x5c, 0x000f); // error reporting enabled
    s.w32(0x60, 0x0010_0411); // LLActRep, ASPM L0s, x1, 2.5GT/s
    s.w16(0x66, 0x2011); // DLActive, x1, 2.5GT/s
    s.w32(0x68, 0x0002_007b); // AttnBtn PwrCtrl AttnInd PwrInd Surprise HotPlug Interlock
    s.w16(0x6c, 0x11f9); // AttnBtn PresDet CmdCplt HPIrq LinkChg, AttnInd Off, PwrInd On
    s.w16(0x6e, 0x0040); // presence detected
    s.w16(0x70, 0x0008); // PME interrupt enabled
    let ours = caps(&s.image());
    assert_in_order_subset(&ours, ROOT_PORT_LSPCI);
    // Everything up to the version 2 registers, which Sluice leaves out.
    let expected: String = ROOT_PORT_LSPCI
        .lines()
        .take_while(|l| !l.contains("DevCap2"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(ours, expected);
}

#[test]
fn power_limits_and_broken_chains_as_lspci_words_them() {
    // SlotPowerLimit with a scale: 25 × 0.1 W.
    let mut s = Space::new(0x8086, 0x1234, 0x020000, 0);
    s.w16(6, 0x0010);
    s.w8(0x34, 0x40);
    s.cap(0x40, 0x10, 0x60);
    s.w16(0x42, 0x0002);
    s.w32(0x44, 25 << 18 | 1 << 26);
    // A loop back to 0x40.
    s.cap(0x60, 0x09, 0x40);
    s.w8(0x62, 0x14);
    let text = caps(&s.image());
    assert!(text.contains("SlotPowerLimit 2.5W\n"), "{text}");
    assert!(text.contains("\tCapabilities: [60] Vendor Specific Information: Len=14 <?>\n"));
    assert!(
        text.ends_with("\tCapabilities: [40] <chain looped>\n"),
        "{text}"
    );
    // An all-ones id ends the walk.
    let mut s = Space::new(0x8086, 0x1234, 0x020000, 0);
    s.w16(6, 0x0010);
    s.w8(0x34, 0x40);
    s.cap(0x40, 0xff, 0);
    assert_eq!(caps(&s.image()), "\tCapabilities: [40] <chain broken>\n");
    // No capability list in Status: nothing, whatever the pointer says.
    let mut s = Space::new(0x8086, 0x1234, 0x020000, 0);
    s.w8(0x34, 0x40);
    s.cap(0x40, 0x05, 0);
    assert_eq!(caps(&s.image()), "");
}

#[test]
fn a_256_byte_snapshot_shows_no_extended_capabilities() {
    let full = e1000e();
    let legacy = ConfigImage::from_bytes(full.bytes()[..256].to_vec());
    let text = caps(&legacy);
    assert!(text.contains("MSI-X: Enable+ Count=5 Masked-"));
    assert!(!text.contains("[100"), "{text}");
}

#[test]
fn verbose_block_of_edu_and_ahci() {
    let mut fake = FakeConfig::ecam().with(
        "00:03.0",
        FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0x10)
            .with_command(0x0006)
            .with_bar(
                0,
                BarModel::Memory32 {
                    address: 0xfea0_0000,
                    size: 1 << 20,
                    prefetchable: false,
                },
            )
            .with_msi(0, true, false),
    );
    fake.function_mut("00:03.0").set32(0x2c, 0x1100_1af4);
    let a = addr("00:03.0");
    let bars = size_bars(&mut fake, a, sluice_pci::HeaderType(0)).unwrap();
    let image = ConfigImage::read(&mut fake, a, 4096);
    let text = Verbose {
        address: a,
        image: &image,
        bars: Some(&bars),
    }
    .to_string();
    assert_eq!(
        text,
        "0000:00:03.0 Unclassified device [00ff]: Device [1234:11e8] (rev 10)\n\
         \tSubsystem: Red Hat, Inc. Device [1af4:1100]\n\
         \tControl: I/O- Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx-\n\
         \tStatus: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-\n\
         \tLatency: 0\n\
         \tRegion 0: Memory at fea00000 (32-bit, non-prefetchable) [size=1M]\n\
         \tCapabilities: [40] MSI: Enable- Count=1/1 Maskable- 64bit+\n\
         \t\tAddress: 0000000000000000  Data: 0000\n"
    );
    // ICH9's AHCI: names from the database, the prog-if named, an I/O BAR decoding off.
    let mut fake = FakeConfig::ecam().with(
        "00:1f.2",
        FakeFunction::endpoint(0x8086, 0x2922, 0x010601, 0x02)
            .with_command(0x0002)
            .with_bar(
                4,
                BarModel::Io {
                    address: 0xc060,
                    size: 32,
                },
            ),
    );
    fake.function_mut("00:1f.2").set32(0x2c, 0x1100_1af4);
    let a = addr("00:1f.2");
    let bars = size_bars(&mut fake, a, sluice_pci::HeaderType(0)).unwrap();
    let image = ConfigImage::read(&mut fake, a, 256);
    let text = Verbose {
        address: a,
        image: &image,
        bars: Some(&bars),
    }
    .to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "0000:00:1f.2 SATA controller [0106]: Intel Corporation 82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode] [8086:2922] (rev 02) (prog-if 01 [AHCI 1.0])"
    );
    assert_eq!(
        lines[1],
        "\tSubsystem: Red Hat, Inc. QEMU Virtual Machine [1af4:1100]"
    );
    assert!(
        lines.contains(&"\tRegion 4: I/O ports at c060 [disabled] [size=32]"),
        "{text}"
    );
}

#[test]
fn names_follow_lspcis_fallbacks() {
    assert_eq!(
        VendorDevice::function(0x8086, 0x10d3).to_string(),
        "Intel Corporation 82574L Gigabit Network Connection [8086:10d3]"
    );
    // Vendor known, device not in the subset: lspci's "Device".
    assert_eq!(
        VendorDevice::function(0x8086, 0xffee).to_string(),
        "Intel Corporation Device [8086:ffee]"
    );
    // pci.ids has no vendor 1234 (QEMU's edu and VGA).
    assert_eq!(
        VendorDevice::function(0x1234, 0x11e8).to_string(),
        "Device [1234:11e8]"
    );
    assert_eq!(names::vendor(0x1b36), Some("Red Hat, Inc."));
    assert_eq!(names::device(0x1b36, 0x000c), Some("QEMU PCIe Root port"));
    assert_eq!(names::prog_if(0x01, 0x06, 0x01), Some("AHCI 1.0"));
    assert_eq!(names::prog_if(0x01, 0x06, 0x7f), None);
    // A subsystem equal to the device names it after the device.
    assert_eq!(
        names::subsystem(0x8086, 0x10d3, 0x8086, 0x10d3),
        Some("82574L Gigabit Network Connection")
    );
}

#[test]
fn generated_tables_are_sorted_for_binary_search() {
    assert!(VENDORS.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(
        DEVICES
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
    );
    assert!(
        SUBSYSTEMS
            .windows(2)
            .all(|w| (w[0].0, w[0].1, w[0].2, w[0].3) < (w[1].0, w[1].1, w[1].2, w[1].3))
    );
    assert!(
        PROG_IFS
            .windows(2)
            .all(|w| (w[0].0, w[0].1, w[0].2) < (w[1].0, w[1].1, w[1].2))
    );
    // Every vendor: more than the few of `vendor_name`.
    assert!(VENDORS.len() > 2000);
}

#[test]
fn hex_dump_is_lspci_x() {
    let image = e1000e();
    let x = image.hex_dump(64).to_string();
    assert_eq!(x.lines().count(), 4);
    assert_eq!(
        x.lines().next().unwrap(),
        "00: 86 80 d3 10 07 04 10 00 00 00 00 02 10 00 00 00"
    );
    assert_eq!(
        x.lines().nth(2).unwrap(),
        "20: 00 00 00 00 00 00 00 00 00 00 00 00 86 80 00 00"
    );
    assert_eq!(image.hex_dump(256).to_string().lines().count(), 16);
    let xxxx = image.hex_dump(4096).to_string();
    assert_eq!(xxxx.lines().count(), 256);
    assert_eq!(
        xxxx.lines().nth(0x14).unwrap(),
        "140: 03 00 01 00 56 34 12 ff ff 00 54 52 00 00 00 00"
    );
    assert_eq!(xxxx.lines().last().unwrap().split(':').next(), Some("ff0"));
    // Through the legacy ports only 256 bytes exist: -xxxx shows those.
    let mut fake = FakeConfig::legacy().with(
        "00:02.0",
        FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0),
    );
    let a = addr("00:02.0");
    assert_eq!(fake.config_size(a), ConfigSize::Legacy);
    let image = ConfigImage::read(&mut fake, a, 4096);
    assert_eq!(image.len(), 256);
    assert_eq!(image.hex_dump(4096).to_string().lines().count(), 16);
}

#[test]
fn tree_is_lspci_t() {
    let mut fake = FakeConfig::ecam()
        .with(
            "00:00.0",
            FakeFunction::endpoint(0x8086, 0x29c0, 0x060000, 0),
        )
        .with(
            "00:03.0",
            FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0x10),
        )
        .with("00:1c.0", root_port(0, 1, 1).multi_function())
        .with("01:00.0", pcie_endpoint(0x1b36, 0x0010, 0x010802))
        .with("00:1c.1", root_port(0, 2, 3))
        .with("02:00.0", pcie_to_pci(2, 3, 3))
        .with("03:01.0", pci_endpoint(0x1b36, 0x0005, 0x00ff00))
        .with("00:1c.2", root_port(0, 4, 4))
        .with(
            "00:1f.0",
            FakeFunction::endpoint(0x8086, 0x2918, 0x060100, 2),
        );
    let t = enumerate(&mut fake, &[SegmentRange::LEGACY]);
    assert_eq!(
        Tree::of(&t).to_string(),
        "-[0000:00]-+-00.0\n\
         \x20          +-03.0\n\
         \x20          +-1c.0-[01]----00.0\n\
         \x20          +-1c.1-[02-03]----00.0-[03]----01.0\n\
         \x20          +-1c.2-[04]--\n\
         \x20          \\-1f.0\n"
    );
}

/// lspci lists root buses last-found first: bus 00 of segment 0 (its host bridge's
/// own) at the bottom, the others above it in descending order, as on multi-socket
/// servers (`[0000:80]` above `[0000:00]`).
#[test]
fn tree_with_two_root_buses_and_branches_below() {
    let mut fake = FakeConfig::ecam()
        .with(
            "00:00.0",
            FakeFunction::endpoint(0x8086, 0x29c0, 0x060000, 0),
        )
        .with("00:1c.0", root_port(0, 1, 1))
        .with(
            "01:00.0",
            pcie_endpoint(0x1b36, 0x0010, 0x010802).multi_function(),
        )
        .with("01:00.1", pcie_endpoint(0x1b36, 0x0010, 0x010802))
        .with(
            "00:1f.0",
            FakeFunction::endpoint(0x8086, 0x2918, 0x060100, 2),
        )
        .with(
            "80:00.0",
            FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0x10),
        );
    let t = enumerate(&mut fake, &[SegmentRange::LEGACY]);
    assert_eq!(
        Tree::of(&t).to_string(),
        "-+-[0000:80]---00.0\n\
         \x20\\-[0000:00]-+-00.0\n\
         \x20            +-1c.0-[01]--+-00.0\n\
         \x20            |            \\-00.1\n\
         \x20            \\-1f.0\n"
    );
}
