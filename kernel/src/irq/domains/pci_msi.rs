//! The interrupts a driver asks of a PCI function: MSI (one message, or a block of
//! 2^k) or MSI-X (any table entries, added and freed at run time), each function with
//! its own MSI domain under the plan's `PCI-MSI` group, named as Linux names them
//! (`PCI-MSI-0000:00:03.0`, `PCI-MSIX-0000:00:02.0`). The domain exists while the
//! function holds at least one irq.
//!
//! The order of the hardware writes (Linux's, and what keeps a half-set-up function
//! silent) is `sluice_pci::msi_order`'s, host-tested there against a model device with
//! posted writes and messages in flight: MSI — disabled, every member masked if it can
//! be, messages written and members unmasked as each irq starts, then Enable with
//! Multiple Message Enable; MSI-X — every entry masked, Enable with the Function Mask
//! set, entries written and unmasked as each irq starts, then the Function Mask cleared.
//! A freed MSI-X entry is masked again; the last irq's free disables the capability.
//! This file supplies the interrupt side between those writes (the function's domain,
//! its irqs) and keeps the function's state.
//!
//! Locking: a function's `irqs` lock is taken before any interrupt-core lock and held
//! across a whole request or free, so two drivers (or the shell) cannot interleave set-up
//! of one function.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;
use sluice_irq_core::domain::{DomainId, DomainOps};
use sluice_irq_core::msi::{MsiMsg, MsiStorage};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuMask, IrqAlloc, IrqError, IrqSource, Virq};
use sluice_pci::StorageError;
use sluice_pci::msi_order::{self, OrderError};

use crate::irq::Handler;
use crate::pci::Device;
use crate::pci::config::Config;
use crate::pci::msi::MsiCapStorage;
use crate::pci::msix::MsixTableStorage;

/// Which capability a function's irqs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Msi,
    Msix,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Msi => "MSI",
            Mode::Msix => "MSI-X",
        })
    }
}

/// The storage behind a function's domain (kept here too, to read messages back).
enum Storage {
    Msi(Arc<MsiDomain<MsiCapStorage>>),
    Msix(Arc<MsiDomain<MsixTableStorage>>),
}

impl Storage {
    fn mode(&self) -> Mode {
        match self {
            Storage::Msi(_) => Mode::Msi,
            Storage::Msix(_) => Mode::Msix,
        }
    }
}

/// A function's interrupts.
#[derive(Default)]
pub struct DeviceIrqs {
    storage: Option<Storage>,
    domain: Option<DomainId>,
    /// (message index, irq), in index order.
    held: Vec<(u32, Virq)>,
}

/// Why a request or free was refused. Nothing changed in any case.
#[derive(Debug)]
pub enum PciIrqError {
    NoMsi,
    NoMsix,
    /// The function already uses the other capability.
    OtherMode(Mode),
    /// MSI is set up once, whole; free it before asking again.
    MsiInUse,
    ZeroVectors,
    NotPowerOfTwo(u32),
    TooMany {
        asked: u32,
        has: u32,
    },
    /// An MSI-X entry outside the table.
    NoSuchEntry {
        entry: u32,
        table: u32,
    },
    EntryInUse(u32),
    /// The irq is not one of this function's.
    NotHeld(Virq),
    Setup(String),
    Core(IrqError),
}

impl fmt::Display for PciIrqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PciIrqError::NoMsi => write!(f, "the function has no MSI capability"),
            PciIrqError::NoMsix => write!(f, "the function has no MSI-X capability"),
            PciIrqError::OtherMode(m) => write!(f, "the function already uses {m}"),
            PciIrqError::MsiInUse => write!(f, "MSI is already set up; free it first"),
            PciIrqError::ZeroVectors => write!(f, "no vectors asked for"),
            PciIrqError::NotPowerOfTwo(n) => {
                write!(f, "{n} MSI vectors: multi-message MSI needs a power of two")
            }
            PciIrqError::TooMany { asked, has } => {
                write!(f, "{asked} vectors asked for, the function has {has}")
            }
            PciIrqError::NoSuchEntry { entry, table } => {
                write!(f, "MSI-X entry {entry} is outside the {table}-entry table")
            }
            PciIrqError::EntryInUse(e) => write!(f, "MSI-X entry {e} already has an irq"),
            PciIrqError::NotHeld(v) => write!(f, "irq {v} is not one of this function's"),
            PciIrqError::Setup(s) => f.write_str(s),
            PciIrqError::Core(e) => write!(f, "{e}"),
        }
    }
}

impl From<IrqError> for PciIrqError {
    fn from(e: IrqError) -> Self {
        PciIrqError::Core(e)
    }
}

impl From<StorageError> for PciIrqError {
    fn from(e: StorageError) -> Self {
        PciIrqError::Setup(format!("{e}"))
    }
}

/// Where a function's domain goes: under the plan's `PCI-MSI` group, or under remapping
/// that of the unit covering the function; and the prefix of its names (`IR-`).
fn parent(dev: &Device) -> Result<(DomainId, &'static str), PciIrqError> {
    let (id, remapped) = crate::irq::hierarchy::pci_msi_parent(dev).map_err(PciIrqError::Setup)?;
    Ok((id, if remapped { "IR-" } else { "" }))
}

fn source(dev: &Device, index: u32) -> IrqSource {
    IrqSource::Pci {
        function: dev.irq_function(),
        index,
    }
}

/// Adds the function's domain to the core, under `parent`.
fn add_domain(
    name: String,
    parent: DomainId,
    ops: Arc<dyn DomainOps>,
) -> Result<DomainId, PciIrqError> {
    Ok(crate::irq::with_core(|c| {
        c.add_domain(&name, parent, ops)
    })??)
}

fn remove_domain(id: DomainId) {
    if let Err(e) = crate::irq::with_core(|c| c.remove_domain(id)).and_then(|r| r) {
        crate::error!("PCI: cannot remove domain {:?}: {}", id, e);
    }
}

/// Gives a function `count` MSI vectors (1, or a power of two up to what it supports),
/// each started with `handler` on a CPU of `affinity`. Returns the irqs, member 0
/// first. MSI is enabled once every irq has started.
pub fn alloc_msi(
    dev: &Device,
    count: u32,
    affinity: &CpuMask,
    name: &str,
    handler: Handler,
) -> Result<Vec<Virq>, PciIrqError> {
    // The request itself first, then the function's state.
    let cap = dev.function.msi.ok_or(PciIrqError::NoMsi)?;
    if count == 0 {
        return Err(PciIrqError::ZeroVectors);
    }
    let has = cap.vectors_capable();
    if count > has {
        return Err(PciIrqError::TooMany { asked: count, has });
    }
    if !count.is_power_of_two() {
        return Err(PciIrqError::NotPowerOfTwo(count));
    }
    let mut st = dev.irqs.lock();
    match &st.storage {
        Some(Storage::Msix(_)) => return Err(PciIrqError::OtherMode(Mode::Msix)),
        Some(Storage::Msi(_)) => return Err(PciIrqError::MsiInUse),
        None => {}
    }
    let (group, ir) = parent(dev)?;
    let chip = if ir.is_empty() {
        "PCI-MSI"
    } else {
        "IR-PCI-MSI"
    };
    let dom = Arc::new(MsiDomain::new(
        chip,
        MsiCapStorage::new(Config, dev.address(), cap),
    ));
    let set_up = msi_order::set_up_msi(
        dom.storage(),
        count.trailing_zeros() as u8,
        || {
            let id = add_domain(format!("{ir}PCI-MSI-{}", dev.address()), group, dom.clone())?;
            let virqs = if ir.is_empty() || count == 1 {
                request_block(dev, id, count, affinity, name, handler)
            } else {
                request_remapped_block(dev, id, count, affinity, name, handler)
            };
            match virqs {
                Ok(v) => Ok((id, v)),
                Err(e) => {
                    remove_domain(id);
                    Err(e)
                }
            }
        },
        |(id, virqs)| {
            for &v in &virqs {
                let _ = crate::irq::free_irq(v);
            }
            remove_domain(id);
        },
    );
    let (id, virqs) = match set_up {
        Ok(done) => done,
        Err(OrderError::Irqs(e)) => return Err(e),
        Err(OrderError::Storage(e)) => {
            return Err(PciIrqError::Setup(format!(
                "{}: enabling MSI: {e}",
                dev.address()
            )));
        }
    };
    st.held = (0u32..).zip(virqs).collect();
    st.domain = Some(id);
    st.storage = Some(Storage::Msi(dom));
    Ok(st.held.iter().map(|&(_, v)| v).collect())
}

/// Without remapping: one call for the whole block — 2^k aligned vectors on one CPU.
fn request_block(
    dev: &Device,
    domain: DomainId,
    count: u32,
    affinity: &CpuMask,
    name: &str,
    handler: Handler,
) -> Result<Vec<Virq>, PciIrqError> {
    let req = IrqAlloc {
        count,
        // Reservation mode (a vector only once started) for single irqs, as Linux does;
        // a block is allocated whole.
        reserve: count == 1,
        ..IrqAlloc::edge(*affinity)
    };
    let first = crate::irq::request_in(domain, &source(dev, 0), &req, name, handler)?;
    Ok((first..first + count).collect())
}

/// Behind remapping: the block is 2^k contiguous IRTEs (the device's message names the
/// first; member j sends subhandle j), and every member an ordinary irq with a vector
/// and an affinity of its own.
fn request_remapped_block(
    dev: &Device,
    domain: DomainId,
    count: u32,
    affinity: &CpuMask,
    name: &str,
    handler: Handler,
) -> Result<Vec<Virq>, PciIrqError> {
    let ir = crate::iommu::unit_of_pci(dev)
        .and_then(crate::irq::hierarchy::ir_domain)
        .ok_or_else(|| PciIrqError::Setup(format!("{}: no remapping unit", dev.address())))?;
    let function = dev.irq_function();
    ir.reserve_block(&function, count)?;
    let req = IrqAlloc {
        reserve: true,
        ..IrqAlloc::edge(*affinity)
    };
    let mut got = Vec::new();
    for j in 0..count {
        match crate::irq::request_in(domain, &source(dev, j), &req, name, handler) {
            Ok(v) => got.push(v),
            Err(e) => {
                // Freeing the members gives the block back with the last of them.
                for &v in &got {
                    let _ = crate::irq::free_irq(v);
                }
                ir.abandon_block(&function);
                return Err(e.into());
            }
        }
    }
    Ok(got)
}

/// Gives MSI-X table entries `entries` an irq each, started with `handler`. The first
/// request enables MSI-X; later ones add entries while the others keep firing.
pub fn alloc_msix(
    dev: &Device,
    entries: &[u32],
    affinity: &CpuMask,
    name: &str,
    handler: Handler,
) -> Result<Vec<Virq>, PciIrqError> {
    let cap = dev.function.msix.ok_or(PciIrqError::NoMsix)?;
    if entries.is_empty() {
        return Err(PciIrqError::ZeroVectors);
    }
    let table = cap.table_size();
    if let Some(&e) = entries.iter().find(|&&e| e >= table) {
        return Err(PciIrqError::NoSuchEntry { entry: e, table });
    }
    let mut st = dev.irqs.lock();
    if let Some(Storage::Msi(_)) = &st.storage {
        return Err(PciIrqError::OtherMode(Mode::Msi));
    }
    for (i, &e) in entries.iter().enumerate() {
        if st.held.iter().any(|&(x, _)| x == e) || entries[..i].contains(&e) {
            return Err(PciIrqError::EntryInUse(e));
        }
    }
    // The function's domain: the one its enabled table has, or a new one over the table
    // mapped now (mapping touches no hardware; the order below opens the table).
    let (dom, registration) = match (&st.storage, st.domain) {
        (Some(Storage::Msix(d)), Some(_)) => (d.clone(), None),
        _ => {
            let (group, ir) = parent(dev)?;
            let storage = crate::pci::msix::map(dev, cap).map_err(PciIrqError::Setup)?;
            let chip = if ir.is_empty() {
                "PCI-MSIX"
            } else {
                "IR-PCI-MSIX"
            };
            let name = format!("{ir}PCI-MSIX-{}", dev.address());
            (Arc::new(MsiDomain::new(chip, storage)), Some((name, group)))
        }
    };
    let first = registration.is_some();
    let id = Cell::new(st.domain);
    let req = IrqAlloc {
        reserve: true,
        ..IrqAlloc::edge(*affinity)
    };
    let set_up = msi_order::set_up_msix(
        dom.storage(),
        first,
        || {
            if let Some((domain_name, group)) = registration {
                id.set(Some(add_domain(domain_name, group, dom.clone())?));
            }
            Ok(())
        },
        entries,
        |e| {
            let id = id.get().ok_or(PciIrqError::Core(IrqError::InvalidState))?;
            Ok(crate::irq::request_in(
                id,
                &source(dev, e),
                &req,
                name,
                handler,
            )?)
        },
        |_, v| {
            let _ = crate::irq::free_irq(v);
        },
    );
    let got = match set_up {
        Ok(got) => got,
        Err(OrderError::Irqs(e)) => {
            // The order disabled a table it opened; the domain added for it goes too.
            if first && let Some(id) = id.get() {
                remove_domain(id);
            }
            return Err(e);
        }
        Err(OrderError::Storage(e)) => return Err(e.into()),
    };
    if first {
        st.storage = Some(Storage::Msix(dom));
        st.domain = id.get();
    }
    st.held.extend(got.iter().copied());
    st.held.sort_unstable();
    Ok(got.into_iter().map(|(_, v)| v).collect())
}

/// Frees one irq of the function (an MSI-X entry, an MSI block's member, the single MSI
/// irq). The last one disables the capability and removes the function's domain.
pub fn free(dev: &Device, virq: Virq) -> Result<(), PciIrqError> {
    let mut st = dev.irqs.lock();
    let at = st
        .held
        .iter()
        .position(|&(_, v)| v == virq)
        .ok_or(PciIrqError::NotHeld(virq))?;
    let index = st.held[at].0;
    let last = st.held.len() == 1;
    let free = || crate::irq::free_irq(virq);
    match &st.storage {
        // A member of a block goes alone: its vector stays reserved in the block (the
        // device may still send its number) and its mask bit, if it has one, is set.
        Some(Storage::Msi(d)) if !last => msi_order::release_msi_member(d.storage(), index, free)?,
        Some(Storage::Msi(d)) => msi_order::release_msi(d.storage(), free)?,
        Some(Storage::Msix(d)) => msi_order::release_msix_entry(d.storage(), index, last, free)?,
        None => return Err(PciIrqError::NotHeld(virq)),
    }
    st.held.remove(at);
    if st.held.is_empty() {
        teardown(&mut st);
    }
    Ok(())
}

/// Frees every irq the function holds.
pub fn free_all(dev: &Device) -> Result<(), PciIrqError> {
    let mut st = dev.irqs.lock();
    match &st.storage {
        None => return Ok(()),
        Some(Storage::Msi(d)) => msi_order::release_msi(d.storage(), || {
            st.held
                .iter()
                .try_for_each(|&(_, v)| crate::irq::free_irq(v))
        })?,
        Some(Storage::Msix(d)) => {
            msi_order::release_all_msix(d.storage(), &st.held, crate::irq::free_irq).map_err(
                |e| match e {
                    OrderError::Irqs(e) => PciIrqError::from(e),
                    OrderError::Storage(e) => PciIrqError::from(e),
                },
            )?
        }
    }
    st.held.clear();
    teardown(&mut st);
    Ok(())
}

/// The function holds no irq any more (the order disabled the capability): its domain
/// goes.
fn teardown(st: &mut DeviceIrqs) {
    if let Some(id) = st.domain.take() {
        remove_domain(id);
    }
    st.storage = None;
}

/// The function's irqs: (message index, irq), in index order.
pub fn held(dev: &Device) -> Vec<(u32, Virq)> {
    dev.irqs.lock().held.clone()
}

/// Runs `f` on the message storage behind `virq` and the irq's message index, under the
/// function's irq lock, if a PCI function holds `virq` (for `bench affinity`, whose
/// floors write the storage's registers without the interrupt core).
pub fn with_storage<R>(virq: Virq, f: impl FnOnce(&dyn MsiStorage, u32, usize) -> R) -> Option<R> {
    for dev in crate::pci::devices() {
        let st = dev.irqs.lock();
        let Some(&(index, _)) = st.held.iter().find(|&&(_, v)| v == virq) else {
            continue;
        };
        let held = st.held.len();
        return Some(match st.storage.as_ref()? {
            Storage::Msi(d) => f(d.storage(), index, held),
            Storage::Msix(d) => f(d.storage(), index, held),
        });
    }
    None
}

/// What a PCI irq's storage holds now, read back from the function.
pub struct StoredMessage {
    pub mode: Mode,
    /// MSI message number or MSI-X entry.
    pub index: u32,
    pub message: MsiMsg,
    /// Masked at the function (`None`: the storage has no mask).
    pub masked: Option<bool>,
    /// Pending at the function (MSI-X PBA, MSI Pending Bits).
    pub pending: Option<bool>,
}

/// The function and message behind `virq`, if a PCI function holds it.
pub fn stored_message(virq: Virq) -> Option<(&'static Device, StoredMessage)> {
    for dev in crate::pci::devices() {
        let st = dev.irqs.lock();
        let Some(&(index, _)) = st.held.iter().find(|&&(_, v)| v == virq) else {
            continue;
        };
        let m = match st.storage.as_ref()? {
            Storage::Msi(d) => {
                let s = d.storage();
                let cap = s.capability();
                let bit = |r: Option<u32>| r.map(|x| x & (1 << index) != 0);
                let mut c = Config;
                StoredMessage {
                    mode: Mode::Msi,
                    index,
                    message: s.read(index),
                    masked: bit(cap.read_mask_bits(&mut c, dev.address()).ok().flatten()),
                    pending: bit(cap.read_pending_bits(&mut c, dev.address()).ok().flatten()),
                }
            }
            Storage::Msix(d) => {
                let s = d.storage();
                StoredMessage {
                    mode: Mode::Msix,
                    index,
                    message: s.read(index),
                    masked: Some(s.masked(index)),
                    pending: Some(s.pending(index)),
                }
            }
        };
        return Some((dev, m));
    }
    None
}

/// The mode a function's irqs use now, if any.
pub fn mode(dev: &Device) -> Option<Mode> {
    dev.irqs.lock().storage.as_ref().map(Storage::mode)
}
