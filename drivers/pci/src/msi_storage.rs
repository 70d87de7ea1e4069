//! MSI message storage: the MSI capability in configuration space (PCI Local Bus 3.0
//! §6.8.1) as the interrupt core's `MsiStorage`.
//!
//! Every method is one configuration write of the register's own width — address low
//! (32), address high (32), data (16), the Mask Bits register (32) — so the device can
//! send between any two and the core's affinity paths see exactly the hardware's
//! granularity. (A 32-bit function has no upper address register: `write_addr_hi` of 0
//! writes nothing.) A function without per-vector masking (QEMU's `edu`) cannot be
//! masked at all: `mask` says `Unsupported`, and the core takes the non-maskable path.
//! With multiple messages (Multiple Message Enable 2^k) every member shares the one
//! address/data pair and the device puts the member number in the low k data bits;
//! each member masks through its own bit.
//!
//! **Flushing.** A configuration write through ECAM is posted: the CPU goes on before the
//! function has it, and what the device sent meanwhile may still be on its way up.
//! [`MsiStorage::flush`] reads Message Control back from the same function (what Linux
//! reads after an MSI write): the read is answered only after the function's earlier
//! configuration writes completed, and its completion pushes every message the function
//! sent before it (PCI Express Base §2.4.1; `tests/common/link.rs` has the rules the
//! tests model). The trait's methods stay one write each and the interrupt core's MSI
//! domain calls `flush` after each; this type's own set-up methods (`mask_all`,
//! `enable`, `disable`) flush before they return.
//!
//! The function is reached through a [`ConfigHandle`] (see [`crate::handle`]); nothing
//! else is assumed about it, so the host tests run this very code against a model device.

use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage};
use sluice_irq_core::{IrqError, Result as IrqResult};
use sluice_sync::{IrqSpinLock, LockClass};

use crate::access::ConfigAccess;
use crate::address::PciAddress;
use crate::handle::{ConfigHandle, Refusal, StorageError};
use crate::msi::{MsiCapability, MsiError};
use crate::register::ConfigWrite;

/// The class of every MSI storage's mask shadow (the kernel's lock order names it).
pub static MASK_SHADOW_CLASS: LockClass = LockClass::new("pci.msi_mask");

/// One function's MSI capability as message storage.
pub struct MsiCapStorage<C: ConfigHandle> {
    config: C,
    address: PciAddress,
    cap: MsiCapability,
    /// The Mask Bits register as last written. Masking one member is then one write of
    /// the whole register, not a read and a write; and members of one block are masked
    /// under different descriptor locks, possibly at once, so the shadow and the write
    /// that follows it are one critical section. Interrupt-safe: the core masks from
    /// interrupt handlers, the kernel's PCI code from task context with interrupts on.
    /// Lock order: a leaf, taken outside the handle's `access` (which may take the
    /// configuration-mechanism lock).
    mask_shadow: IrqSpinLock<u32>,
}

impl<C: ConfigHandle> MsiCapStorage<C> {
    /// Storage over `cap` of the function at `address`; the mask shadow starts from what
    /// the function holds now (firmware may have left bits set).
    pub fn new(config: C, address: PciAddress, cap: MsiCapability) -> Self {
        let mask = config
            .access(|a| cap.read_mask_bits(a, address))
            .ok()
            .flatten()
            .unwrap_or(0);
        Self {
            config,
            address,
            cap,
            mask_shadow: IrqSpinLock::new(&MASK_SHADOW_CLASS, mask),
        }
    }

    /// Performs one prepared write, or says why there is none.
    fn perform(&self, w: Result<ConfigWrite, MsiError>) -> Result<(), StorageError> {
        let w = w?;
        self.config.access(|a| w.apply(a, self.address))?;
        Ok(())
    }

    /// [`Self::perform`] for a write whose caller cannot take an error: reported to the
    /// handle instead.
    fn perform_or_report(&self, what: &'static str, w: Result<ConfigWrite, MsiError>) {
        if let Err(error) = self.perform(w) {
            self.report(what, error);
        }
    }

    fn report(&self, what: &'static str, error: StorageError) {
        self.config.refused(&Refusal {
            address: self.address,
            capability: "MSI",
            what,
            error,
        });
    }

    /// Sets or clears one member's mask bit with one write of the whole register.
    fn set_mask(&self, index: u32, masked: bool) -> IrqResult<()> {
        if !self.cap.control.per_vector_masking() {
            return Err(IrqError::Unsupported);
        }
        let mut shadow = self.mask_shadow.lock();
        let w = self
            .cap
            .write_vector_mask(*shadow, index, masked)
            .map_err(|_| IrqError::InvalidArgument)?;
        self.config
            .access(|a| w.apply(a, self.address))
            .map_err(|_| IrqError::InvalidState)?;
        let bit = 1u32 << index;
        *shadow = if masked {
            *shadow | bit
        } else {
            *shadow & !bit
        };
        Ok(())
    }

    /// Masks every member the function has, in one write (before its messages are first
    /// written), flushed. Nothing to do without per-vector masking.
    pub fn mask_all(&self) {
        if self.cap.control.per_vector_masking() {
            let all = u32::MAX >> (32 - self.cap.vectors_capable());
            let mut shadow = self.mask_shadow.lock();
            match self.perform(self.cap.write_mask_bits(all)) {
                Ok(()) => *shadow = all,
                Err(error) => {
                    drop(shadow);
                    self.report("mask all", error);
                    return;
                }
            }
            drop(shadow);
            self.flush_function();
        }
    }

    /// Enables MSI with 2^`log2` messages, one Message Control write, flushed (program
    /// the messages first: an enabled function may send at once).
    pub fn enable(&self, log2: u8) -> Result<(), StorageError> {
        self.perform(self.cap.write_enable(log2))?;
        self.flush_function();
        Ok(())
    }

    /// Disables MSI (Enable and Multiple Message Enable cleared), one Message Control
    /// write, flushed: once this returns the function sends no MSI, and none it sent
    /// before is still on its way.
    pub fn disable(&self) {
        if let Err(error) = self.perform(Ok(self.cap.write_disable())) {
            self.report("disable", error);
            return;
        }
        self.flush_function();
    }

    /// Reads Message Control back: every earlier write to the function has completed and
    /// every message it sent before answering has arrived once this returns. The value
    /// is not needed (a function that stopped answering reads all ones, and there is
    /// nothing better to do then than go on).
    fn flush_function(&self) {
        let _ = self
            .config
            .access(|a| a.read_reg(self.address, self.cap.control_register()));
    }

    /// The capability this storage drives.
    pub fn capability(&self) -> &MsiCapability {
        &self.cap
    }

    /// The function.
    pub fn address(&self) -> PciAddress {
        self.address
    }

    /// The handle the function's configuration space is reached through.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// Is member `index` masked at the function now (`None`: no per-vector masking, or
    /// the function did not answer)?
    pub fn masked(&self, index: u32) -> Option<bool> {
        self.bit(index, |a| self.cap.read_mask_bits(a, self.address))
    }

    /// Is member `index` pending at the function now (Pending Bits: set while a masked
    /// member wanted to send)? `None` without per-vector masking.
    pub fn pending(&self, index: u32) -> Option<bool> {
        self.bit(index, |a| self.cap.read_pending_bits(a, self.address))
    }

    fn bit(
        &self,
        index: u32,
        read: impl FnOnce(&mut C::Access) -> Result<Option<u32>, crate::ConfigError>,
    ) -> Option<bool> {
        let word = self.config.access(read).ok().flatten()?;
        (index < 32).then(|| word & (1 << index) != 0)
    }
}

impl<C: ConfigHandle> MsiStorage for MsiCapStorage<C> {
    fn caps(&self) -> MsiCaps {
        let n = self.cap.vectors_capable();
        MsiCaps {
            maskable: self.cap.control.per_vector_masking(),
            nvec: n,
            multi_vector: n > 1,
            dynamic: false,
            addr64: self.cap.control.is_64bit(),
        }
    }

    fn write_addr_lo(&self, _index: u32, value: u32) {
        self.perform_or_report("address", self.cap.write_address_low(value));
    }

    fn write_addr_hi(&self, _index: u32, value: u32) {
        // A 32-bit function has no upper register (`None`): nothing to write, and a
        // non-zero value there is refused by the capability code and reported.
        match self.cap.write_address_high(value) {
            Ok(None) => {}
            Ok(Some(w)) => self.perform_or_report("upper address", Ok(w)),
            Err(e) => self.perform_or_report("upper address", Err(e)),
        }
    }

    fn write_data(&self, _index: u32, value: u32) {
        self.perform_or_report("data", self.cap.write_data(value));
    }

    fn mask(&self, index: u32) -> IrqResult<()> {
        self.set_mask(index, true)
    }

    fn unmask(&self, index: u32) -> IrqResult<()> {
        self.set_mask(index, false)
    }

    /// Read back from the function (not a shadow): what it would send now (for a
    /// multi-message function, with the member bits as stored, i.e. clear).
    fn read(&self, _index: u32) -> MsiMsg {
        self.config
            .access(|a| read_message(a, self.address, &self.cap))
    }

    /// One configuration read of Message Control (every member shares the function).
    fn flush(&self, _index: u32) {
        self.flush_function();
    }
}

/// The message an MSI capability holds now, read with one access per register (all ones
/// where the function did not answer; the upper address 0 in a 32-bit function).
pub fn read_message<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    cap: &MsiCapability,
) -> MsiMsg {
    MsiMsg {
        addr_lo: access
            .read_reg(address, cap.address_low_register())
            .unwrap_or(u32::MAX),
        addr_hi: cap
            .address_high_register()
            .map_or(0, |r| access.read_reg(address, r).unwrap_or(u32::MAX)),
        data: u32::from(
            access
                .read_reg(address, cap.data_register())
                .unwrap_or(u16::MAX),
        ),
    }
}
