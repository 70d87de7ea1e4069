//! What a register holds: a raw width, or a type that converts from and to one.

mod sealed {
    pub trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
    impl Sealed for u128 {}
}

/// A width one register access (or, for `u128`, a pair of 64-bit accesses) moves.
pub trait Raw: sealed::Sealed + Copy {}
impl Raw for u32 {}
impl Raw for u64 {}
impl Raw for u128 {}

/// A register's value type: `Raw` bits converted losslessly both ways. Implemented for
/// the raw widths themselves; a bitflags type implements it with `from_bits_retain`
/// and `bits` (bits the type does not name survive a read-modify-write), a newtype
/// with its field.
///
/// ```
/// bitflags::bitflags! {
///     #[derive(Clone, Copy)]
///     pub struct Conf: u32 {
///         const ENABLE = 1 << 0;
///     }
/// }
/// impl sluice_regs::Value for Conf {
///     type Raw = u32;
///     fn from_raw(raw: u32) -> Self {
///         Conf::from_bits_retain(raw)
///     }
///     fn to_raw(self) -> u32 {
///         self.bits()
///     }
/// }
/// ```
pub trait Value: Copy {
    /// The raw width the value is read and written as.
    type Raw: Raw;
    /// The value that raw bits read from the register stand for.
    fn from_raw(raw: Self::Raw) -> Self;
    /// The raw bits to write.
    fn to_raw(self) -> Self::Raw;
}

macro_rules! raw_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            type Raw = $t;
            fn from_raw(raw: $t) -> $t {
                raw
            }
            fn to_raw(self) -> $t {
                self
            }
        }
    )*};
}

raw_value!(u32, u64, u128);
