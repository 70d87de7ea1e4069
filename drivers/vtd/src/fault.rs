//! What a fault record says (VT-d ch. 7, fault conditions and primary fault logging),
//! and a rate limiter so a fault storm is counted, not printed line by line.
//!
//! The kind of a fault comes from its reason, as Linux's `dmar_get_fault_reason` decides
//! it: reasons 0x20..=0x2f are interrupt remapping faults, the rest are DMA remapping
//! faults whose type bits (T1, T2) say read, write, page request or AtomicOp. QEMU
//! records interrupt remapping faults with T1 = 0, which would read as "write".

use core::fmt;

use crate::registers::{FRCD_HIGH, FRCD_LOW, FaultRecording};
use crate::source_id::Bdf;

/// The request that faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// An interrupt request that failed remapping.
    InterruptRemapping,
    /// A DMA read that failed translation.
    DmaRead,
    /// A DMA write that failed translation.
    DmaWrite,
    /// A page request.
    PageRequest,
    /// A DMA atomic operation that failed translation.
    AtomicOp,
}

impl FaultKind {
    /// The kind's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::InterruptRemapping => "interrupt remapping",
            FaultKind::DmaRead => "DMA read",
            FaultKind::DmaWrite => "DMA write",
            FaultKind::PageRequest => "page request",
            FaultKind::AtomicOp => "DMA AtomicOp",
        }
    }
}

/// Interrupt remapping fault reasons (VT-d ch. 7, "Interrupt Remapping Fault
/// Conditions"; QEMU's `VTDFaultReason`).
pub mod reason {
    /// Reserved fields set in the request: address bits 63:32, or data bits 31:16 with SHV.
    pub const IR_REQUEST_RESERVED: u8 = 0x20;
    /// Handle (+ subhandle) beyond the table size in IRTA.S.
    pub const IR_INDEX_BEYOND_TABLE: u8 = 0x21;
    /// The IRTE's present bit is clear.
    pub const IR_NOT_PRESENT: u8 = 0x22;
    /// Reading the table at IRTA failed.
    pub const IR_TABLE_ACCESS: u8 = 0x23;
    /// Reserved bits set in a present IRTE (or a reserved value in one of its fields).
    pub const IR_IRTE_RESERVED: u8 = 0x24;
    /// A compatibility-format request blocked (GSTS.CFIS clear, or IRTA.EIME set).
    pub const IR_COMPATIBILITY_BLOCKED: u8 = 0x25;
    /// The requester failed the IRTE's source-id check.
    pub const IR_SOURCE_ID: u8 = 0x26;
    /// Reading a posted-interrupt descriptor failed.
    pub const IR_POSTED_DESCRIPTOR_ACCESS: u8 = 0x27;
    /// Reserved bits set in a posted-interrupt descriptor.
    pub const IR_POSTED_DESCRIPTOR_RESERVED: u8 = 0x28;
}

/// A name for a fault reason code, `None` for codes this crate does not know (the
/// scalable-mode reasons 0x30 and above among them).
pub fn reason_name(reason: u8) -> Option<&'static str> {
    Some(match reason {
        0x00 => "reserved (software)",
        0x01 => "root entry not present",
        0x02 => "context entry not present",
        0x03 => "context entry programmed wrongly",
        0x04 => "address beyond the guest address width",
        0x05 => "write not permitted by the page tables",
        0x06 => "read not permitted by the page tables",
        0x07 => "paging entry could not be read",
        0x08 => "root table could not be read",
        0x09 => "context table could not be read",
        0x0a => "reserved bits set in a root entry",
        0x0b => "reserved bits set in a context entry",
        0x0c => "reserved bits set in a paging entry",
        0x0d => "request blocked by the context entry's translation type",
        0x20 => "reserved fields set in the interrupt request",
        0x21 => "interrupt index beyond the remapping table",
        0x22 => "IRTE not present",
        0x23 => "remapping table could not be read",
        0x24 => "reserved bits set in the IRTE",
        0x25 => "compatibility-format interrupt blocked",
        0x26 => "source-id check failed",
        0x27 => "posted-interrupt descriptor could not be read",
        0x28 => "reserved bits set in the posted-interrupt descriptor",
        _ => return None,
    })
}

/// One decoded fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The requester id: bus 15:8, device 7:3, function 2:0.
    pub source_id: u16,
    /// The fault reason code (VT-d appendix A).
    pub reason: u8,
    /// What kind of request faulted.
    pub kind: FaultKind,
    /// The IRTE index, for interrupt remapping faults other than 0x25 (where the
    /// hardware leaves the field undefined).
    pub irte_index: Option<u16>,
    /// The faulting page address, for DMA remapping faults.
    pub address: Option<u64>,
    /// The PASID, when the request carried one.
    pub pasid: Option<u32>,
}

impl Fault {
    /// The fault a recording register holds, or `None` if its F bit is clear.
    pub fn decode(record: FaultRecording) -> Option<Fault> {
        if !record.fault() {
            return None;
        }
        let reason = record.reason();
        let ir = (0x20..=0x2f).contains(&reason);
        let kind = if ir {
            FaultKind::InterruptRemapping
        } else {
            match (record.t1(), record.t2()) {
                (false, false) => FaultKind::DmaWrite,
                (true, false) => FaultKind::DmaRead,
                (false, true) => FaultKind::PageRequest,
                (true, true) => FaultKind::AtomicOp,
            }
        };
        Some(Fault {
            source_id: record.source_id(),
            reason,
            kind,
            irte_index: (ir && reason != reason::IR_COMPATIBILITY_BLOCKED)
                .then_some((record.lo >> 48) as u16),
            address: (!ir).then_some(record.fault_info()),
            pasid: record.pasid_present().then_some(record.pasid()),
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} fault {:#04x} ({}) from {}",
            self.kind.name(),
            self.reason,
            reason_name(self.reason).unwrap_or("unknown reason"),
            Bdf(self.source_id)
        )?;
        if let Some(i) = self.irte_index {
            write!(f, ", IRTE index {:#x}", i)?;
        }
        if let Some(a) = self.address {
            write!(f, ", address {:#x}", a)?;
        }
        if let Some(p) = self.pasid {
            write!(f, ", PASID {:#x}", p)?;
        }
        Ok(())
    }
}

/// What to do with one fault under the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Print it; `suppressed` faults were dropped silently since the last printed one.
    Print {
        /// Faults dropped since the last printed one.
        suppressed: u64,
    },
    /// Count it and print nothing.
    Suppress,
}

/// At most `burst` printed faults per `interval_ns`; the rest counted and reported with
/// the next printed one. Pure: the caller passes the time.
#[derive(Debug, Clone)]
pub struct FaultRateLimiter {
    interval_ns: u64,
    burst: u32,
    window_start: Option<u64>,
    printed: u32,
    suppressed: u64,
    total_suppressed: u64,
}

impl FaultRateLimiter {
    /// A limiter that prints at most `burst` faults per `interval_ns`.
    pub const fn new(interval_ns: u64, burst: u32) -> FaultRateLimiter {
        FaultRateLimiter {
            interval_ns,
            burst,
            window_start: None,
            printed: 0,
            suppressed: 0,
            total_suppressed: 0,
        }
    }

    /// Linux's default for its DMAR fault messages: 10 per 5 seconds.
    pub const fn linux_default() -> FaultRateLimiter {
        FaultRateLimiter::new(5_000_000_000, 10)
    }

    /// Decides for a fault seen at `now_ns` (monotonic).
    pub fn check(&mut self, now_ns: u64) -> Verdict {
        let start = *self.window_start.get_or_insert(now_ns);
        if now_ns.saturating_sub(start) >= self.interval_ns {
            self.window_start = Some(now_ns);
            self.printed = 0;
        }
        if self.printed < self.burst {
            self.printed += 1;
            let suppressed = core::mem::take(&mut self.suppressed);
            Verdict::Print { suppressed }
        } else {
            self.suppressed += 1;
            self.total_suppressed += 1;
            Verdict::Suppress
        }
    }

    /// Faults suppressed and not yet reported with a printed one.
    pub fn pending_suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Every fault ever suppressed.
    pub fn total_suppressed(&self) -> u64 {
        self.total_suppressed
    }
}

/// Reads every fault recording register, clears the ones with F set (write 1 to F) and
/// FSTS.PFO/AFO/ICE/ITE, and returns the records that were pending, in register order.
/// The fault interrupt handler and the enable sequence both use it. FSTS.IQE is left
/// alone: it belongs to the invalidation queue, which must see it to recover (clearing it
/// elsewhere would leave QEMU's queue stopped for good).
///
/// QEMU drops new faults while a pending record has the same source-id or PFO is set,
/// and signals a fault event only when FSTS had no PPF/PFO/IQE before: records left
/// pending would silence the fault interrupt.
pub fn drain_fault_records<H: crate::hw::Registers + ?Sized>(
    hw: &mut H,
    cap: crate::registers::Capability,
) -> alloc::vec::Vec<FaultRecording> {
    let mut pending = alloc::vec::Vec::new();
    let records = cap.fault_recording_registers();
    for record in (0..records.len()).filter_map(|i| records.get(i)) {
        // F first: a record without it is not read further.
        let high = FRCD_HIGH.at(record.offset());
        let hi = high.read(&hw.registers());
        if hi & FaultRecording::F_HI == 0 {
            continue;
        }
        let lo = FRCD_LOW.at(record.offset()).read(&hw.registers());
        high.write(&hw.registers(), FaultRecording::F_HI);
        pending.push(FaultRecording { lo, hi });
    }
    let errors = crate::registers::FaultStatus::ERRORS - crate::registers::FaultStatus::IQE;
    crate::registers::FSTS.write(&hw.registers(), errors);
    pending
}
