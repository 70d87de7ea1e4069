//! VER, CAP and ECAP: what a remapping unit is and can do (VT-d §11.4.1–§11.4.3).
//! Read-only; read once at boot.

use core::fmt;

use sluice_regs::{ReadOnly, RegArray};

use super::{FaultRecording, bit, bits, write_flags};

/// VER_REG (offset 0x0): architecture version, major in bits 7:4, minor in 3:0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub u32);

impl Version {
    /// The major version, bits 7:4.
    pub fn major(self) -> u8 {
        bits(self.0 as u64, 4, 4) as u8
    }
    /// The minor version, bits 3:0.
    pub fn minor(self) -> u8 {
        bits(self.0 as u64, 0, 4) as u8
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VER {:#x}: {}.{}", self.0, self.major(), self.minor())
    }
}

/// CAP_REG (offset 0x8), VT-d §11.4.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability(pub u64);

impl Capability {
    /// ND, bits 2:0: encodes the number of domain ids.
    pub fn nd(self) -> u8 {
        bits(self.0, 0, 3) as u8
    }
    /// Number of domain ids: 2^(4 + 2·ND).
    pub fn domains(self) -> u32 {
        1 << (4 + 2 * u32::from(self.nd().min(6)))
    }
    /// AFL, bit 3: advanced fault logging.
    pub fn afl(self) -> bool {
        bit(self.0, 3)
    }
    /// RWBF, bit 4: the write buffer must be flushed explicitly.
    pub fn rwbf(self) -> bool {
        bit(self.0, 4)
    }
    /// PLMR, bit 5: protected low-memory region.
    pub fn plmr(self) -> bool {
        bit(self.0, 5)
    }
    /// PHMR, bit 6: protected high-memory region.
    pub fn phmr(self) -> bool {
        bit(self.0, 6)
    }
    /// CM, bit 7: caching mode (set by emulated units such as QEMU's with caching-mode=on).
    pub fn caching_mode(self) -> bool {
        bit(self.0, 7)
    }
    /// SAGAW, bits 12:8: supported adjusted guest address widths, as a bit set.
    pub fn sagaw(self) -> u8 {
        bits(self.0, 8, 5) as u8
    }
    /// The address widths SAGAW names: bit 1 → 39, bit 2 → 48, bit 3 → 57 (bit 0, 30-bit,
    /// is reserved since VT-d 3.0 but still shown).
    pub fn sagaw_widths(self) -> impl Iterator<Item = u8> {
        let sagaw = self.sagaw();
        [(0, 30u8), (1, 39), (2, 48), (3, 57)]
            .into_iter()
            .filter(move |(b, _)| sagaw & (1 << b) != 0)
            .map(|(_, w)| w)
    }
    /// MGAW, bits 21:16, plus one: maximum guest address width in bits.
    pub fn mgaw(self) -> u8 {
        bits(self.0, 16, 6) as u8 + 1
    }
    /// ZLR, bit 22: zero-length reads.
    pub fn zlr(self) -> bool {
        bit(self.0, 22)
    }
    /// ISOCH, bit 23 (deprecated).
    pub fn isoch(self) -> bool {
        bit(self.0, 23)
    }
    /// FRO, bits 33:24: fault recording register offset in 16-byte units.
    pub fn fro(self) -> u16 {
        bits(self.0, 24, 10) as u16
    }
    /// Byte offset of the first fault recording register (FRO · 16).
    pub fn fault_recording_offset(self) -> usize {
        usize::from(self.fro()) * 16
    }
    /// SLLPS, bits 37:34: second-level large pages (bit 0 → 2 MiB, bit 1 → 1 GiB).
    pub fn sllps(self) -> u8 {
        bits(self.0, 34, 4) as u8
    }
    /// PSI, bit 39: page-selective invalidation.
    pub fn psi(self) -> bool {
        bit(self.0, 39)
    }
    /// NFR, bits 47:40: number of fault recording registers minus one.
    pub fn nfr(self) -> u8 {
        bits(self.0, 40, 8) as u8
    }
    /// Number of fault recording registers (NFR + 1).
    pub fn fault_recording_count(self) -> usize {
        usize::from(self.nfr()) + 1
    }
    /// Byte offset of fault recording register `index`, if the unit has it. `None` for
    /// every index when CAP.FRO places the registers over the fixed-offset ones (below
    /// [`super::layout::FIXED_END`]): clearing such a "record" would write GCMD or
    /// another live register. [`super::RegisterLayout`] checks the rest of the layout.
    pub fn fault_record_offset(self, index: usize) -> Option<usize> {
        self.fault_recording_registers()
            .get(index)
            .map(|r| r.offset())
    }
    /// The fault recording registers as CAP places them: none when CAP.FRO places them
    /// over the fixed-offset registers (see [`Capability::fault_record_offset`]). Each is
    /// read as two 64-bit halves, low first; to read or clear one half, place
    /// [`super::FRCD_LOW`] or [`super::FRCD_HIGH`] at the record's offset.
    pub fn fault_recording_registers(self) -> RegArray<FaultRecording, ReadOnly> {
        let start = self.fault_recording_offset();
        let count = if start >= super::layout::FIXED_END {
            self.fault_recording_count()
        } else {
            0
        };
        RegArray::new(start, 16, count)
    }
    /// MAMV, bits 53:48: maximum address mask value for page-selective invalidation.
    pub fn mamv(self) -> u8 {
        bits(self.0, 48, 6) as u8
    }
    /// DWD, bit 54: write draining.
    pub fn dwd(self) -> bool {
        bit(self.0, 54)
    }
    /// DRD, bit 55: read draining.
    pub fn drd(self) -> bool {
        bit(self.0, 55)
    }
    /// FL1GP, bit 56: first-level 1 GiB pages.
    pub fn fl1gp(self) -> bool {
        bit(self.0, 56)
    }
    /// PI, bit 59: posted interrupts.
    pub fn pi(self) -> bool {
        bit(self.0, 59)
    }
    /// FL5LP, bit 60: first-level 5-level paging.
    pub fn fl5lp(self) -> bool {
        bit(self.0, 60)
    }
    /// ESIRTPS, bit 62: SIRTP also invalidates the interrupt entry cache (Linux then
    /// skips its global IEC flush; this crate flushes anyway, it is cheap).
    pub fn esirtps(self) -> bool {
        bit(self.0, 62)
    }
    /// ESRTPS, bit 63: SRTP also invalidates the translation caches.
    pub fn esrtps(self) -> bool {
        bit(self.0, 63)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CAP {:#018x}: NFR {} at {:#x}, MGAW {}, SAGAW ",
            self.0,
            self.fault_recording_count(),
            self.fault_recording_offset(),
            self.mgaw()
        )?;
        let mut first = true;
        for w in self.sagaw_widths() {
            write!(f, "{}{}", if first { "" } else { "/" }, w)?;
            first = false;
        }
        if first {
            write!(f, "none")?;
        }
        write!(
            f,
            "-bit, ND {} ({} domains), MAMV {}, SLLPS {:#x}, flags",
            self.nd(),
            self.domains(),
            self.mamv(),
            self.sllps()
        )?;
        write_flags(
            f,
            &[
                ("AFL", self.afl()),
                ("RWBF", self.rwbf()),
                ("PLMR", self.plmr()),
                ("PHMR", self.phmr()),
                ("CM", self.caching_mode()),
                ("ZLR", self.zlr()),
                ("ISOCH", self.isoch()),
                ("PSI", self.psi()),
                ("DWD", self.dwd()),
                ("DRD", self.drd()),
                ("FL1GP", self.fl1gp()),
                ("PI", self.pi()),
                ("FL5LP", self.fl5lp()),
                ("ESIRTPS", self.esirtps()),
                ("ESRTPS", self.esrtps()),
            ],
        )
    }
}

/// ECAP_REG (offset 0x10), VT-d §11.4.3. Only the fields interrupt remapping and the
/// shell care about are named; the raw value is always printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedCapability(pub u64);

impl ExtendedCapability {
    /// C, bit 0: page-walk coherency.
    pub fn c(self) -> bool {
        bit(self.0, 0)
    }
    /// QI, bit 1: queued invalidation. Needed for interrupt remapping here: the
    /// interrupt entry cache can only be invalidated by a queued descriptor.
    pub fn qi(self) -> bool {
        bit(self.0, 1)
    }
    /// DT, bit 2: device-TLB.
    pub fn dt(self) -> bool {
        bit(self.0, 2)
    }
    /// IR, bit 3: interrupt remapping.
    pub fn ir(self) -> bool {
        bit(self.0, 3)
    }
    /// EIM, bit 4: extended interrupt mode (32-bit x2APIC destinations).
    pub fn eim(self) -> bool {
        bit(self.0, 4)
    }
    /// PT, bit 6: pass-through.
    pub fn pt(self) -> bool {
        bit(self.0, 6)
    }
    /// SC, bit 7: snoop control.
    pub fn sc(self) -> bool {
        bit(self.0, 7)
    }
    /// IRO, bits 17:8: IOTLB register offset in 16-byte units.
    pub fn iro(self) -> u16 {
        bits(self.0, 8, 10) as u16
    }
    /// Byte offset of the IOTLB registers (IRO · 16).
    pub fn iotlb_offset(self) -> usize {
        usize::from(self.iro()) * 16
    }
    /// MHMV, bits 23:20: the largest index mask (IM) an interrupt entry cache
    /// invalidation descriptor may carry (VT-d §6.5.2.7).
    pub fn mhmv(self) -> u8 {
        bits(self.0, 20, 4) as u8
    }
    /// PASID, bit 40.
    pub fn pasid(self) -> bool {
        bit(self.0, 40)
    }
    /// SMTS, bit 43: scalable mode.
    pub fn smts(self) -> bool {
        bit(self.0, 43)
    }
}

impl fmt::Display for ExtendedCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ECAP {:#018x}: IRO {:#x}, MHMV {}, flags",
            self.0,
            self.iotlb_offset(),
            self.mhmv()
        )?;
        write_flags(
            f,
            &[
                ("C", self.c()),
                ("QI", self.qi()),
                ("DT", self.dt()),
                ("IR", self.ir()),
                ("EIM", self.eim()),
                ("PT", self.pt()),
                ("SC", self.sc()),
                ("PASID", self.pasid()),
                ("SMTS", self.smts()),
            ],
        )
    }
}
