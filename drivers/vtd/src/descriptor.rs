//! 128-bit invalidation queue descriptors (VT-d §6.5.2): encoding, decoding, and the
//! split of an IRTE range into aligned power-of-two interrupt entry cache invalidations.
//!
//! Layouts (low qword; the high qword is zero unless said):
//!
//! | type | descriptor | fields |
//! |---|---|---|
//! | 0x1 | context-cache invalidate (§6.5.2.1) | G 5:4 (1 global), DID 31:16, SID 47:32, FM 49:48 |
//! | 0x2 | IOTLB invalidate (§6.5.2.3) | G 5:4 (1 global), DW 6, DR 7, DID 31:16; high: ADDR, IH, AM |
//! | 0x4 | interrupt entry cache invalidate (§6.5.2.7) | G 4 (0 global, 1 index-selective), IM 31:27, IIDX 47:32 |
//! | 0x5 | invalidation wait (§6.5.2.8) | IF 4, SW 5, FN 6, status data 63:32; high: status address 63:2 |
//!
//! Bits 11:9 extend the type field (types above 0xf, VT-d 3.0+); they are zero here.

use core::fmt;

/// Descriptor type codes (bits 3:0).
pub mod kind {
    /// Context-cache invalidate (§6.5.2.1).
    pub const CONTEXT_CACHE: u8 = 0x1;
    /// IOTLB invalidate (§6.5.2.3).
    pub const IOTLB: u8 = 0x2;
    /// Device-TLB invalidate (not built by this crate).
    pub const DEVICE_TLB: u8 = 0x3;
    /// Interrupt entry cache invalidate (§6.5.2.7).
    pub const IEC: u8 = 0x4;
    /// Invalidation wait (§6.5.2.8).
    pub const WAIT: u8 = 0x5;
}

const IEC_INDEX_SELECTIVE: u64 = 1 << 4;
const WAIT_IF: u64 = 1 << 4;
const WAIT_SW: u64 = 1 << 5;
const WAIT_FN: u64 = 1 << 6;
const GRANULARITY_GLOBAL: u64 = 1 << 4;

/// The largest interrupt entry cache index mask: ECAP.MHMV is a 4-bit field.
pub const MAX_INDEX_MASK: u8 = 15;

/// One queued invalidation descriptor, as the two qwords stored in a ring slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Descriptor {
    /// Bits 63:0: the type and the type's fields.
    pub lo: u64,
    /// Bits 127:64: an address, for the types that take one.
    pub hi: u64,
}

/// A descriptor that cannot be built as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorError {
    /// An index-selective IEC invalidation whose index is not a multiple of 2^mask.
    IndexNotAligned {
        /// The first IRTE index asked for.
        index: u16,
        /// The index mask asked for (2^mask entries).
        mask: u8,
    },
    /// An index mask above [`MAX_INDEX_MASK`].
    MaskTooLarge(u8),
    /// A wait descriptor's status address must be 4-byte aligned.
    StatusAddressMisaligned(u64),
    /// A range of IRTEs running past index 65535.
    RangeBeyondTable {
        /// The first IRTE index.
        first: u32,
        /// How many entries.
        count: u32,
    },
}

impl fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptorError::IndexNotAligned { index, mask } => write!(
                f,
                "IEC index {:#x} is not aligned to its block of 2^{} entries",
                index, mask
            ),
            DescriptorError::MaskTooLarge(m) => {
                write!(f, "IEC index mask {} is above {}", m, MAX_INDEX_MASK)
            }
            DescriptorError::StatusAddressMisaligned(a) => {
                write!(f, "wait status address {:#x} is not 4-byte aligned", a)
            }
            DescriptorError::RangeBeyondTable { first, count } => write!(
                f,
                "IRTE range {:#x} + {} runs past index 0xffff",
                first, count
            ),
        }
    }
}

/// Why this crate refuses to put a descriptor in the queue, whoever built it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorProblem {
    /// A wait descriptor with both Status Write and Interrupt Flag. Valid per VT-d, but
    /// QEMU up to 10.0.3 asserts on it and aborts the whole virtual machine.
    StatusWriteAndInterrupt,
    /// A wait descriptor with neither Status Write nor Interrupt Flag: QEMU reports it as
    /// an invalid descriptor (IQE), and nothing would tell us it completed.
    WaitWithoutAction,
    /// A wait descriptor whose status address has bits 1:0 set (reserved).
    StatusAddressMisaligned,
}

impl fmt::Display for DescriptorProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DescriptorProblem::StatusWriteAndInterrupt => {
                "wait descriptor with both Status Write and Interrupt Flag (aborts QEMU 10.0.2)"
            }
            DescriptorProblem::WaitWithoutAction => {
                "wait descriptor with neither Status Write nor Interrupt Flag"
            }
            DescriptorProblem::StatusAddressMisaligned => {
                "wait descriptor status address not 4-byte aligned"
            }
        })
    }
}

/// Which interrupt entry cache entries an IEC descriptor invalidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IecScope {
    /// Every entry of the cache.
    Global,
    /// 2^mask entries starting at `index` (aligned to 2^mask).
    Indexed {
        /// The first entry, a multiple of 2^mask.
        index: u16,
        /// IM: log2 of the number of entries.
        mask: u8,
    },
}

/// A descriptor's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A context-cache invalidation.
    ContextCache {
        /// G, bits 5:4 (1 global, 2 domain-selective, 3 device-selective).
        granularity: u8,
    },
    /// An IOTLB invalidation.
    Iotlb {
        /// G, bits 5:4 (1 global, 2 domain-selective, 3 page-selective).
        granularity: u8,
        /// DR, bit 7: drain reads first.
        drain_reads: bool,
        /// DW, bit 6: drain writes first.
        drain_writes: bool,
    },
    /// An interrupt entry cache invalidation.
    Iec(IecScope),
    /// An invalidation wait.
    Wait {
        /// IF, bit 4: raise an invalidation completion event.
        interrupt: bool,
        /// (status address, status data) when Status Write is set.
        status_write: Option<(u64, u32)>,
        /// FN, bit 6: later descriptors wait until this one completes.
        fence: bool,
    },
    /// Any other type (device-TLB, PASID-based, reserved): not built by this crate.
    Other {
        /// The type code, bits 3:0 with bits 11:9 above them.
        kind: u8,
    },
}

impl Descriptor {
    /// The descriptor with these two qwords, as read from a ring slot.
    pub const fn from_raw(lo: u64, hi: u64) -> Descriptor {
        Descriptor { lo, hi }
    }

    /// Invalidates the whole interrupt entry cache.
    pub const fn iec_global() -> Descriptor {
        Descriptor::from_raw(kind::IEC as u64, 0)
    }

    /// Invalidates the 2^`mask` cached IRTEs starting at `index`.
    pub fn iec_indexed(index: u16, mask: u8) -> Result<Descriptor, DescriptorError> {
        if mask > MAX_INDEX_MASK {
            return Err(DescriptorError::MaskTooLarge(mask));
        }
        if u32::from(index) & ((1u32 << mask) - 1) != 0 {
            return Err(DescriptorError::IndexNotAligned { index, mask });
        }
        Ok(Descriptor::from_raw(
            kind::IEC as u64
                | IEC_INDEX_SELECTIVE
                | (u64::from(mask) << 27)
                | (u64::from(index) << 32),
            0,
        ))
    }

    /// An invalidation wait that writes `status_data` to `status_address` when every
    /// descriptor before it has completed. Never sets the Interrupt Flag as well (see
    /// [`DescriptorProblem::StatusWriteAndInterrupt`]).
    pub fn wait_status(
        status_address: u64,
        status_data: u32,
    ) -> Result<Descriptor, DescriptorError> {
        if status_address & 3 != 0 {
            return Err(DescriptorError::StatusAddressMisaligned(status_address));
        }
        Ok(Descriptor::from_raw(
            kind::WAIT as u64 | WAIT_SW | (u64::from(status_data) << 32),
            status_address,
        ))
    }

    /// An invalidation wait that raises the invalidation completion event (ICS.IWC and
    /// the IEDATA/IEADDR interrupt) and writes nothing.
    pub const fn wait_interrupt() -> Descriptor {
        Descriptor::from_raw(kind::WAIT as u64 | WAIT_IF, 0)
    }

    /// Global context-cache invalidation.
    pub const fn context_cache_global() -> Descriptor {
        Descriptor::from_raw(kind::CONTEXT_CACHE as u64 | GRANULARITY_GLOBAL, 0)
    }

    /// Global IOTLB invalidation, draining reads/writes if asked (CAP.DRD / CAP.DWD).
    pub const fn iotlb_global(drain_reads: bool, drain_writes: bool) -> Descriptor {
        Descriptor::from_raw(
            kind::IOTLB as u64
                | GRANULARITY_GLOBAL
                | (drain_writes as u64) << 6
                | (drain_reads as u64) << 7,
            0,
        )
    }

    /// The type code: bits 3:0, extended by bits 11:9.
    pub fn kind(self) -> u8 {
        ((self.lo & 0xf) | ((self.lo >> 9) & 0x7) << 4) as u8
    }

    /// What the descriptor means, by its type.
    pub fn decode(self) -> Decoded {
        let lo = self.lo;
        match self.kind() {
            kind::CONTEXT_CACHE => Decoded::ContextCache {
                granularity: ((lo >> 4) & 3) as u8,
            },
            kind::IOTLB => Decoded::Iotlb {
                granularity: ((lo >> 4) & 3) as u8,
                drain_writes: lo & (1 << 6) != 0,
                drain_reads: lo & (1 << 7) != 0,
            },
            kind::IEC if lo & IEC_INDEX_SELECTIVE == 0 => Decoded::Iec(IecScope::Global),
            kind::IEC => Decoded::Iec(IecScope::Indexed {
                index: (lo >> 32) as u16,
                mask: ((lo >> 27) & 0x1f) as u8,
            }),
            kind::WAIT => Decoded::Wait {
                interrupt: lo & WAIT_IF != 0,
                status_write: (lo & WAIT_SW != 0).then_some((self.hi, (lo >> 32) as u32)),
                fence: lo & WAIT_FN != 0,
            },
            other => Decoded::Other { kind: other },
        }
    }

    /// What this crate refuses about the descriptor, if anything. Reserved bits are
    /// left to the hardware to judge (a newer unit may define them); these are the
    /// cases that hang or crash a known implementation.
    pub fn problem(self) -> Option<DescriptorProblem> {
        if self.kind() != kind::WAIT {
            return None;
        }
        let (sw, iflag) = (self.lo & WAIT_SW != 0, self.lo & WAIT_IF != 0);
        match (sw, iflag) {
            (true, true) => Some(DescriptorProblem::StatusWriteAndInterrupt),
            (false, false) => Some(DescriptorProblem::WaitWithoutAction),
            (true, false) if self.hi & 3 != 0 => Some(DescriptorProblem::StatusAddressMisaligned),
            _ => None,
        }
    }
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.decode() {
            Decoded::ContextCache { granularity } => {
                write!(f, "context-cache invalidate G {}", granularity)?
            }
            Decoded::Iotlb {
                granularity,
                drain_reads,
                drain_writes,
            } => write!(
                f,
                "IOTLB invalidate G {} DR {} DW {}",
                granularity,
                u8::from(drain_reads),
                u8::from(drain_writes)
            )?,
            Decoded::Iec(IecScope::Global) => write!(f, "IEC invalidate global")?,
            Decoded::Iec(IecScope::Indexed { index, mask }) => write!(
                f,
                "IEC invalidate index {:#x} mask {} ({} entries)",
                index,
                mask,
                1u64 << mask.min(63)
            )?,
            Decoded::Wait {
                interrupt,
                status_write,
                fence,
            } => {
                write!(f, "wait IF {} FN {}", u8::from(interrupt), u8::from(fence))?;
                if let Some((addr, data)) = status_write {
                    write!(f, " SW status {:#x} -> {:#x}", data, addr)?;
                }
            }
            Decoded::Other { kind } => write!(f, "descriptor type {:#x}", kind)?,
        }
        write!(f, " [{:#018x}_{:016x}]", self.hi, self.lo)
    }
}

/// Splits the IRTE range `first .. first + count` into the fewest aligned blocks of
/// 2^m entries (m ≤ `max_mask`, normally ECAP.MHMV) that cover it exactly, in order:
/// one index-selective IEC descriptor each (VT-d §6.5.2.7: IIDX must be aligned to the
/// 2^IM block it names).
pub fn iec_ranges(first: u32, count: u32, max_mask: u8) -> Result<IecRanges, DescriptorError> {
    let end = first
        .checked_add(count)
        .filter(|&end| end <= 0x1_0000)
        .ok_or(DescriptorError::RangeBeyondTable { first, count })?;
    Ok(IecRanges {
        next: first,
        end,
        max_mask: max_mask.min(MAX_INDEX_MASK),
    })
}

/// Iterator of `(index, mask)` blocks from [`iec_ranges`].
#[derive(Debug, Clone)]
pub struct IecRanges {
    next: u32,
    end: u32,
    max_mask: u8,
}

impl Iterator for IecRanges {
    type Item = (u16, u8);

    fn next(&mut self) -> Option<(u16, u8)> {
        if self.next >= self.end {
            return None;
        }
        let alignment = self.next.trailing_zeros().min(31);
        let fits = (self.end - self.next).ilog2();
        let mask = alignment.min(fits).min(u32::from(self.max_mask));
        let block = (self.next as u16, mask as u8);
        self.next += 1 << mask;
        Some(block)
    }
}
