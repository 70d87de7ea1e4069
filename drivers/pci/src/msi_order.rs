//! The order of the hardware writes that give a function its MSI or MSI-X interrupts and
//! take them away again — the kernel's order, kept here so that the kernel and the host
//! tests (which run it against a model device that fires, posts writes and keeps
//! messages in flight) run the same code. What happens on the interrupt side in between
//! (adding the function's domain, starting and freeing irqs, which writes the messages
//! and unmasks them) is passed in as closures: the kernel's call its interrupt core, the
//! tests' a domain or a core of their own.
//!
//! The order keeps a half-set-up function silent (Linux's, `msi_capability_init` and
//! `msix_capability_init`):
//!
//! * **MSI**: disabled and every member masked before anything else; the messages written
//!   and each member unmasked as its irq starts; MSI enabled with its 2^k members only
//!   then; INTx disabled last. A function with MSI enabled is not allowed to use INTx
//!   anyway (PCI Local Bus 3.0 §6.8.1.3); the bit is for functions that do.
//! * **MSI-X**: memory decode on (the table is in a memory BAR), every entry masked, MSI-X
//!   enabled with the Function Mask set (no entry sends, yet the table can be written:
//!   some functions need MSI-X enabled before their table takes writes, as Linux's
//!   `msix_capability_init` notes), entries written and
//!   unmasked as their irqs start, then the Function Mask cleared and INTx disabled. Later
//!   entries are added to the enabled table while the others keep firing.
//! * **Taking away**: a block member's or an MSI-X entry's irq is freed first and its
//!   mask set after (its vector stays reserved, as the device may still send); the last
//!   MSI irq disables MSI *before* it is freed; the last MSI-X entry disables MSI-X with
//!   the Function Mask set after it; freeing everything sets the Function Mask first.
//!
//! Every step returns with its writes at the function and every message the function
//! sent before them arrived (the storages flush, see [`crate::msi_storage`]): once
//! `release_*` returns, nothing the function sent on a freed vector is still on its way.
//!
//! Bus Master Enable is not set here. MSI is a memory write, and a function without Bus
//! Master sends none; it is the driver's to set, with its DMA (as in Linux).

use alloc::vec::Vec;

use sluice_irq_core::msi::MsiStorage;

use crate::access::ConfigAccess;
use crate::address::PciAddress;
use crate::handle::{ConfigHandle, MmioRegion, StorageError};
use crate::header::{self, Command};
use crate::msi_storage::MsiCapStorage;
use crate::msix_storage::MsixTableStorage;

/// Why a set-up or tear-down stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderError<E> {
    /// The interrupt side's closure failed (what it had done is undone as documented).
    Irqs(E),
    /// A write the function's registers could not take.
    Storage(StorageError),
}

/// Sets `bits` in the function's Command register (if any is clear), flushed.
fn set_command<C: ConfigHandle>(
    config: &C,
    address: PciAddress,
    bits: Command,
) -> Result<(), StorageError> {
    config.access(|a| {
        header::set_command_bits(a, address, bits)?;
        a.read_reg(address, header::COMMAND)?;
        Ok(())
    })
}

/// Masks message `index` (if the storage can) and flushes the mask.
fn mask_flushed<S: MsiStorage>(storage: &S, index: u32) {
    if storage.mask(index).is_ok() {
        storage.flush(index);
    }
}

/// MSI with 2^`log2` members: made silent, `start` (which starts every irq — the
/// interrupt core writes the message and unmasks each member), then enabled and INTx
/// disabled. If `start` fails nothing more is written (it undoes its own part); if
/// enabling fails, `undo` gets what `start` returned.
pub fn set_up_msi<C: ConfigHandle, T, E>(
    storage: &MsiCapStorage<C>,
    log2: u8,
    start: impl FnOnce() -> Result<T, E>,
    undo: impl FnOnce(T),
) -> Result<T, OrderError<E>> {
    storage.disable();
    storage.mask_all();
    let irqs = start().map_err(OrderError::Irqs)?;
    if let Err(e) = storage.enable(log2) {
        undo(irqs);
        return Err(OrderError::Storage(e));
    }
    // As the kernel always did: a function that will not take INTX_DISABLE still has
    // MSI enabled, which is what counts.
    let _ = set_command(storage.config(), storage.address(), Command::INTX_DISABLE);
    Ok(irqs)
}

/// One MSI irq goes while others of the function's block stay: `free` it, then mask
/// member `index` (if the function has mask bits).
pub fn release_msi_member<C: ConfigHandle, E>(
    storage: &MsiCapStorage<C>,
    index: u32,
    free: impl FnOnce() -> Result<(), E>,
) -> Result<(), E> {
    free()?;
    mask_flushed(storage, index);
    Ok(())
}

/// The function's last MSI irqs go: MSI disabled first (flushed: nothing it sent is
/// still on its way), then `free`.
pub fn release_msi<C: ConfigHandle, E>(
    storage: &MsiCapStorage<C>,
    free: impl FnOnce() -> Result<(), E>,
) -> Result<(), E> {
    storage.disable();
    free()
}

/// MSI-X table entries `entries` get irqs, `start` starting each (the interrupt core
/// writes the entry and unmasks it). `first`: the function has no MSI-X irq yet — the
/// table is opened first (memory decode, every entry masked, MSI-X enabled with the
/// Function Mask set), `register` runs (adding the function's domain; if it fails MSI-X
/// is disabled again), and the Function Mask is cleared and INTx disabled once every
/// entry started. Otherwise the entries join an enabled table and `register` is not
/// called. If `start` fails, the entries started so far are each `stop`ped and masked
/// again, and a table opened here is disabled.
pub fn set_up_msix<C: ConfigHandle, M: MmioRegion, T, E>(
    storage: &MsixTableStorage<C, M>,
    first: bool,
    register: impl FnOnce() -> Result<(), E>,
    entries: &[u32],
    mut start: impl FnMut(u32) -> Result<T, E>,
    mut stop: impl FnMut(u32, T),
) -> Result<Vec<(u32, T)>, OrderError<E>> {
    if first {
        set_command(storage.config(), storage.address(), Command::MEMORY_SPACE)
            .map_err(OrderError::Storage)?;
        storage.mask_all();
        storage.control(true, true).map_err(OrderError::Storage)?;
        if let Err(e) = register() {
            let _ = storage.control(false, false);
            return Err(OrderError::Irqs(e));
        }
    }
    let mut started = Vec::new();
    for &entry in entries {
        match start(entry) {
            Ok(t) => started.push((entry, t)),
            Err(e) => {
                for (entry, t) in started {
                    stop(entry, t);
                    mask_flushed(storage, entry);
                }
                if first {
                    let _ = storage.control(false, false);
                }
                return Err(OrderError::Irqs(e));
            }
        }
    }
    if first {
        storage.control(true, false).map_err(OrderError::Storage)?;
        let _ = set_command(storage.config(), storage.address(), Command::INTX_DISABLE);
    }
    Ok(started)
}

/// One MSI-X entry's irq goes: `free` it, then mask the entry again; if it was the
/// function's `last`, MSI-X is disabled (with the Function Mask set) after it.
pub fn release_msix_entry<C: ConfigHandle, M: MmioRegion, E>(
    storage: &MsixTableStorage<C, M>,
    entry: u32,
    last: bool,
    free: impl FnOnce() -> Result<(), E>,
) -> Result<(), E> {
    free()?;
    mask_flushed(storage, entry);
    if last {
        let _ = storage.control(false, true);
    }
    Ok(())
}

/// Every MSI-X irq of the function goes: the Function Mask set first, then each of
/// `irqs` (entry, irq) freed (`free`) and its entry masked, then MSI-X disabled. A
/// failing `free` stops there, MSI-X left enabled and masked.
pub fn release_all_msix<C: ConfigHandle, M: MmioRegion, V: Copy, E>(
    storage: &MsixTableStorage<C, M>,
    irqs: &[(u32, V)],
    mut free: impl FnMut(V) -> Result<(), E>,
) -> Result<(), OrderError<E>> {
    storage.control(true, true).map_err(OrderError::Storage)?;
    for &(entry, irq) in irqs {
        free(irq).map_err(OrderError::Irqs)?;
        mask_flushed(storage, entry);
    }
    let _ = storage.control(false, true);
    Ok(())
}
