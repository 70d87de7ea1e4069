//! The local APIC in xAPIC (MMIO) or x2APIC (MSR) mode, chosen at run time.
//!
//! x2APIC is used whenever CPUID.1:ECX[21] says the CPU has it (Intel SDM vol. 3,
//! 11.12): its MSR interface has no MMIO window, a 32-bit APIC id and a single
//! 64-bit ICR write (no delivery-status polling between two halves).

use x86_64::registers::model_specific::Msr;

use super::vectors;
use crate::memory::mmio::{self, Mmio};

/// Register offsets in the xAPIC MMIO page; the x2APIC MSR is 0x800 + offset/16.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum Reg {
    Id = 0x20,
    Version = 0x30,
    Tpr = 0x80,
    Eoi = 0xb0,
    Svr = 0xf0,
    Irr0 = 0x200,
    Esr = 0x280,
    IcrLow = 0x300,
    IcrHigh = 0x310,
    LvtTimer = 0x320,
    LvtLint0 = 0x350,
    LvtLint1 = 0x360,
    LvtError = 0x370,
    TimerInitial = 0x380,
    TimerCurrent = 0x390,
    TimerDivide = 0x3e0,
}

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TIMER_PERIODIC: u32 = 1 << 17;
const LVT_DELIVERY_NMI: u32 = 0b100 << 8;
const LVT_DELIVERY_EXTINT: u32 = 0b111 << 8;
/// Divide the timer's input clock by 16 (SDM vol. 3, figure 11-10: 0b0011).
const TIMER_DIVIDE_16: u32 = 0b0011;
const X2APIC_SELF_IPI_MSR: u32 = 0x83f;
/// x2APIC registers are MSRs 0x800 + (xAPIC offset / 16) (SDM vol. 3A §11.12.1.2).
const X2APIC_MSR_BASE: u32 = 0x800;

impl Reg {
    /// This register's x2APIC MSR.
    const fn msr(self) -> u32 {
        X2APIC_MSR_BASE + (self as u32 >> 4)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    XApic,
    X2Apic,
}

enum Access {
    XApic(Mmio),
    X2Apic,
}

/// Set once by the boot CPU; every CPU uses the same mode (SDM requires consistency
/// for IPIs and interrupt remapping's destination format).
static ACCESS: spin::Once<Access> = spin::Once::new();

pub fn mode() -> Option<Mode> {
    ACCESS.get().map(|a| match a {
        Access::XApic(_) => Mode::XApic,
        Access::X2Apic => Mode::X2Apic,
    })
}

pub fn cpu_has_x2apic() -> bool {
    let r = core::arch::x86_64::__cpuid(1);
    r.ecx & (1 << 21) != 0
}

pub fn read(reg: Reg) -> u32 {
    match ACCESS.get() {
        Some(Access::XApic(m)) => m.read32(reg as u64),
        // SAFETY: x2APIC MSRs 0x800.. exist once x2APIC mode is on; reading has no side effect.
        Some(Access::X2Apic) => unsafe { Msr::new(reg.msr()).read() as u32 },
        None => 0,
    }
}

pub fn write(reg: Reg, value: u32) {
    match ACCESS.get() {
        Some(Access::XApic(m)) => m.write32(reg as u64, value),
        // SAFETY: as in read; writes go to the register named by `reg`.
        Some(Access::X2Apic) => unsafe { Msr::new(reg.msr()).write(u64::from(value)) },
        None => {}
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
        base & (APIC_BASE_ENABLE | APIC_BASE_X2APIC) == APIC_BASE_ENABLE | APIC_BASE_X2APIC;
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
        let base = apic_base();
        // SAFETY: xAPIC -> x2APIC is the legal transition (EN already set, then EXTD;
        // SDM vol. 3 11.12.5); nothing uses the APIC yet.
        unsafe {
            Msr::new(IA32_APIC_BASE).write(base | APIC_BASE_ENABLE);
            Msr::new(IA32_APIC_BASE).write(base | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
        }
    }
}

/// Enables the boot CPU's local APIC: x2APIC if firmware already did, else if the CPU
/// has it and the DMAR does not opt out, else xAPIC (`choose_mode`).
pub fn init_bsp(lapic_phys: u64, x2apic_opt_out: bool) -> Result<Mode, ApicError> {
    let (chosen, reason) = choose_mode(apic_base(), cpu_has_x2apic(), x2apic_opt_out);
    REASON.call_once(|| reason);
    let access = if chosen == Mode::X2Apic {
        Access::X2Apic
    } else {
        Access::XApic(mmio::map(lapic_phys, 4096).map_err(ApicError::Map)?)
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
        let base = m.read();
        m.write(base | APIC_BASE_ENABLE);
        if mode() == Some(Mode::X2Apic) {
            m.write(base | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
        }
    }
    write(Reg::Tpr, 0);
    write(Reg::LvtLint0, LVT_MASKED | LVT_DELIVERY_EXTINT);
    write(Reg::LvtLint1, LVT_DELIVERY_NMI);
    write(Reg::LvtError, u32::from(vectors::ERROR));
    write(Reg::LvtTimer, LVT_MASKED);
    write(Reg::Svr, SVR_ENABLE | u32::from(vectors::SPURIOUS));
    // The ESR latches errors only after a write (SDM vol. 3, 11.5.3); clear it.
    write(Reg::Esr, 0);
    write(Reg::Esr, 0);
    eoi();
}

/// Software-disables this CPU's APIC (SVR.EN = 0). A disabled APIC stops accepting
/// interrupts, so any migration must happen before this.
pub fn soft_disable() {
    write(Reg::Svr, u32::from(vectors::SPURIOUS));
}

/// This CPU's APIC id (32-bit in x2APIC mode, bits 31:24 of the ID register in xAPIC).
pub fn id() -> u32 {
    match mode() {
        Some(Mode::X2Apic) => read(Reg::Id),
        _ => read(Reg::Id) >> 24,
    }
}

pub fn version() -> u32 {
    read(Reg::Version)
}

pub fn eoi() {
    write(Reg::Eoi, 0);
}

/// Bit `vector` of a 256-bit register bank (IRR, ISR, TMR): eight 32-bit registers 16
/// bytes apart in the xAPIC page, consecutive MSRs in x2APIC mode (SDM vol. 3A §11.8.4).
fn bit_in(base: Reg, vector: u8) -> bool {
    let offset = base as u32 + u32::from(vector / 32) * 0x10;
    let word = match ACCESS.get() {
        Some(Access::XApic(m)) => m.read32(u64::from(offset)),
        // SAFETY: IRR/ISR/TMR MSRs are read-only status registers.
        Some(Access::X2Apic) => unsafe {
            Msr::new(base.msr() + u32::from(vector / 32)).read() as u32
        },
        None => 0,
    };
    word & (1 << (vector % 32)) != 0
}

/// Interrupt Request Register bit: the vector is latched and not yet delivered.
/// Accurate when read with interrupts off (what migration relies on).
pub fn irr_pending(vector: u8) -> bool {
    bit_in(Reg::Irr0, vector)
}

/// Sends `vector` to this CPU.
pub fn self_ipi(vector: u8) {
    match mode() {
        // SAFETY: the x2APIC SELF IPI MSR takes a vector (SDM vol. 3, 11.12.11).
        Some(Mode::X2Apic) => unsafe { Msr::new(X2APIC_SELF_IPI_MSR).write(u64::from(vector)) },
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

const ICR_DELIVERY_PENDING: u32 = 1 << 12;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_TRIGGER_LEVEL: u32 = 1 << 15;
/// Upper bound for the xAPIC "send pending" poll; real hardware clears it in < 1 µs.
const ICR_POLL_LIMIT: u32 = 1_000_000;

/// Sends an IPI. Returns false if an xAPIC never cleared delivery status.
pub fn send_ipi(dest: IpiDest, kind: IpiKind) -> bool {
    let (mode_bits, vector) = match kind {
        IpiKind::Fixed(v) => (0, v),
        IpiKind::Nmi => (0b100 << 8, 0),
        IpiKind::Init => ((0b101 << 8) | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL, 0),
        IpiKind::InitDeassert => ((0b101 << 8) | ICR_TRIGGER_LEVEL, 0),
        IpiKind::Startup(page) => (0b110 << 8, page),
    };
    let level = if matches!(kind, IpiKind::InitDeassert) {
        0
    } else {
        ICR_LEVEL_ASSERT
    };
    let (shorthand, apic) = match dest {
        IpiDest::Apic(id) => (0, id),
        IpiDest::SelfOnly => (0b01 << 18, 0),
        IpiDest::AllExcludingSelf => (0b11 << 18, 0),
    };
    let low = u32::from(vector) | mode_bits | level | shorthand;
    match mode() {
        Some(Mode::X2Apic) => {
            // SAFETY: one 64-bit write to the x2APIC ICR MSR sends the IPI (SDM 11.12.9).
            unsafe { Msr::new(Reg::IcrLow.msr()).write((u64::from(apic) << 32) | u64::from(low)) };
            true
        }
        Some(Mode::XApic) => {
            write(Reg::IcrHigh, apic << 24);
            write(Reg::IcrLow, low);
            (0..ICR_POLL_LIMIT).any(|_| read(Reg::IcrLow) & ICR_DELIVERY_PENDING == 0)
        }
        None => false,
    }
}

/// Starts the periodic timer: `initial` counts of the bus clock divided by 16 per tick.
pub fn start_periodic_timer(initial: u32) {
    write(Reg::TimerDivide, TIMER_DIVIDE_16);
    write(
        Reg::LvtTimer,
        u32::from(vectors::LOCAL_TIMER) | LVT_TIMER_PERIODIC,
    );
    write(Reg::TimerInitial, initial);
}

/// One-shot countdown from `initial` with the timer masked, for calibration.
pub fn start_masked_countdown(initial: u32) {
    write(Reg::TimerDivide, TIMER_DIVIDE_16);
    write(Reg::LvtTimer, LVT_MASKED);
    write(Reg::TimerInitial, initial);
}

pub fn timer_current() -> u32 {
    read(Reg::TimerCurrent)
}

pub fn stop_timer() {
    write(Reg::LvtTimer, LVT_MASKED);
    write(Reg::TimerInitial, 0);
}

/// Reads and clears the Error Status Register.
pub fn read_error() -> u32 {
    write(Reg::Esr, 0);
    read(Reg::Esr)
}
