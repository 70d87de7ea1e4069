//! Interrupt vectors and the one place where system vectors are defined.
//!
//! The local APIC delivers vectors 0x10..=0xff; 0x00..=0x1f are CPU exceptions (Intel SDM
//! vol. 3A §6.2), so external interrupts start at 0x20. The priority class of a vector is
//! its upper nibble (SDM vol. 3A §11.8.3 / §12.8.3 in newer editions): system vectors sit
//! at the top so IPIs and the timer pre-empt device interrupts.

use core::fmt;

/// An x86 interrupt vector (index into the IDT).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Vector(pub u8);

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0)
    }
}

/// First vector usable by external interrupts.
pub const FIRST_EXTERNAL_VECTOR: Vector = Vector(0x20);
/// Spurious-interrupt vector programmed into the SVR. Its low nibble must be 0xf on
/// older APICs (SDM vol. 3A §11.9), so 0xff is the conventional choice.
pub const SPURIOUS_VECTOR: Vector = Vector(0xff);
/// LVT error vector.
pub const ERROR_VECTOR: Vector = Vector(0xfe);
/// IPI: reschedule.
pub const RESCHEDULE_VECTOR: Vector = Vector(0xfd);
/// IPI: run a function on a set of CPUs.
pub const CALL_FUNCTION_VECTOR: Vector = Vector(0xfc);
/// IPI: run a function on one CPU.
pub const CALL_FUNCTION_SINGLE_VECTOR: Vector = Vector(0xfb);
/// IPI: stop-machine / reboot rendezvous.
pub const STOP_VECTOR: Vector = Vector(0xfa);
/// IPI: ask a CPU to free vectors left behind by completed moves (see
/// [`crate::vecdomain::VectorDomain::cleanup`]).
pub const VECTOR_CLEANUP_VECTOR: Vector = Vector(0xf9);
/// Shut-down vector: where reserved-but-not-started MSIs and shut-down managed irqs point,
/// so a stray device write lands somewhere harmless and is acknowledged silently.
pub const SHUTDOWN_VECTOR: Vector = Vector(0xef);
/// LVT timer vector.
pub const LOCAL_TIMER_VECTOR: Vector = Vector(0xec);
/// Benchmark floor: the kernel's IDT entry for it only acknowledges (EOI), so timing a
/// self-IPI to it measures interrupt entry and exit alone, beside the same path through
/// the interrupt core on a device vector.
pub const BENCH_FLOOR_VECTOR: Vector = Vector(0xf8);

/// Every vector the matrix must never hand out.
pub const SYSTEM_VECTORS: [Vector; 10] = [
    SPURIOUS_VECTOR,
    ERROR_VECTOR,
    RESCHEDULE_VECTOR,
    CALL_FUNCTION_VECTOR,
    CALL_FUNCTION_SINGLE_VECTOR,
    STOP_VECTOR,
    VECTOR_CLEANUP_VECTOR,
    SHUTDOWN_VECTOR,
    LOCAL_TIMER_VECTOR,
    BENCH_FLOOR_VECTOR,
];

/// Number of vectors an external interrupt could ever use on one CPU (0x20..=0xff).
pub const NR_EXTERNAL_VECTORS: u32 = 256 - FIRST_EXTERNAL_VECTOR.0 as u32;
/// Vectors per CPU left for devices after system vectors.
pub const NR_DEVICE_VECTORS: u32 = NR_EXTERNAL_VECTORS - SYSTEM_VECTORS.len() as u32;

/// Is `v` one of the reserved system vectors (or below the external range)?
pub fn is_system(v: Vector) -> bool {
    v < FIRST_EXTERNAL_VECTOR || SYSTEM_VECTORS.contains(&v)
}

/// A 256-bit set of vectors.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct VecMap(pub [u64; 4]);

impl VecMap {
    /// Empty set.
    pub const fn new() -> Self {
        VecMap([0; 4])
    }
    /// Vectors 0x20..=0xff that are not system vectors.
    pub fn device_vectors() -> Self {
        let mut m = VecMap::new();
        for v in FIRST_EXTERNAL_VECTOR.0..=0xff {
            if !is_system(Vector(v)) {
                m.set(Vector(v));
            }
        }
        m
    }
    /// The system vectors as a set.
    pub fn system_vectors() -> Self {
        let mut m = VecMap::new();
        for v in SYSTEM_VECTORS {
            m.set(v);
        }
        m
    }
    /// Add.
    pub fn set(&mut self, v: Vector) {
        self.0[v.0 as usize / 64] |= 1 << (v.0 % 64);
    }
    /// Remove.
    pub fn clear(&mut self, v: Vector) {
        self.0[v.0 as usize / 64] &= !(1 << (v.0 % 64));
    }
    /// Member?
    pub fn test(&self, v: Vector) -> bool {
        self.0[v.0 as usize / 64] & (1 << (v.0 % 64)) != 0
    }
    /// Cardinality.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
    /// Intersection.
    pub fn and(&self, o: &VecMap) -> VecMap {
        VecMap(core::array::from_fn(|i| self.0[i] & o.0[i]))
    }
    /// `self` minus `o`.
    pub fn and_not(&self, o: &VecMap) -> VecMap {
        VecMap(core::array::from_fn(|i| self.0[i] & !o.0[i]))
    }
    /// Union.
    pub fn or(&self, o: &VecMap) -> VecMap {
        VecMap(core::array::from_fn(|i| self.0[i] | o.0[i]))
    }
    /// Lowest member.
    pub fn first(&self) -> Option<Vector> {
        for (i, w) in self.0.iter().enumerate() {
            if *w != 0 {
                return Some(Vector((i * 64 + w.trailing_zeros() as usize) as u8));
            }
        }
        None
    }
    /// Members in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = Vector> + '_ {
        (0..=255u8).map(Vector).filter(move |v| self.test(*v))
    }
    /// Are all of `base..base+count` members? (`base + count` must be <= 256.)
    pub fn has_range(&self, base: u8, count: u32) -> bool {
        (0..count).all(|i| self.test(Vector(base + i as u8)))
    }
}
