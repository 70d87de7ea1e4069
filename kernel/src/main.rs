//! Sluice: an x86_64 kernel about interrupt management. `kmain` brings the boot CPU up
//! in dependency order, then hands the console to the shell.

#![no_std]
#![no_main]
#![feature(abi_x86_interrupt)]

extern crate alloc;

mod acpi;
mod apic;
mod arch;
mod console;
mod iommu;
mod irq;
mod lab;
mod memory;
mod panic;
mod pci;
mod power;
mod qemu;
mod smp;
mod sync;
mod time;

use bootloader_api::config::{BootloaderConfig, Mapping};

/// The physical-memory map gives the kernel access to RAM (page tables, ACPI tables);
/// device registers are mapped separately and uncached (memory::mmio).
pub static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut c = BootloaderConfig::new_default();
    c.mappings.physical_memory = Some(Mapping::Dynamic);
    c.kernel_stack_size = 256 * 1024;
    c
};

bootloader_api::entry_point!(kmain, config = &BOOTLOADER_CONFIG);

fn kmain(boot: &'static mut bootloader_api::BootInfo) -> ! {
    time::mark_boot();
    arch::cpu::init_bsp();
    sync::init();
    console::serial::init();
    let screen = boot.framebuffer.take().map(console::screen::init);
    log!("Sluice {} starting", env!("CARGO_PKG_VERSION"));
    console::report_screen(screen);
    time::boot_stages::stage_done("COM1 and screen");
    arch::gdt::init_bsp();
    arch::idt::load();

    let boot: &'static bootloader_api::BootInfo = boot;
    memory::init(boot);
    lab::shell::script::load(boot);
    time::boot_stages::stage_done("memory (frames, heap)");
    let platform = acpi::PLATFORM.call_once(|| acpi::discover(boot.rsdp_addr.into_option()));
    log!(
        "ACPI: {} CPUs, {} I/O APICs, {} overrides, HPET {}, DMAR {}",
        platform.cpus.len(),
        platform.io_apics.len(),
        platform.overrides.len(),
        if platform.hpet.is_some() { "yes" } else { "no" },
        if platform.tables.dmar.is_some() {
            "yes"
        } else {
            "no"
        }
    );
    time::boot_stages::stage_done("ACPI tables");
    pci::init(&platform.mcfg, platform.pci_host_bridges);
    time::boot_stages::stage_done("PCI enumeration");

    arch::pic::disable();
    if qemu::fw_cfg_file("opt/sluice/x2apic-by-firmware").is_some() {
        apic::local::emulate_firmware_x2apic();
    }
    match apic::local::init_bsp(platform.lapic_address, iommu::x2apic_opt_out()) {
        Ok(mode) => log!("local APIC: {:?} mode, id {}", mode, apic::local::id()),
        Err(e) => panic!("local APIC unusable: {}", e),
    }
    arch::cpu::set_bsp_apic_id(apic::local::id());
    time::boot_stages::stage_done("local APIC");

    if let Some(h) = platform.hpet
        && let Err(e) = time::hpet::init(h.base)
    {
        error!("HPET at {:#x}: {}; calibrating against the PIT", h.base, e);
    }
    match time::calibrate() {
        Ok(()) => log!(
            "clocks: TSC {} kHz, LAPIC timer {} kHz (against {}{})",
            time::tsc_hz() / 1000,
            time::lapic_timer_hz() / 1000,
            time::calibration_source(),
            time::calibration().map_or(alloc::string::String::new(), |c| alloc::format!(
                " over {} us, +-{} ppm",
                c.window_ns / 1000,
                c.uncertainty_ppm
            ))
        ),
        Err(e) => error!("clock calibration failed: {}; no periodic tick", e),
    }
    time::boot_stages::stage_done("HPET and clock calibration");

    // Before the interrupt core builds its domains: remapping decides their tree.
    iommu::init();
    time::boot_stages::stage_done("IOMMU units, remapping on");
    irq::domains::ioapic::init(&platform.io_apics);
    time::boot_stages::stage_done("I/O APICs");
    irq::init_system_vectors();
    if let Err(e) = irq::init(platform.cpus.len()) {
        panic!("interrupt core: {}", e);
    }
    time::boot_stages::stage_done("interrupt core and domains");
    if let Err(e) = console::init_input() {
        error!("COM1 input interrupt: {}; the shell will poll", e);
    }
    console::keyboard::init();
    time::boot_stages::stage_done("COM1 input, keyboard");
    x86_64::instructions::interrupts::enable();
    if time::lapic_timer_hz() != 0 {
        time::start_tick();
    }
    smp::init(boot);
    time::boot_stages::stage_done("AP start");
    // The interrupt core hands out vectors only on CPUs it knows are up.
    for cpu in smp::online_cpus().filter(|&c| c != 0) {
        let apic = smp::apic_id(cpu).unwrap_or(0);
        if let Err(e) = irq::cpu_online(cpu as u32, apic) {
            error!("CPU {}: interrupt core refused it: {}", cpu, e);
        }
    }
    lab::devices::probe_pci();
    time::boot_stages::stage_done("device drivers");
    // After the drivers, so device irqs are numbered alike with remapping on or off.
    irq::domains::dmar_msi::init();
    time::mark_ready();
    log!("boot complete in {} us", time::boot_ready_ns() / 1000);
    lab::shell::run()
}
