//! Power off (ACPI S5) and reset.

use x86_64::instructions::port::Port;

/// PM1 control register fields (ACPI 6.5 §4.8.3.2.1, Table 4.13).
mod pm1_control {
    /// SLP_TYPx: the sleep type, from the DSDT's \_Sx package.
    pub const SLP_TYP_SHIFT: u16 = 10;
    pub const SLP_TYP_MASK: u16 = 0x7 << SLP_TYP_SHIFT;
    /// SLP_EN: enter the sleep state written in SLP_TYPx.
    pub const SLP_EN: u16 = 1 << 13;
}

/// The 8042 keyboard controller's command port, and the command that pulses the CPU
/// reset line (the PC/AT's "system reset" output).
const I8042_COMMAND: u16 = 0x64;
const I8042_PULSE_RESET: u8 = 0xfe;

/// Writes SLP_TYP = `typ` and SLP_EN into a PM1 control register, keeping its other bits.
///
/// # Safety
/// `port` must be a PM1 control block from the FADT; the write may power the machine off.
unsafe fn enter_sleep(port: u16, typ: u8) {
    use pm1_control::*;
    let mut port = Port::<u16>::new(port);
    // SAFETY: the caller guarantees `port` is a PM1 control register.
    unsafe {
        let v = port.read() & !SLP_TYP_MASK;
        port.write(v | (u16::from(typ) << SLP_TYP_SHIFT) | SLP_EN);
    }
}

/// Enters S5 by writing SLP_TYPx | SLP_EN to PM1a/PM1b control (ACPI 6.5, 4.8.3.2.1 and
/// 16.1.7). Returns an error message if the platform gave us no way to do it.
pub fn poweroff() -> &'static str {
    let p = &crate::acpi::platform().power;
    let (Some(a), Some((typ_a, typ_b))) = (p.pm1a_control, p.s5) else {
        return "ACPI poweroff unavailable (no PM1a control block or no \\_S5 in the DSDT)";
    };
    x86_64::instructions::interrupts::disable();
    // SAFETY: PM1x control ports come from the FADT; this write powers the machine off.
    unsafe {
        if let Some(b) = p.pm1b_control {
            enter_sleep(b, typ_b);
        }
        enter_sleep(a, typ_a);
    }
    crate::time::spin_for_ns(500_000_000);
    "the machine did not power off after the S5 write"
}

/// Resets through the FADT reset register, then the 8042 controller, then a triple
/// fault, which always works.
pub fn reset() -> ! {
    x86_64::instructions::interrupts::disable();
    if let Some((port, value)) = crate::acpi::PLATFORM.get().and_then(|p| p.power.reset_port) {
        // SAFETY: the FADT names this port and value as the reset mechanism.
        unsafe { Port::<u8>::new(port).write(value) };
        crate::time::spin_for_ns(100_000_000);
    }
    // SAFETY: this command to the 8042 pulses the CPU reset line on PCs.
    unsafe { Port::<u8>::new(I8042_COMMAND).write(I8042_PULSE_RESET) };
    crate::time::spin_for_ns(100_000_000);
    // An empty IDT turns the next interrupt into a triple fault, which resets the CPU.
    static EMPTY: x86_64::structures::idt::InterruptDescriptorTable =
        x86_64::structures::idt::InterruptDescriptorTable::new();
    EMPTY.load();
    x86_64::instructions::interrupts::int3();
    crate::panic::park_this_cpu()
}
