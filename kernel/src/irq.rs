//! Interrupt dispatch: vector → registered source, per-CPU counts, and the wiring of
//! system vectors (timer, error, spurious) and I/O APIC lines.
//!
//! This is the thin boot-time layer; descriptors, chips and domains come from the
//! interrupt core (`sluice-irq-core`) as it is bound in.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::acpi::Trigger;
use crate::apic::{ioapic, local, vectors};

pub type Handler = fn();

#[derive(Clone, Copy)]
pub struct Source {
    pub name: &'static str,
    /// Chip chain as shown by `irqs`, e.g. "IO-APIC" or "LAPIC".
    pub chip: &'static str,
    /// Hardware number within the chip (GSI for the I/O APIC).
    pub hwirq: u32,
    pub trigger: Option<Trigger>,
    pub handler: Handler,
}

/// Vector → source, shared by all CPUs (a vector means the same thing everywhere until
/// the vector matrix takes over). Protects: the table. Lock order: innermost; never
/// taken in a handler with another lock held.
static TABLE: spin::RwLock<[Option<Source>; 256]> = spin::RwLock::new([None; 256]);

/// Interrupts on vectors with no source (counted, and logged once per vector).
static UNEXPECTED: AtomicU64 = AtomicU64::new(0);
static UNEXPECTED_LOGGED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqError {
    VectorInUse(u8),
    SystemVector(u8),
    NoSuchGsi(u32),
}

impl core::fmt::Display for IrqError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            IrqError::VectorInUse(v) => write!(f, "vector {v:#x} is already in use"),
            IrqError::SystemVector(v) => write!(f, "vector {v:#x} is a system vector"),
            IrqError::NoSuchGsi(g) => write!(f, "no I/O APIC carries GSI {g}"),
        }
    }
}

pub fn register(vector: u8, source: Source) -> Result<(), IrqError> {
    let mut t = TABLE.write();
    let slot = &mut t[vector as usize];
    if slot.is_some() {
        return Err(IrqError::VectorInUse(vector));
    }
    *slot = Some(source);
    Ok(())
}

pub fn unregister(vector: u8) -> Option<Source> {
    TABLE.write()[vector as usize].take()
}

pub fn source(vector: u8) -> Option<Source> {
    TABLE.read()[vector as usize]
}

/// Lowest vector with no source, excluding system vectors.
pub fn free_vector() -> Option<u8> {
    let t = TABLE.read();
    (vectors::FIRST_DEVICE..vectors::SHUTDOWN).find(|v| t[*v as usize].is_none() && !vectors::is_system(*v))
}

/// Called from every device-vector entry stub.
pub fn dispatch(vector: u8) {
    let pc = crate::cpu::current();
    pc.vector_counts[vector as usize].fetch_add(1, Ordering::Relaxed);
    if vector == vectors::SPURIOUS {
        return; // spurious: no EOI (SDM vol. 3, 11.9)
    }
    match source(vector) {
        Some(s) => (s.handler)(),
        None => {
            UNEXPECTED.fetch_add(1, Ordering::Relaxed);
            let word = &UNEXPECTED_LOGGED[(vector / 64) as usize];
            let bit = 1u64 << (vector % 64);
            if word.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
                crate::warn!("interrupt on unused vector {:#x} (counted; logged once)", vector);
            }
        }
    }
    local::eoi();
}

pub fn unexpected() -> u64 {
    UNEXPECTED.load(Ordering::Relaxed)
}

fn on_error() {
    let esr = local::read_error();
    crate::warn!("local APIC error, ESR {:#x}", esr);
}

/// Installs the system-vector sources on the boot CPU.
pub fn init_system_vectors() {
    let sys = |name, v: u8, handler| {
        let _ = register(v, Source { name, chip: "LAPIC", hwirq: u32::from(v), trigger: None, handler });
    };
    sys("local timer", vectors::LOCAL_TIMER, crate::time::on_tick as Handler);
    sys("APIC error", vectors::ERROR, on_error as Handler);
    sys("spurious", vectors::SPURIOUS, (|| {}) as Handler);
    sys("shutdown", vectors::SHUTDOWN, (|| crate::warn!("interrupt on the shutdown vector")) as Handler);
}

/// Routes an ISA IRQ through its I/O APIC pin (with the MADT's source override) to
/// `vector` on the CPU with APIC id `dest`, and registers its handler. The pin is left
/// unmasked.
pub fn route_isa(irq: u8, vector: u8, dest: u32, name: &'static str, handler: Handler) -> Result<u32, IrqError> {
    if vectors::is_system(vector) {
        return Err(IrqError::SystemVector(vector));
    }
    let (gsi, polarity, trigger) = crate::acpi::platform().isa_route(irq);
    let (io, pin) = ioapic::lookup(gsi).ok_or(IrqError::NoSuchGsi(gsi))?;
    register(vector, Source { name, chip: "IO-APIC", hwirq: gsi, trigger: Some(trigger), handler })?;
    io.write_rte(pin, ioapic::Rte { vector, flags: ioapic::flags_for(polarity, trigger), dest: dest as u8 });
    Ok(gsi)
}
