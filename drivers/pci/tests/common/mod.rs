pub mod explore;
pub mod fake;
pub mod model;
