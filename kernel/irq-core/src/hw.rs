//! The hardware the core needs from the kernel, as traits.
//!
//! The kernel implements these against the real local APIC (xAPIC MMIO or x2APIC MSRs);
//! the simulator implements them against its model. Everything else the core touches —
//! I/O APIC RTEs, MSI capability words, IRTEs — belongs to the chips the kernel registers.

use crate::cpumask::CpuId;
use crate::vector::Vector;

/// The local APIC of the CPU the caller runs on, plus the IPI path.
///
/// Methods about "this CPU" must only be called with interrupts off on that CPU, else the
/// answer can be stale by the time it is used (REFERENCE: the IRR is accurate when read
/// with interrupts off).
pub trait LocalApic {
    /// The logical number of the CPU this code is running on.
    fn current_cpu(&self) -> CpuId;
    /// Signal end of interrupt to this CPU's local APIC (clears the highest ISR bit;
    /// Intel SDM vol. 3A §11.8.5 "Signaling Interrupt Servicing Completion").
    fn eoi(&mut self);
    /// Is `vector` pending (requested, not yet in service) in this CPU's IRR?
    /// (SDM vol. 3A §11.8.4, IRR at APIC offset 0x200–0x270 / x2APIC MSR 0x820–0x827.)
    fn irr_pending(&self, vector: Vector) -> bool;
    /// Send a fixed IPI with `vector` to `cpu` (may be this CPU: self-IPI).
    fn send_ipi(&mut self, cpu: CpuId, vector: Vector);
    /// Monotonic nanoseconds (any origin, the same on every CPU). Storm detection ages
    /// unhandled interrupts with it.
    fn now_ns(&self) -> u64;
    /// Hotplug: called once on the dying CPU after every irq was retargeted and before its
    /// IRR is scanned for interrupts to re-deliver. A message a device posted just before
    /// its retarget may still be travelling to this APIC; the scan only sees what arrived.
    /// Linux waits 1 ms here (`fixup_irqs`); a kernel may delay, or do nothing (default)
    /// and accept the window.
    fn before_irr_scan(&mut self) {}
    /// Will this CPU's EOI for `vector`, now in service, be broadcast to the I/O APICs?
    /// It is when the interrupt was accepted level-triggered: its bit in the Trigger
    /// Mode Register is set (SDM vol. 3A §11.8.4, TMR at APIC offset 0x180–0x1F0 /
    /// x2APIC MSR 0x818–0x81F; §11.8.5: "if the corresponding TMR bit is set, an EOI
    /// message is sent to all I/O APICs"). An interrupt re-delivered by IPI arrives
    /// edge-triggered, and its EOI ends nothing at the I/O APIC. Read before the EOI.
    /// The default says yes: a model without a TMR takes every level interrupt as sent
    /// by its I/O APIC.
    fn eoi_broadcasts(&self, vector: Vector) -> bool {
        let _ = vector;
        true
    }
}

/// Where an irq is delivered: a CPU, its APIC id (what goes in a message or RTE) and the
/// vector on that CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Logical CPU number.
    pub cpu: CpuId,
    /// APIC id of that CPU (xAPIC: 8 bits; x2APIC: 32 bits).
    pub apic_id: u32,
    /// Vector on that CPU.
    pub vector: Vector,
}
