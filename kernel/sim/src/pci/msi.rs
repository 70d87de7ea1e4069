//! What a function with an MSI capability does with its registers when it has an
//! interrupt to send (PCI Local Bus 3.0 §6.8.1, §6.8.3; QEMU's `msi_notify` reads them the
//! same way, at that moment):
//!
//! * nothing unless MSI Enable is set, and only members below 2^Multiple Message Enable;
//! * with per-vector masking, a masked member sets its Pending Bit instead of sending,
//!   and sends (clearing it) once unmasked ([`release`]);
//! * otherwise the message: the address registers, and the data register with its low k
//!   bits replaced by the member number (2^k members enabled).
//!
//! Shared by the simulator's PCI devices and sluice-pci's model device.

use sluice_irq_core::msi::MsiMsg;
use sluice_pci::{MsiCapability, MsiControl};

use super::fake::FakeFunction;

/// What a firing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// MSI is off (or the member is beyond Multiple Message Enable): nothing is sent.
    NotEnabled,
    /// Masked: the Pending Bit holds it.
    Latched,
    /// This message left the function.
    Sent(MsiMsg),
}

/// Message Control now.
pub fn control(f: &FakeFunction, cap: &MsiCapability) -> MsiControl {
    MsiControl(f.get16(usize::from(cap.control_register().offset())))
}

/// Members the function may send now (2^Multiple Message Enable), 0 if disabled.
pub fn enabled_members(f: &FakeFunction, cap: &MsiCapability) -> u32 {
    let c = control(f, cap);
    if c.enabled() {
        1 << c.multiple_message_enable_log2()
    } else {
        0
    }
}

/// Mask Bits now (0 without per-vector masking).
pub fn mask_bits(f: &FakeFunction, cap: &MsiCapability) -> u32 {
    cap.mask_register()
        .map_or(0, |r| f.get32(usize::from(r.offset())))
}

/// Pending Bits now (0 without per-vector masking).
pub fn pending_bits(f: &FakeFunction, cap: &MsiCapability) -> u32 {
    cap.pending_register()
        .map_or(0, |r| f.get32(usize::from(r.offset())))
}

/// The message member `member` would carry now.
pub fn message(f: &FakeFunction, cap: &MsiCapability, member: u32) -> MsiMsg {
    let n = enabled_members(f, cap).max(1);
    let data = u32::from(f.get16(usize::from(cap.data_register().offset())));
    MsiMsg {
        addr_lo: f.get32(usize::from(cap.address_low_register().offset())),
        addr_hi: cap
            .address_high_register()
            .map_or(0, |r| f.get32(usize::from(r.offset()))),
        data: (data & !(n - 1)) | member,
    }
}

/// Member `member` has an interrupt to send.
pub fn fire(f: &mut FakeFunction, cap: &MsiCapability, member: u32) -> Fired {
    if member >= enabled_members(f, cap) {
        return Fired::NotEnabled;
    }
    if mask_bits(f, cap) & (1 << member) != 0 {
        let pending = cap
            .pending_register()
            .expect("masked without per-vector masking");
        let at = usize::from(pending.offset());
        f.set32(at, f.get32(at) | 1 << member);
        return Fired::Latched;
    }
    Fired::Sent(message(f, cap, member))
}

/// After a write landed: every member pending and no longer masked sends now (its
/// Pending Bit cleared), in member order.
pub fn release(f: &mut FakeFunction, cap: &MsiCapability) -> Vec<(u32, MsiMsg)> {
    let Some(pending) = cap.pending_register() else {
        return Vec::new();
    };
    let at = usize::from(pending.offset());
    let mut sent = Vec::new();
    for member in 0..enabled_members(f, cap) {
        let bit = 1 << member;
        if pending_bits(f, cap) & bit != 0 && mask_bits(f, cap) & bit == 0 {
            f.set32(at, f.get32(at) & !bit);
            sent.push((member, message(f, cap, member)));
        }
    }
    sent
}
