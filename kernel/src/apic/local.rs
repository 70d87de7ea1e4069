//! The local APIC in xAPIC (MMIO) or x2APIC (MSR) mode, chosen at run time.
//!
//! x2APIC is used whenever `CPUID.1:ECX[21]` says the CPU has it (Intel SDM vol. 3,
//! 11.12): its MSR interface has no MMIO window, a 32-bit APIC id and a single
//! 64-bit ICR write (no delivery-status polling between two halves).

use sluice_regs::{
    ReadOnly, Readable, Reg, RegArray, RegisterBlock32, RegisterBlock64, Value, Writable,
};
use x86_64::registers::model_specific::Msr;

use self::reg::{
    ApicBase, Delivery, IA32_APIC_BASE, Icr, Lvt, Svr, TIMER_DIVIDE_16, X2APIC_MSR_BASE,
    XAPIC_ID_SHIFT,
};
use super::vectors;
use crate::memory::mmio::{self, Mmio};

pub mod reg;

/// CPUID.1:ECX bit 21: the CPU has x2APIC mode.
const CPUID1_ECX_X2APIC: u32 = 1 << 21;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    XApic,
    X2Apic,
}

/// The xAPIC's register page: 32-bit accesses only (SDM vol. 3A §11.4.1: each register
/// is 32 bits wide and 16-byte aligned; other accesses are undefined).
#[derive(Clone, Copy)]
struct XApicPage(Mmio);

impl RegisterBlock32 for XApicPage {
    fn read32(&self, offset: usize) -> u32 {
        self.0.read32(offset as u64)
    }
    fn write32(&self, offset: usize, value: u32) {
        self.0.write32(offset as u64, value)
    }
}

/// The x2APIC's registers, which are MSRs: the register at xAPIC offset `o` is MSR
/// 0x800 + o/16 (SDM vol. 3A §11.12.1.2). One exists only once x2APIC mode is chosen,
/// and only this module's `reg` names registers of it, each an x2APIC MSR (table 11-6);
/// a write-only one (EOI, SELF IPI), whose read faults, cannot be read (`WriteOnly`).
struct X2ApicMsrs;

impl X2ApicMsrs {
    fn msr(offset: usize) -> Msr {
        Msr::new(X2APIC_MSR_BASE + (offset >> 4) as u32)
    }
}

impl RegisterBlock32 for X2ApicMsrs {
    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: x2APIC mode is on and `offset` is a readable x2APIC register's (see
        // the type); reading one has no side effect.
        unsafe { Self::msr(offset).read() as u32 }
    }
    fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in read32; the write goes to the register `offset` names.
        unsafe { Self::msr(offset).write(u64::from(value)) }
    }
}

impl RegisterBlock64 for X2ApicMsrs {
    fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as in read32.
        unsafe { Self::msr(offset).read() }
    }
    fn write64(&self, offset: usize, value: u64) {
        // SAFETY: as in write32 (the ICR is the one 64-bit register written).
        unsafe { Self::msr(offset).write(value) }
    }
}

/// The local APIC's registers in the mode chosen: every register of `reg` is reached
/// through this, whichever the mode.
enum Access {
    XApic(XApicPage),
    X2Apic(X2ApicMsrs),
}

impl RegisterBlock32 for Access {
    fn read32(&self, offset: usize) -> u32 {
        match self {
            Access::XApic(page) => page.read32(offset),
            Access::X2Apic(msrs) => msrs.read32(offset),
        }
    }
    fn write32(&self, offset: usize, value: u32) {
        match self {
            Access::XApic(page) => page.write32(offset, value),
            Access::X2Apic(msrs) => msrs.write32(offset, value),
        }
    }
}

/// Set once by the boot CPU; every CPU uses the same mode (SDM requires consistency
/// for IPIs and interrupt remapping's destination format).
static ACCESS: spin::Once<Access> = spin::Once::new();

pub fn mode() -> Option<Mode> {
    ACCESS.get().map(|a| match a {
        Access::XApic(_) => Mode::XApic,
        Access::X2Apic(_) => Mode::X2Apic,
    })
}

pub fn cpu_has_x2apic() -> bool {
    let r = core::arch::x86_64::__cpuid(1);
    r.ecx & CPUID1_ECX_X2APIC != 0
}

/// Reads a register of this CPU's APIC (zero before the APIC is set up).
pub fn read<T: Value<Raw = u32>, A: Readable>(reg: Reg<T, A>) -> T {
    match ACCESS.get() {
        Some(access) => reg.read(access),
        None => T::from_raw(0),
    }
}

/// Writes a register of this CPU's APIC (nothing before the APIC is set up).
pub fn write<T: Value<Raw = u32>, A: Writable>(reg: Reg<T, A>, value: T) {
    if let Some(access) = ACCESS.get() {
        reg.write(access, value);
    }
}

#[derive(Debug)]
pub enum ApicError {
    Map(mmio::MmioError),
}

impl core::fmt::Display for ApicError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            ApicError::Map(e) => write!(f, "cannot map the xAPIC registers: {e}"),
        }
    }
}

/// Why the mode was chosen (for `info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeReason {
    /// The CPU has x2APIC and nothing asked to stay in xAPIC.
    CpuHasIt,
    /// The CPU lacks x2APIC.
    CpuLacksIt,
    /// The firmware's DMAR sets X2APIC_OPT_OUT and firmware left xAPIC on: honoured.
    FirmwareOptOut,
    /// The firmware handed over with x2APIC already enabled: kept (leaving x2APIC for
    /// xAPIC needs the APIC disabled first, SDM vol. 3 11.12.5, which would lose its
    /// state), even against X2APIC_OPT_OUT, as Linux does.
    EnabledByFirmware { opt_out_ignored: bool },
}

/// The mode for IA32_APIC_BASE as firmware left it (`base`), the CPU's CPUID bit and
/// the DMAR's X2APIC_OPT_OUT flag.
pub fn choose_mode(base: u64, cpu_has_x2: bool, opt_out: bool) -> (Mode, ModeReason) {
    let by_firmware =
        ApicBase::from_bits_retain(base).contains(ApicBase::ENABLE | ApicBase::X2APIC);
    match (by_firmware, cpu_has_x2, opt_out) {
        (true, _, o) => (
            Mode::X2Apic,
            ModeReason::EnabledByFirmware { opt_out_ignored: o },
        ),
        (false, false, _) => (Mode::XApic, ModeReason::CpuLacksIt),
        (false, true, true) => (Mode::XApic, ModeReason::FirmwareOptOut),
        (false, true, false) => (Mode::X2Apic, ModeReason::CpuHasIt),
    }
}

static REASON: spin::Once<ModeReason> = spin::Once::new();

pub fn mode_reason() -> Option<ModeReason> {
    REASON.get().copied()
}

/// IA32_APIC_BASE as it is now.
pub fn apic_base() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every APIC-capable CPU; reading has no effect.
    unsafe { Msr::new(IA32_APIC_BASE).read() }
}

/// QEMU test hook: does what firmware that hands over in x2APIC mode does (OVMF does
/// not), so that `choose_mode`'s path for it runs on a real (emulated) APIC.
pub fn emulate_firmware_x2apic() {
    if cpu_has_x2apic() {
        let base = ApicBase::from_bits_retain(apic_base());
        // SAFETY: xAPIC -> x2APIC is the legal transition (EN already set, then EXTD;
        // SDM vol. 3 11.12.5); nothing uses the APIC yet.
        unsafe {
            Msr::new(IA32_APIC_BASE).write((base | ApicBase::ENABLE).bits());
            Msr::new(IA32_APIC_BASE).write((base | ApicBase::ENABLE | ApicBase::X2APIC).bits());
        }
    }
}

/// Enables the boot CPU's local APIC: x2APIC if firmware already did, else if the CPU
/// has it and the DMAR does not opt out, else xAPIC (`choose_mode`).
pub fn init_bsp(lapic_phys: u64, x2apic_opt_out: bool) -> Result<Mode, ApicError> {
    let (chosen, reason) = choose_mode(apic_base(), cpu_has_x2apic(), x2apic_opt_out);
    REASON.call_once(|| reason);
    let access = if chosen == Mode::X2Apic {
        Access::X2Apic(X2ApicMsrs)
    } else {
        Access::XApic(XApicPage(
            mmio::map(lapic_phys, 4096).map_err(ApicError::Map)?,
        ))
    };
    ACCESS.call_once(|| access);
    init_this_cpu();
    Ok(mode().expect("just set"))
}

/// Brings the calling CPU's local APIC into the common mode and a known state: LINT0/1
/// masked (the 8259 is off; NMI comes by IPI), error and spurious vectors set, TPR 0.
pub fn init_this_cpu() {
    let msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every APIC-capable CPU. Enabling x2APIC from
    // xAPIC requires EN=1 first, then EXTD (SDM vol. 3, 11.12.5).
    unsafe {
        let mut m = msr;
        let base = ApicBase::from_bits_retain(m.read());
        m.write((base | ApicBase::ENABLE).bits());
        if mode() == Some(Mode::X2Apic) {
            m.write((base | ApicBase::ENABLE | ApicBase::X2APIC).bits());
        }
    }
    write(reg::TPR, 0);
    write(reg::LVT_LINT0, Lvt::delivering(Delivery::ExtInt).masked());
    write(reg::LVT_LINT1, Lvt::delivering(Delivery::Nmi));
    write(reg::LVT_ERROR, Lvt::fixed(vectors::ERROR));
    write(reg::LVT_TIMER, Lvt::fixed(0).masked());
    write(reg::SVR, Svr::disabled(vectors::SPURIOUS).enabled());
    // The ESR latches errors only after a write (SDM vol. 3, 11.5.3); clear it.
    write(reg::ESR, 0);
    write(reg::ESR, 0);
    eoi();
}

/// Software-disables this CPU's APIC (SVR.EN = 0). A disabled APIC stops accepting
/// interrupts, so any migration must happen before this.
pub fn soft_disable() {
    write(reg::SVR, Svr::disabled(vectors::SPURIOUS));
}

/// This CPU's APIC id (32-bit in x2APIC mode, bits 31:24 of the ID register in xAPIC).
pub fn id() -> u32 {
    match mode() {
        Some(Mode::X2Apic) => read(reg::ID),
        _ => read(reg::ID) >> XAPIC_ID_SHIFT,
    }
}

pub fn version() -> u32 {
    read(reg::VERSION)
}

pub fn eoi() {
    write(reg::EOI, 0);
}

/// Bit `vector` of a 256-bit register bank (IRR, ISR, TMR).
fn bit_in(bank: RegArray<u32, ReadOnly>, vector: u8) -> bool {
    bank.get(usize::from(vector / 32))
        .is_some_and(|word| read(word) & (1 << (vector % 32)) != 0)
}

/// Interrupt Request Register bit: the vector is latched and not yet delivered.
/// Accurate when read with interrupts off (what migration relies on).
pub fn irr_pending(vector: u8) -> bool {
    bit_in(reg::IRR, vector)
}

/// Trigger Mode Register bit: the vector in service was accepted level-triggered, so
/// its EOI will be broadcast to every I/O APIC (this kernel never sets the SVR's
/// suppress-broadcast bit). Read before the EOI, with interrupts off.
pub fn tmr_level(vector: u8) -> bool {
    bit_in(reg::TMR, vector)
}

/// Sends `vector` to this CPU.
pub fn self_ipi(vector: u8) {
    match ACCESS.get() {
        Some(Access::X2Apic(msrs)) => reg::SELF_IPI.write(msrs, u32::from(vector)),
        _ => {
            send_ipi(IpiDest::SelfOnly, IpiKind::Fixed(vector));
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum IpiDest {
    Apic(u32),
    SelfOnly,
    AllExcludingSelf,
}

#[derive(Clone, Copy, Debug)]
pub enum IpiKind {
    Fixed(u8),
    Nmi,
    Init,
    InitDeassert,
    Startup(u8),
}

/// Upper bound for the xAPIC "send pending" poll; real hardware clears it in < 1 µs.
const ICR_POLL_LIMIT: u32 = 1_000_000;

/// Sends an IPI. Returns false if an xAPIC never cleared delivery status.
pub fn send_ipi(dest: IpiDest, kind: IpiKind) -> bool {
    let icr = Icr::new(dest, kind);
    match ACCESS.get() {
        Some(Access::X2Apic(msrs)) => {
            // One 64-bit write sends the IPI; there is no delivery status (SDM 11.12.9).
            reg::ICR.write(msrs, icr);
            true
        }
        Some(Access::XApic(page)) => {
            reg::ICR_HIGH.write(page, icr.xapic_high());
            reg::ICR_LOW.write(page, icr.low());
            (0..ICR_POLL_LIMIT).any(|_| reg::ICR_LOW.read(page) & Icr::DELIVERY_PENDING == 0)
        }
        None => false,
    }
}

/// Starts the periodic timer: `initial` counts of the bus clock divided by 16 per tick.
pub fn start_periodic_timer(initial: u32) {
    write(reg::TIMER_DIVIDE, TIMER_DIVIDE_16);
    write(reg::LVT_TIMER, Lvt::fixed(vectors::LOCAL_TIMER).periodic());
    write(reg::TIMER_INITIAL, initial);
}

/// One-shot countdown from `initial` with the timer masked, for calibration.
pub fn start_masked_countdown(initial: u32) {
    write(reg::TIMER_DIVIDE, TIMER_DIVIDE_16);
    write(reg::LVT_TIMER, Lvt::fixed(0).masked());
    write(reg::TIMER_INITIAL, initial);
}

pub fn timer_current() -> u32 {
    read(reg::TIMER_CURRENT)
}

pub fn stop_timer() {
    write(reg::LVT_TIMER, Lvt::fixed(0).masked());
    write(reg::TIMER_INITIAL, 0);
}

/// Reads and clears the Error Status Register.
pub fn read_error() -> u32 {
    write(reg::ESR, 0);
    read(reg::ESR)
}
