pub mod explore;
pub mod model;
pub mod schedule;

// The simulated configuration space and the link live in sluice-sim, shared with the
// interrupt core's simulator.
#[allow(unused_imports)]
pub use sluice_sim::pci::{fake, link};
