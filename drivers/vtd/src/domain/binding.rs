//! What the `INTEL-IR-n` domain needs from the machine it runs on, as two traits: the
//! remapping unit (its table, written and invalidated) and the platform (the DMAR's
//! source ids, the PCI topology, and where failures are reported). The kernel implements
//! them over its `Unit` and its DMAR/PCI lookups; host tests and the interrupt core's
//! simulator over a model of the unit.

use alloc::sync::Arc;
use core::fmt;

use sluice_irq_core::PciFunction;

use crate::irte::Irte;

/// One remapping unit's interrupt remapping table, as the domain changes it.
///
/// Calls come from the interrupt core's allocation (under its domain lock) and from chip
/// operations (under one irq's descriptor lock, possibly on several CPUs at once for
/// different irqs), so the methods take `&self` and the implementation serialises its
/// queue itself. No lock of the domain is held across a call.
pub trait RemappingUnit: Send + Sync {
    /// Why the unit could not do what was asked (a queue error, a timeout).
    type Error: fmt::Display;

    /// Entries in the table (a power of two, at most 65536): the domain hands out
    /// indices below it and no other.
    fn table_entries(&self) -> u32;

    /// Entries carry 32-bit x2APIC destinations (IRTA.EIME); without it an APIC id above
    /// 255 cannot be encoded.
    fn eim(&self) -> bool;

    /// Stores `irte` at `index` in an order that never lets the unit read a torn entry
    /// ([`crate::table::plan_write`]), then invalidates the unit's cached copy of that
    /// entry (VT-d §6.5.2.7) and waits for the unit to confirm the invalidation.
    ///
    /// `Ok` is a guarantee the domain passes on to the interrupt core (see
    /// [`super::IrDomain`]'s `exec_step`): every interrupt the unit remaps through
    /// `index` after this returns uses `irte`, never an earlier entry. The invalidation
    /// is sent even when the table already holds `irte` (a retry after a failed
    /// invalidation finds it so, while the unit may still cache the old entry).
    /// [`crate::update_irte`] does exactly this over the crate's hardware traits.
    fn write_irte(&self, index: u16, irte: Irte) -> Result<(), Self::Error>;

    /// Invalidates the cached copies of `count` entries from `first` (a multi-message
    /// block's whole range, when its last member goes) and waits for the unit.
    fn invalidate_range(&self, first: u16, count: u32) -> Result<(), Self::Error>;
}

/// The rest of the machine, as the domain needs it: who sends through an entry, and
/// where a failure that cannot be returned goes.
pub trait Platform: Send + Sync {
    /// The source-id the I/O APIC with MADT id `id` sends with (its DMAR device scope,
    /// resolved through bridges); `None` if the DMAR names none.
    fn io_apic_source_id(&self, id: u8) -> Option<u16>;

    /// The source-id of HPET block `block` (its DMAR device scope); `None` if none.
    fn hpet_source_id(&self, block: u8) -> Option<u16>;

    /// For a function behind a PCIe-to-PCI bridge: the id its requests carry as they
    /// enter that bridge — its own, or that of the conventional bridge below the
    /// PCIe-to-PCI bridge that substitutes its id. `None` means its own id.
    fn entering_id(&self, function: &PciFunction) -> Option<u16>;

    /// A unit operation failed. Where the failure is also returned (activation, an
    /// affinity step) the caller sees only `IrqError::InvalidState`, so this is the only
    /// place its cause shows; when an entry is freed nothing can be returned at all.
    /// The kernel logs it (`Failure`'s `Display` is the log line).
    fn report(&self, failure: &Failure<'_>);
}

/// What the domain asked the unit to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitOp {
    /// Write a present entry (activation, deactivation, an affinity change).
    Program {
        /// The entry.
        index: u16,
    },
    /// Write the entry not present (freeing it).
    Clear {
        /// The entry.
        index: u16,
    },
    /// Invalidate a block's range (its last member freed).
    InvalidateRange {
        /// The block's first entry.
        first: u16,
        /// Entries in the block.
        count: u32,
    },
}

/// A unit operation that failed, for [`Platform::report`].
#[derive(Clone, Copy)]
pub struct Failure<'a> {
    /// The domain's name, `INTEL-IR-n`.
    pub domain: &'a str,
    /// What the domain asked for.
    pub op: UnitOp,
    /// The unit's error.
    pub error: &'a dyn fmt::Display,
}

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, e) = (self.domain, self.error);
        match self.op {
            UnitOp::Program { index } => write!(f, "{d}: IRTE {index}: {e}"),
            UnitOp::Clear { index } => write!(f, "{d}: clearing IRTE {index}: {e}"),
            UnitOp::InvalidateRange { first, count } => {
                write!(f, "{d}: invalidating IRTEs {first}+{count}: {e}")
            }
        }
    }
}

impl fmt::Debug for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// A unit or platform shared with the rest of the machine (the kernel's `&'static Unit`,
// a model the test's devices deliver through) binds as itself.

impl<T: RemappingUnit + ?Sized> RemappingUnit for &T {
    type Error = T::Error;
    fn table_entries(&self) -> u32 {
        (**self).table_entries()
    }
    fn eim(&self) -> bool {
        (**self).eim()
    }
    fn write_irte(&self, index: u16, irte: Irte) -> Result<(), Self::Error> {
        (**self).write_irte(index, irte)
    }
    fn invalidate_range(&self, first: u16, count: u32) -> Result<(), Self::Error> {
        (**self).invalidate_range(first, count)
    }
}

impl<T: RemappingUnit + ?Sized> RemappingUnit for Arc<T> {
    type Error = T::Error;
    fn table_entries(&self) -> u32 {
        (**self).table_entries()
    }
    fn eim(&self) -> bool {
        (**self).eim()
    }
    fn write_irte(&self, index: u16, irte: Irte) -> Result<(), Self::Error> {
        (**self).write_irte(index, irte)
    }
    fn invalidate_range(&self, first: u16, count: u32) -> Result<(), Self::Error> {
        (**self).invalidate_range(first, count)
    }
}

impl<T: Platform + ?Sized> Platform for &T {
    fn io_apic_source_id(&self, id: u8) -> Option<u16> {
        (**self).io_apic_source_id(id)
    }
    fn hpet_source_id(&self, block: u8) -> Option<u16> {
        (**self).hpet_source_id(block)
    }
    fn entering_id(&self, function: &PciFunction) -> Option<u16> {
        (**self).entering_id(function)
    }
    fn report(&self, failure: &Failure<'_>) {
        (**self).report(failure)
    }
}

impl<T: Platform + ?Sized> Platform for Arc<T> {
    fn io_apic_source_id(&self, id: u8) -> Option<u16> {
        (**self).io_apic_source_id(id)
    }
    fn hpet_source_id(&self, block: u8) -> Option<u16> {
        (**self).hpet_source_id(block)
    }
    fn entering_id(&self, function: &PciFunction) -> Option<u16> {
        (**self).entering_id(function)
    }
    fn report(&self, failure: &Failure<'_>) {
        (**self).report(failure)
    }
}
