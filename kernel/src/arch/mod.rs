//! The x86_64 CPU itself: descriptor tables, the interrupt descriptor table and its
//! exception reports, the legacy PIC (only ever masked), per-CPU state, stack traces.

pub mod backtrace;
pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod pic;
