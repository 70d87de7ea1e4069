//! COM1 input routed through the I/O APIC (ISA IRQ 4, with any MADT override).

use core::sync::atomic::{AtomicU8, Ordering};

const COM1_ISA_IRQ: u8 = 4;
static VECTOR: AtomicU8 = AtomicU8::new(0);

pub fn com1_vector() -> Option<u8> {
    match VECTOR.load(Ordering::Relaxed) {
        0 => None,
        v => Some(v),
    }
}

fn on_com1() {
    crate::serial::handle_rx_interrupt();
}

/// Routes COM1's receive interrupt to the boot CPU and turns it on.
pub fn init_input() -> Result<(), crate::irq::IrqError> {
    let vector = crate::irq::free_vector().ok_or(crate::irq::IrqError::VectorInUse(0))?;
    let gsi = crate::irq::route_isa(COM1_ISA_IRQ, vector, crate::cpu::current().apic_id, "COM1", on_com1)?;
    VECTOR.store(vector, Ordering::Relaxed);
    crate::serial::enable_rx_interrupt();
    crate::log!("COM1 input: ISA IRQ {} -> GSI {} -> vector {:#x}", COM1_ISA_IRQ, gsi, vector);
    Ok(())
}
