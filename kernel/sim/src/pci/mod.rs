//! PCI functions as the simulator and sluice-pci's tests model them: a configuration
//! space ([`fake`]), the link between the CPU and a function with its posted writes
//! ([`link`]), what a function with an MSI capability sends ([`msi`]), and the
//! simulator's devices that are such functions, driven through sluice-pci's own message
//! storage ([`function`]).

pub mod fake;
pub mod function;
pub mod link;
pub mod msi;
