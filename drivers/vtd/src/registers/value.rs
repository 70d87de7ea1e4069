//! How each typed view is read from and written to its register: losslessly, bits the
//! view does not name included (they survive a read-modify-write).

use sluice_regs::Value;

use super::{
    Capability, EventControl, ExtendedCapability, FaultRecording, FaultStatus, GlobalCommand,
    GlobalStatus, InvalidationCompletionStatus, Iqa, Irta, QueuePointer, Version,
};

/// A newtype over its register's raw width.
macro_rules! newtype_value {
    ($($t:ident: $raw:ty),* $(,)?) => {$(
        impl Value for $t {
            type Raw = $raw;
            fn from_raw(raw: $raw) -> Self {
                $t(raw)
            }
            fn to_raw(self) -> $raw {
                self.0
            }
        }
    )*};
}

/// A bitflags type over its register's raw width.
macro_rules! flags_value {
    ($($t:ident: $raw:ty),* $(,)?) => {$(
        impl Value for $t {
            type Raw = $raw;
            fn from_raw(raw: $raw) -> Self {
                $t::from_bits_retain(raw)
            }
            fn to_raw(self) -> $raw {
                self.bits()
            }
        }
    )*};
}

newtype_value!(
    Version: u32,
    Capability: u64,
    ExtendedCapability: u64,
    Irta: u64,
    Iqa: u64,
    QueuePointer: u64,
    InvalidationCompletionStatus: u32,
);

flags_value!(
    GlobalCommand: u32,
    GlobalStatus: u32,
    FaultStatus: u32,
    EventControl: u32,
);

/// A fault recording register: 128 bits, read as two 64-bit halves, low first.
impl Value for FaultRecording {
    type Raw = u128;
    fn from_raw(raw: u128) -> Self {
        FaultRecording {
            lo: raw as u64,
            hi: (raw >> 64) as u64,
        }
    }
    fn to_raw(self) -> u128 {
        u128::from(self.hi) << 64 | u128::from(self.lo)
    }
}
