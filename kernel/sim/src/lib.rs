//! Host-only test tooling shared by the interrupt layer's crates.
//!
//! * [`vtd`]: a model of a VT-d remapping unit (registers, invalidation queue, the
//!   lookup with an interrupt entry cache), used by `sluice-vtd`'s tests.

pub mod vtd;
