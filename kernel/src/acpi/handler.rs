//! The `acpi` crate's view of the machine: table memory through the bootloader's
//! physical-memory map, port I/O, PCI configuration access (the kernel's, `pci::config`)
//! and time.

use acpi::aml::AmlError;
use acpi::{Handle, Handler, PciAddress, PhysicalMapping};
use core::ptr::NonNull;
use x86_64::instructions::port::Port;

#[derive(Clone, Copy, Debug)]
pub struct KernelAcpiHandler;

/// AML's PCI configuration accesses go through the kernel's one configuration-space
/// path (`pci::config`); an address or offset it cannot reach reads all ones.
fn pci_read<T: sluice_pci::ConfigValue>(addr: PciAddress, offset: u16, ones: T) -> T {
    use sluice_pci::ConfigAccess;
    pci_address(addr)
        .and_then(|a| crate::pci::config::Config.read::<T>(a, offset).ok())
        .unwrap_or(ones)
}

fn pci_write<T: sluice_pci::ConfigValue>(addr: PciAddress, offset: u16, value: T) {
    use sluice_pci::ConfigAccess;
    if let Some(a) = pci_address(addr) {
        let _ = crate::pci::config::Config.write(a, offset, value);
    }
}

fn pci_address(a: PciAddress) -> Option<sluice_pci::PciAddress> {
    sluice_pci::PciAddress::new(a.segment(), a.bus(), a.device(), a.function()).ok()
}

fn mem<T>(address: usize) -> *mut T {
    crate::memory::phys_to_virt(address as u64) as *mut T
}

impl Handler for KernelAcpiHandler {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        // ACPI tables live in RAM (ACPI reclaim / NVS), which the bootloader's
        // physical-memory map covers; no new mapping is needed.
        let virt = crate::memory::phys_to_virt(physical_address as u64) as *mut T;
        PhysicalMapping {
            physical_start: physical_address,
            // SAFETY: phys_offset + address is never null for any physical address.
            virtual_start: unsafe { NonNull::new_unchecked(virt) },
            region_length: size,
            mapped_length: size,
            handler: *self,
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}

    fn read_u8(&self, address: usize) -> u8 {
        // SAFETY: the acpi crate passes addresses from firmware tables.
        unsafe { core::ptr::read_volatile(mem(address)) }
    }
    fn read_u16(&self, address: usize) -> u16 {
        // SAFETY: as read_u8.
        unsafe { core::ptr::read_volatile(mem(address)) }
    }
    fn read_u32(&self, address: usize) -> u32 {
        // SAFETY: as read_u8.
        unsafe { core::ptr::read_volatile(mem(address)) }
    }
    fn read_u64(&self, address: usize) -> u64 {
        // SAFETY: as read_u8.
        unsafe { core::ptr::read_volatile(mem(address)) }
    }
    fn write_u8(&self, address: usize, value: u8) {
        // SAFETY: as read_u8.
        unsafe { core::ptr::write_volatile(mem(address), value) }
    }
    fn write_u16(&self, address: usize, value: u16) {
        // SAFETY: as read_u8.
        unsafe { core::ptr::write_volatile(mem(address), value) }
    }
    fn write_u32(&self, address: usize, value: u32) {
        // SAFETY: as read_u8.
        unsafe { core::ptr::write_volatile(mem(address), value) }
    }
    fn write_u64(&self, address: usize, value: u64) {
        // SAFETY: as read_u8.
        unsafe { core::ptr::write_volatile(mem(address), value) }
    }
    fn read_io_u8(&self, port: u16) -> u8 {
        // SAFETY: ports named by firmware tables.
        unsafe { Port::new(port).read() }
    }
    fn read_io_u16(&self, port: u16) -> u16 {
        // SAFETY: as read_io_u8.
        unsafe { Port::new(port).read() }
    }
    fn read_io_u32(&self, port: u16) -> u32 {
        // SAFETY: as read_io_u8.
        unsafe { Port::new(port).read() }
    }
    fn write_io_u8(&self, port: u16, value: u8) {
        // SAFETY: as read_io_u8.
        unsafe { Port::new(port).write(value) }
    }
    fn write_io_u16(&self, port: u16, value: u16) {
        // SAFETY: as read_io_u8.
        unsafe { Port::new(port).write(value) }
    }
    fn write_io_u32(&self, port: u16, value: u32) {
        // SAFETY: as read_io_u8.
        unsafe { Port::new(port).write(value) }
    }
    fn read_pci_u8(&self, address: PciAddress, offset: u16) -> u8 {
        pci_read(address, offset, u8::MAX)
    }
    fn read_pci_u16(&self, address: PciAddress, offset: u16) -> u16 {
        pci_read(address, offset, u16::MAX)
    }
    fn read_pci_u32(&self, address: PciAddress, offset: u16) -> u32 {
        pci_read(address, offset, u32::MAX)
    }
    fn write_pci_u8(&self, address: PciAddress, offset: u16, value: u8) {
        pci_write(address, offset, value);
    }
    fn write_pci_u16(&self, address: PciAddress, offset: u16, value: u16) {
        pci_write(address, offset, value);
    }
    fn write_pci_u32(&self, address: PciAddress, offset: u16, value: u32) {
        pci_write(address, offset, value);
    }
    fn nanos_since_boot(&self) -> u64 {
        crate::time::nanos_since_boot()
    }
    fn stall(&self, microseconds: u64) {
        crate::time::spin_for_ns(microseconds * 1000);
    }
    fn sleep(&self, milliseconds: u64) {
        crate::time::spin_for_ns(milliseconds * 1_000_000);
    }

    // AML mutexes. Sluice never runs the AML interpreter (it reads tables only), but if
    // it did, these are real: a table of reentrant mutexes owned by CPU index.
    fn create_mutex(&self) -> Handle {
        aml_mutex::create()
    }
    fn acquire(&self, mutex: Handle, timeout: u16) -> Result<(), AmlError> {
        aml_mutex::acquire(mutex, timeout)
    }
    fn release(&self, mutex: Handle) {
        aml_mutex::release(mutex)
    }
}

mod aml_mutex {
    use acpi::Handle;
    use acpi::aml::AmlError;
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    const MAX: usize = 64;
    const FREE: u64 = u64::MAX;
    /// Per mutex: owner CPU index (FREE when unowned) in the high half, depth low.
    static STATE: [AtomicU64; MAX] = [const { AtomicU64::new(FREE) }; MAX];
    static NEXT: AtomicU32 = AtomicU32::new(0);

    pub fn create() -> Handle {
        Handle(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    pub fn acquire(m: Handle, timeout_ms: u16) -> Result<(), AmlError> {
        let Some(slot) = STATE.get(m.0 as usize) else {
            return Err(AmlError::MutexAcquireTimeout);
        };
        let me = u64::from(crate::arch::cpu::current_index()) << 32;
        let deadline = crate::time::nanos_since_boot() + u64::from(timeout_ms) * 1_000_000;
        loop {
            let cur = slot.load(Ordering::Acquire);
            let next = if cur == FREE {
                me | 1
            } else if cur & !0xffff_ffff == me {
                cur + 1 // reentrant
            } else if timeout_ms != 0xffff
                && (timeout_ms == 0 || crate::time::nanos_since_boot() >= deadline)
            {
                return Err(AmlError::MutexAcquireTimeout);
            } else {
                core::hint::spin_loop();
                continue;
            };
            if slot
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    pub fn release(m: Handle) {
        if let Some(slot) = STATE.get(m.0 as usize) {
            let cur = slot.load(Ordering::Acquire);
            if cur != FREE {
                slot.store(
                    if cur & 0xffff_ffff <= 1 {
                        FREE
                    } else {
                        cur - 1
                    },
                    Ordering::Release,
                );
            }
        }
    }
}
