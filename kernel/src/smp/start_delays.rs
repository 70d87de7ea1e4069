//! How long the INIT–SIPI–SIPI sequence waits, decided once from the boot CPU's CPUID.
//!
//! The MultiProcessor Specification 1.4 (appendix B.4) holds INIT asserted for 10 ms and
//! waits 200 µs after each STARTUP IPI. Those waits date from discrete 82489DX APICs
//! and early Pentiums; Linux (`arch/x86/kernel/smpboot.c`, the INIT delay chosen at SMP
//! preparation) drops the INIT wait entirely and waits 10 µs instead of 300 µs and 200 µs
//! around each STARTUP IPI on Intel family 6 (and, since 2025, every later Intel family;
//! 6.1 checks for family 6 exactly), AMD family 0xF and later, and Hygon family 0x18 and
//! later, and keeps the 10 ms for everything else. Sluice applies
//! the same rule, and also treats a CPU that reports x2APIC as modern: x2APIC arrived
//! with Intel's Nehalem (family 6) and AMD's Zen 2 (family 0x17), long after the CPUs
//! that needed the delays, so on the known vendors this changes nothing and on another
//! vendor it is the safest sign of a recent part.
//!
//! QEMU's `qemu64` model reports "AuthenticAMD" family 0xF (family 15, model 107), so
//! the rule takes the fast path there; the boot log prints what was decided and why.

/// The waits of one start sequence, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartDelays {
    /// INIT asserted → INIT de-assert (and → first STARTUP when INIT is all there is).
    pub init_assert_ns: u64,
    /// After each STARTUP IPI, before looking whether the CPU answered.
    pub sipi_gap_ns: u64,
}

/// The MP specification's waits, for CPUs older than the rule below knows.
pub const LEGACY: StartDelays = StartDelays {
    init_assert_ns: 10_000_000,
    sipi_gap_ns: 200_000,
};
/// Linux's waits for modern CPUs: no INIT hold, 10 µs + 10 µs around each STARTUP.
pub const MODERN: StartDelays = StartDelays {
    init_assert_ns: 0,
    sipi_gap_ns: 20_000,
};

/// What the boot CPU says about itself (CPUID leaves 0 and 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuIdentity {
    pub vendor: [u8; 12],
    /// The display family: base family, plus the extended family when the base is 0xF
    /// (Intel SDM vol. 2A, CPUID leaf 1, "Family ID").
    pub family: u32,
    pub x2apic: bool,
}

impl CpuIdentity {
    pub fn of_this_cpu() -> CpuIdentity {
        let leaf0 = core::arch::x86_64::__cpuid(0);
        let mut vendor = [0u8; 12];
        vendor[0..4].copy_from_slice(&leaf0.ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&leaf0.edx.to_le_bytes());
        vendor[8..12].copy_from_slice(&leaf0.ecx.to_le_bytes());
        let leaf1 = core::arch::x86_64::__cpuid(1);
        CpuIdentity {
            vendor,
            family: display_family(leaf1.eax),
            x2apic: leaf1.ecx & (1 << 21) != 0,
        }
    }

    pub fn vendor_str(&self) -> &str {
        core::str::from_utf8(&self.vendor).unwrap_or("?")
    }
}

/// CPUID.1:EAX → display family.
pub fn display_family(eax: u32) -> u32 {
    let base = (eax >> 8) & 0xf;
    if base == 0xf {
        base + ((eax >> 20) & 0xff)
    } else {
        base
    }
}

/// Linux's rule (plus x2APIC, see the module comment): is this CPU recent enough to
/// start its siblings without the MP specification's waits?
pub fn is_modern(id: &CpuIdentity) -> bool {
    let known = match &id.vendor {
        b"GenuineIntel" => id.family >= 6,
        b"AuthenticAMD" => id.family >= 0xf,
        b"HygonGenuine" => id.family >= 0x18,
        _ => false,
    };
    known || id.x2apic
}

pub fn for_cpu(id: &CpuIdentity) -> StartDelays {
    if is_modern(id) { MODERN } else { LEGACY }
}

static CHOSEN: spin::Once<StartDelays> = spin::Once::new();

/// The waits for this machine (decided from the boot CPU on first use, and logged).
pub fn get() -> StartDelays {
    *CHOSEN.call_once(|| {
        let id = CpuIdentity::of_this_cpu();
        let d = for_cpu(&id);
        crate::log!(
            "SMP: {} family {:#x}{}: {} (INIT held {} us, {} us after each STARTUP)",
            id.vendor_str(),
            id.family,
            if id.x2apic { " with x2APIC" } else { "" },
            if d == MODERN {
                "modern CPU, no INIT wait"
            } else {
                "older CPU, MP specification waits"
            },
            d.init_assert_ns / 1000,
            d.sipi_gap_ns / 1000
        );
        d
    })
}
