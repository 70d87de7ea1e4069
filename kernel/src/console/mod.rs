//! The console: COM1 (`serial`), the UEFI framebuffer (`screen`), timestamped log
//! lines to both (`log`), and COM1 input as an interrupt of the core: ISA IRQ 4 (with
//! any MADT override) through the I/O APIC's domain, an edge flow, and a handler that
//! drains the FIFO.

pub mod i8042;
pub mod input;
pub mod keyboard;
pub mod log;
pub mod screen;
pub mod serial;

use core::sync::atomic::{AtomicU32, Ordering};
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::{CpuMask, Virq};

const COM1_ISA_IRQ: u8 = 4;
const NONE: u32 = u32::MAX;
static VIRQ: AtomicU32 = AtomicU32::new(NONE);

pub fn com1_virq() -> Option<Virq> {
    match VIRQ.load(Ordering::Relaxed) {
        NONE => None,
        v => Some(v as Virq),
    }
}

fn on_com1(_virq: Virq) -> IrqReturn {
    if crate::console::serial::handle_rx_interrupt() > 0 {
        IrqReturn::Handled
    } else {
        IrqReturn::NotHandled
    }
}

/// Routes COM1's receive interrupt (to the boot CPU) and turns it on.
pub fn init_input() -> Result<(), sluice_irq_core::IrqError> {
    let virq = crate::irq::request_isa(COM1_ISA_IRQ, "COM1", CpuMask::single(0), on_com1)?;
    VIRQ.store(virq, Ordering::Relaxed);
    crate::console::serial::enable_rx_interrupt();
    let target = crate::irq::target(virq)?;
    crate::log!(
        "COM1 input: ISA IRQ {} -> irq {} -> CPU {} vector {:#x}",
        COM1_ISA_IRQ,
        virq,
        target.cpu,
        target.vector.0
    );
    Ok(())
}

/// The boot log's line about the screen console.
pub fn report_screen(
    screen: Option<
        Result<
            (
                sluice_console::paint::Format,
                sluice_console::paint::Geometry,
            ),
            screen::ScreenError,
        >,
    >,
) {
    match screen {
        None => crate::log!("screen: no framebuffer (no GOP); console on COM1 only"),
        Some(Err(e)) => crate::warn!("screen: framebuffer unusable: {}; console on COM1 only", e),
        Some(Ok((f, g))) => crate::log!(
            "screen: {}x{} {:?} {} bytes/pixel, stride {}; {}x{} text in {}-pixel Noto Sans Mono",
            f.width,
            f.height,
            f.layout,
            f.bytes_per_pixel,
            f.stride,
            g.cols,
            g.rows,
            g.cell_h
        ),
    }
}
