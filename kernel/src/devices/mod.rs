//! Kernel drivers for devices that raise interrupts (each one an interrupt source of
//! the core): the HPET comparator chain, the lost-interrupt detector.

pub mod hpet_chain;
