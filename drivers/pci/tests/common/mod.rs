pub mod explore;
pub mod fake;
pub mod link;
pub mod model;
pub mod schedule;
