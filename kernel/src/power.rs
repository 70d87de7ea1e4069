//! Power off (ACPI S5) and reset.

use x86_64::instructions::port::Port;

const SLP_EN: u16 = 1 << 13;

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
            let mut port = Port::<u16>::new(b);
            let v = port.read() & !(0x7 << 10);
            port.write(v | (u16::from(typ_b) << 10) | SLP_EN);
        }
        let mut port = Port::<u16>::new(a);
        let v = port.read() & !(0x7 << 10);
        port.write(v | (u16::from(typ_a) << 10) | SLP_EN);
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
    // SAFETY: 0xFE to the 8042 command port pulses the CPU reset line on PCs.
    unsafe { Port::<u8>::new(0x64).write(0xfe) };
    crate::time::spin_for_ns(100_000_000);
    // An empty IDT turns the next interrupt into a triple fault, which resets the CPU.
    static EMPTY: x86_64::structures::idt::InterruptDescriptorTable =
        x86_64::structures::idt::InterruptDescriptorTable::new();
    EMPTY.load();
    x86_64::instructions::interrupts::int3();
    crate::panic::park_this_cpu()
}
