//! The shell's pure logic, shared by the kernel and its host tests:
//!
//! - `args`: one parser for every command's arguments — CPU numbers and lists, PCI
//!   addresses, irq numbers, counts with their range, words from a fixed set, flags and
//!   options — and errors that name the argument.
//! - `proc_interrupts`: `irqs --linux`, the interrupt counts in the layout of Linux's
//!   `/proc/interrupts`.

#![no_std]
#![doc = include_str!("../README.md")]

extern crate alloc;

pub mod args;
pub mod proc_interrupts;
