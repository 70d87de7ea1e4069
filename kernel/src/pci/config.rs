//! PCI configuration space for the whole kernel: the MCFG's ECAM windows (PCI Express
//! Base 6.0 §7.2.2: bus, device, function → a 4 KiB page of memory-mapped registers) and,
//! for buses no window covers, the legacy mechanism at ports 0xCF8/0xCFC (PCI Local Bus
//! 3.0 §3.2.2.3.2; 256 bytes per function, segment 0 only). `Config` is the
//! `sluice_pci::ConfigAccess` the pure PCI code (enumeration, capabilities, MSI) runs on.
//!
//! An ECAM bus is mapped (1 MiB, uncached; with its even/odd neighbour as one 2 MiB page
//! where the window allows) the first time it is touched and stays mapped; a bus that
//! could not be mapped is remembered as such and reached through the legacy mechanism.
//! Enumeration touches the bus of every function it finds, at boot, so mapping (under
//! `MAPPING`, which takes the page tables) never happens later from an interrupt
//! handler's MSI mask write. The legacy address/data pair is serialised by `LEGACY`, which interrupt
//! handlers take. Every access here is one access of its width, so the MSI code's
//! single-word writes stay single writes.

use alloc::vec::Vec;
use sluice_pci::{ConfigAccess, ConfigOffset, ConfigSize, PciAddress};
use sluice_sync::{IrqSpinLock, SpinLock};
use x86_64::instructions::port::Port;

use crate::acpi::McfgEntry;
use crate::memory::mmio::{self, Mmio};

/// The legacy mechanism's ports (PCI Local Bus 3.0 §3.2.2.3.2).
mod legacy_port {
    /// CONFIG_ADDRESS: enable bit 31, bus 23:16, device 15:11, function 10:8, register 7:2.
    pub const ADDRESS: u16 = 0xcf8;
    /// CONFIG_DATA: the selected dword; byte lanes at 0xCFC..0xCFF.
    pub const DATA: u16 = 0xcfc;
    pub const ENABLE: u32 = 1 << 31;
}

/// Bytes of ECAM space per bus: 32 devices × 8 functions × 4 KiB.
const ECAM_BUS_BYTES: u64 = 1 << 20;

/// One MCFG entry and the buses of it touched so far: mapped, or `None` if mapping
/// failed (never tried again).
struct Window {
    entry: McfgEntry,
    buses: [spin::Once<Option<Mmio>>; 256],
}

static WINDOWS: spin::Once<Vec<Window>> = spin::Once::new();
/// Serialises mapping a bus (at a bus's first touch: for a function's bus, enumeration
/// at boot). Task context only. Lock order (`sync::order`): before the page tables.
static MAPPING: SpinLock<()> = SpinLock::new(&crate::sync::order::PCI_CONFIG_MAPPING, ());
/// Serialises the legacy address/data pair. Interrupt-safe: MSI mask writes reach it
/// from interrupt handlers (under irq descriptor locks), `lspci` with interrupts on.
/// Lock order: a leaf.
static LEGACY: IrqSpinLock<()> = IrqSpinLock::new(&crate::sync::order::PCI_CONFIG_LEGACY, ());

/// Records the MCFG's windows (mapped lazily).
pub fn init(mcfg: &[McfgEntry]) {
    WINDOWS.call_once(|| {
        mcfg.iter()
            .filter(|e| e.bus_start <= e.bus_end)
            .map(|e| Window {
                entry: *e,
                buses: [const { spin::Once::new() }; 256],
            })
            .collect()
    });
}

/// The mapped ECAM bus of a function and the offset of its page in it, if a window
/// covers it and its bus could be mapped (mapping the bus now if this is its first
/// touch).
fn ecam(a: PciAddress) -> Option<(&'static Mmio, u64)> {
    let w = WINDOWS.get()?.iter().find(|w| {
        w.entry.segment == a.segment() && (w.entry.bus_start..=w.entry.bus_end).contains(&a.bus())
    })?;
    let bus = a.bus();
    let slot = &w.buses[bus as usize];
    if slot.get().is_none() {
        let _g = MAPPING.lock();
        if slot.get().is_none() {
            map_bus(w, bus);
        }
    }
    Some((slot.get()?.as_ref()?, u64::from(a.devfn()) << 12))
}

/// Maps `bus`'s 1 MiB of the window (under `MAPPING`), or records that it cannot be. The MCFG's base address is that
/// of bus 0 even where the range starts above it (Linux reads it so too). Where the pair
/// of buses sharing a 2 MiB-aligned stretch both lie in the range, both are mapped with
/// one 2 MiB page: probing every free bus for peer root buses touches all 256, and 4 KiB
/// pages would cost 65,536 mappings.
fn map_bus(w: &Window, bus: u8) {
    let phys_of = |b: u8| w.entry.base + u64::from(b) * ECAM_BUS_BYTES;
    let pair = bus & !1;
    let range = w.entry.bus_start..=w.entry.bus_end;
    if range.contains(&pair)
        && range.contains(&(pair | 1))
        && phys_of(pair).is_multiple_of(2 * ECAM_BUS_BYTES)
        && let Ok(m) = mmio::map_2mib(phys_of(pair), 2 * ECAM_BUS_BYTES)
    {
        for (b, offset) in [(pair, 0), (pair | 1, ECAM_BUS_BYTES)] {
            w.buses[b as usize].call_once(|| Some(m.sub(offset, ECAM_BUS_BYTES)));
        }
        return;
    }
    let mapped = mmio::map(phys_of(bus), ECAM_BUS_BYTES)
        .inspect_err(|e| {
            crate::warn!(
                "PCI: cannot map ECAM for bus {:02x}: {}; using the legacy mechanism",
                bus,
                e
            )
        })
        .ok();
    w.buses[bus as usize].call_once(|| mapped);
}

fn legacy_address(a: PciAddress, offset: ConfigOffset) -> u32 {
    legacy_port::ENABLE
        | u32::from(a.bus()) << 16
        | u32::from(a.device()) << 11
        | u32::from(a.function()) << 8
        | u32::from(offset.get() & 0xfc)
}

/// Runs `f` on the data port with `a`/`offset` selected; `None` beyond what the legacy
/// mechanism reaches (other segments, offsets ≥ 256).
fn with_legacy<R>(a: PciAddress, offset: ConfigOffset, f: impl FnOnce(u16) -> R) -> Option<R> {
    if a.segment() != 0 || offset.get() >= ConfigSize::Legacy.bytes() {
        return None;
    }
    let _g = LEGACY.lock();
    // SAFETY: CONFIG_ADDRESS only selects a register; the lock keeps the pair together.
    unsafe { Port::<u32>::new(legacy_port::ADDRESS).write(legacy_address(a, offset)) };
    Some(f(legacy_port::DATA + (offset.get() & 3)))
}

/// The kernel's configuration-space access (all state is global: a handle).
pub struct Config;

impl ConfigAccess for Config {
    fn config_size(&self, a: PciAddress) -> ConfigSize {
        if WINDOWS.get().is_some_and(|ws| {
            ws.iter().any(|w| {
                w.entry.segment == a.segment()
                    && (w.entry.bus_start..=w.entry.bus_end).contains(&a.bus())
            })
        }) {
            ConfigSize::Extended
        } else {
            ConfigSize::Legacy
        }
    }

    fn read32(&mut self, a: PciAddress, offset: ConfigOffset) -> u32 {
        match ecam(a) {
            Some((m, page)) => m.read32(page + u64::from(offset.get())),
            // SAFETY: reading CONFIG_DATA after selecting a register has no other effect.
            None => with_legacy(a, offset, |p| unsafe { Port::<u32>::new(p).read() })
                .unwrap_or(u32::MAX),
        }
    }

    fn write32(&mut self, a: PciAddress, offset: ConfigOffset, value: u32) {
        match ecam(a) {
            Some((m, page)) => m.write32(page + u64::from(offset.get()), value),
            None => {
                // SAFETY: writes the selected register of the selected function only.
                with_legacy(a, offset, |p| unsafe { Port::<u32>::new(p).write(value) });
            }
        }
    }

    fn read16(&mut self, a: PciAddress, offset: ConfigOffset) -> u16 {
        match ecam(a) {
            Some((m, page)) => m.read16(page + u64::from(offset.get())),
            // SAFETY: as in read32, on the word's byte lane.
            None => with_legacy(a, offset, |p| unsafe { Port::<u16>::new(p).read() })
                .unwrap_or(u16::MAX),
        }
    }

    fn read8(&mut self, a: PciAddress, offset: ConfigOffset) -> u8 {
        match ecam(a) {
            Some((m, page)) => m.read8(page + u64::from(offset.get())),
            None => {
                // SAFETY: as in read32, on the byte's lane.
                with_legacy(a, offset, |p| unsafe { Port::<u8>::new(p).read() }).unwrap_or(u8::MAX)
            }
        }
    }

    /// A real 16-bit access: the default read-modify-write of the dword would write a
    /// neighbouring register back (and clear its write-1-to-clear bits).
    fn write16(&mut self, a: PciAddress, offset: ConfigOffset, value: u16) {
        match ecam(a) {
            Some((m, page)) => m.write16(page + u64::from(offset.get()), value),
            None => {
                // SAFETY: as in write32, on the word's byte lanes only.
                with_legacy(a, offset, |p| unsafe { Port::<u16>::new(p).write(value) });
            }
        }
    }

    fn write8(&mut self, a: PciAddress, offset: ConfigOffset, value: u8) {
        match ecam(a) {
            Some((m, page)) => m.write8(page + u64::from(offset.get()), value),
            None => {
                // SAFETY: as in write32, on one byte lane.
                with_legacy(a, offset, |p| unsafe { Port::<u8>::new(p).write(value) });
            }
        }
    }
}
