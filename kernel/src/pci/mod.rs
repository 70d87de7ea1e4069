//! PCI: configuration access for the whole kernel (`config`), bound to the pure
//! `sluice-pci` crate that walks and decodes what it reads.

pub mod config;
