//! `iommu irte`: an interrupt remapping table's present entries, each decoded on one
//! line. An entry whose Present bit is clear is skipped whatever else it holds: the
//! hardware ignores it (VT-d §9.10, P), so it routes nothing (an entry freed by
//! clearing P alone keeps its old fields; showing those would mislead).

use core::fmt;

use crate::hw::IrteMemory;
use crate::irte::Irte;

/// The present entries among the first `entries` of `table`, in index order.
pub fn present_entries<M: IrteMemory>(
    table: &mut M,
    entries: u32,
) -> impl Iterator<Item = (u16, Irte)> + '_ {
    // A table holds at most 2^16 entries (IRTA.S is at most 15: §11.4.8.1).
    let all = (0..entries.min(1 << 16)).map(|i| i as u16);
    all.filter_map(move |i| {
        let irte = table.read_irte(i);
        irte.present().then_some((i, irte))
    })
}

/// One line of the dump: `   17: IRTE ...: vector 0x31 -> x2APIC 0x1, ...`.
#[derive(Clone, Copy, Debug)]
pub struct EntryLine {
    /// The entry's index (its handle).
    pub index: u16,
    /// The entry as the table holds it.
    pub irte: Irte,
    /// IRTA.EIME: destinations are 32-bit x2APIC ids.
    pub eim: bool,
}

impl fmt::Display for EntryLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>5}: {}", self.index, self.irte.display(self.eim))
    }
}
