//! Which entries of the table are taken, and by what: one-entry regions for ordinary
//! irqs, aligned blocks reserved for multi-message functions, and each allocated entry's
//! record (its irq, source check, pin, block).

use alloc::collections::BTreeMap;
use sluice_irq_core::region::RegionAllocator;
use sluice_irq_core::{IrqError, IrqSource, PciFunction, Result, Virq};

use crate::source_id::SourceValidation;

/// What an allocated entry validates and how it is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// The interrupt the entry delivers.
    pub virq: Virq,
    /// The source-id check the entry makes (SVT, SQ, SID).
    pub source: SourceValidation,
    /// I/O APIC input, for the remappable RTE's vector field.
    pub pin: Option<u32>,
    /// A multi-message device's block of entries: (first entry, entries). The device's
    /// one message names the first as handle; member `j` sends subhandle `j`.
    pub block: Option<(u16, u32)>,
}

/// A PCI function, as the key of its reserved block.
type FunctionKey = (u16, u8, u8, u8);

fn key(f: &PciFunction) -> FunctionKey {
    (f.segment, f.bus, f.device, f.function)
}

/// The table's allocation state, under the domain's one lock.
pub(super) struct Entries {
    /// Which entries are taken (regions of one entry, or aligned blocks).
    regions: RegionAllocator,
    entries: BTreeMap<u16, EntryInfo>,
    /// Blocks reserved for multi-message functions: first entry and length.
    blocks: BTreeMap<FunctionKey, (u16, u32)>,
}

impl Entries {
    pub(super) fn new(table_entries: u32) -> Self {
        Self {
            regions: RegionAllocator::up_to(table_entries),
            entries: BTreeMap::new(),
            blocks: BTreeMap::new(),
        }
    }

    pub(super) fn info(&self, index: u16) -> Option<EntryInfo> {
        self.entries.get(&index).copied()
    }

    pub(super) fn used(&self) -> usize {
        self.entries.len()
    }

    /// An aligned block of `count` (a power of two, at most 32) entries for `function`.
    pub(super) fn reserve_block(&mut self, function: &PciFunction, count: u32) -> Result<u16> {
        if !count.is_power_of_two() || count > 32 {
            return Err(IrqError::InvalidArgument);
        }
        if self.blocks.contains_key(&key(function)) {
            return Err(IrqError::Busy);
        }
        let base = self.regions.reserve(count).map_err(|_| IrqError::NoSpace)?;
        self.blocks.insert(key(function), (base as u16, count));
        Ok(base as u16)
    }

    /// Gives back a block none of whose members is allocated.
    pub(super) fn abandon_block(&mut self, function: &PciFunction) {
        if let Some((base, _)) = self.blocks.remove(&key(function)) {
            let _ = self.regions.teardown(u32::from(base));
        }
    }

    /// One entry for `source`: at its message number in its function's reserved block if
    /// it has one, else a block of its own.
    pub(super) fn alloc(
        &mut self,
        virq: Virq,
        source: &IrqSource,
        validation: SourceValidation,
        pin: Option<u32>,
    ) -> Result<u16> {
        let block = match source {
            IrqSource::Pci { function, index } => self
                .blocks
                .get(&key(function))
                .copied()
                .map(|(base, len)| (base, len, *index)),
            _ => None,
        };
        let index = match block {
            Some((base, len, member)) => {
                if member >= len {
                    return Err(IrqError::InvalidArgument);
                }
                let i = u32::from(base) + member;
                self.regions.alloc_at(i).map_err(|_| IrqError::Busy)?;
                i
            }
            None => {
                let base = self.regions.reserve(1).map_err(|_| IrqError::NoSpace)?;
                self.regions.alloc(base).map_err(|_| IrqError::NoSpace)?
            }
        };
        self.entries.insert(
            index as u16,
            EntryInfo {
                virq,
                source: validation,
                pin,
                block: block.map(|(base, len, _)| (base, len)),
            },
        );
        Ok(index as u16)
    }

    /// Forgets entry `index`. When it was the last member of its region the region goes
    /// too; if that region was a block of several entries, the block is forgotten and its
    /// range returned, for the caller to invalidate.
    pub(super) fn free(&mut self, index: u16) -> Option<(u16, u32)> {
        self.entries.remove(&index);
        let f = self.regions.free(u32::from(index)).ok()?;
        if f.live != 0 {
            return None;
        }
        let len = self.regions.teardown(f.base).ok()?;
        if len <= 1 {
            return None;
        }
        self.blocks.retain(|_, (b, _)| u32::from(*b) != f.base);
        Some((f.base as u16, len))
    }
}
