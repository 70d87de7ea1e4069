//! The lab: everything that watches, drives and tests the interrupt machinery rather
//! than being part of it — the shell, the in-kernel tests, the benchmarks, the stress
//! and storm harnesses, and the drivers of QEMU's test devices that only they use. The
//! mechanism (the rest of the kernel) never calls into the lab, except to start the
//! shell and to probe the lab's devices at boot.

pub mod bench;
pub mod devices;
pub mod hotplug_stress;
pub mod ktest;
pub mod msi_chains;
pub mod msi_storm;
pub mod shell;
