//! The test models' own rules: the link's ordering (`common/link.rs`, PCI Express Base
//! §2.4.1) and the scheduler's enumeration (`common/schedule.rs`). The storage tests
//! trust both; these show they hold what they claim.

mod common;

use std::collections::BTreeSet;

use common::link::{Link, Path};
use common::schedule::Scheduler;

fn link() -> Link<&'static str, &'static str> {
    Link::default()
}

#[test]
fn memory_writes_land_in_order_and_may_pass_an_earlier_configuration_write() {
    let mut l = link();
    l.post(Path::Config, "cfg 1");
    l.post(Path::Memory, "mem 1");
    l.post(Path::Memory, "mem 2");
    assert!(l.can_land(Path::Config), "nothing posted before it");
    assert_eq!(l.land(Path::Memory), Some("mem 1"), "a posted write passes");
    assert_eq!(l.land(Path::Memory), Some("mem 2"));
    assert_eq!(l.land(Path::Memory), None);
    assert_eq!(l.land(Path::Config), Some("cfg 1"));
    assert!(!l.has_posted());
}

#[test]
fn a_configuration_write_never_passes_an_earlier_memory_write() {
    let mut l = link();
    l.post(Path::Memory, "mem 1");
    l.post(Path::Config, "cfg 1");
    l.post(Path::Config, "cfg 2");
    assert!(!l.can_land(Path::Config));
    assert_eq!(l.land(Path::Config), None);
    assert_eq!(l.land(Path::Memory), Some("mem 1"));
    assert_eq!(
        l.land(Path::Config),
        Some("cfg 1"),
        "in order among themselves"
    );
    assert_eq!(l.posted().copied().collect::<Vec<_>>(), ["cfg 2"]);
}

#[test]
fn a_memory_read_lands_the_memory_writes_a_configuration_read_lands_everything() {
    let mut l = link();
    l.post(Path::Config, "cfg 1");
    l.post(Path::Memory, "mem 1");
    l.post(Path::Config, "cfg 2");
    l.post(Path::Memory, "mem 2");
    assert_eq!(l.land_for_read(Path::Memory), ["mem 1", "mem 2"]);
    assert_eq!(
        l.posted().copied().collect::<Vec<_>>(),
        ["cfg 1", "cfg 2"],
        "an MMIO read does not flush a configuration write"
    );
    l.post(Path::Memory, "mem 3");
    assert_eq!(l.land_for_read(Path::Config), ["cfg 1", "cfg 2", "mem 3"]);
    assert!(!l.has_posted());
}

#[test]
fn messages_arrive_in_order_and_a_read_completion_pushes_all_of_them() {
    let mut l = link();
    let a = l.send("a");
    let b = l.send("b");
    let c = l.send("c");
    assert_eq!((a, b, c), (0, 1, 2));
    assert_eq!(l.arrive().map(|m| (m.id, m.message)), Some((0, "a")));
    let pushed: Vec<_> = l.push_all().into_iter().map(|m| m.message).collect();
    assert_eq!(pushed, ["b", "c"]);
    assert_eq!(l.in_flight_len(), 0);
    assert!(l.arrive().is_none());
}

/// A run whose later decisions depend on the first: 2 options; after pick 0 a single
/// option (no decision), after pick 1 three and then two — 1 + 3·2 = 7 distinct runs.
#[test]
fn the_scheduler_runs_every_combination_of_picks_once() {
    let mut s = Scheduler::new();
    let mut seen = BTreeSet::new();
    loop {
        let first = s.choose(2);
        let second = s.choose(if first == 1 { 3 } else { 1 });
        let third = if first == 1 { s.choose(2) } else { 0 };
        assert!(seen.insert((first, second, third)), "run repeated");
        if !s.advance() {
            break;
        }
    }
    assert_eq!(s.runs(), 7);
    assert_eq!(seen.len(), 7);
    assert_eq!(
        seen.iter().filter(|&&(f, _, _)| f == 0).count(),
        1,
        "a one-option decision is no branch"
    );
}

#[test]
#[should_panic(expected = "replay diverged")]
fn a_run_that_does_not_replay_its_picks_is_caught() {
    let mut s = Scheduler::new();
    s.choose(3);
    assert!(s.advance());
    s.choose(3);
    assert!(s.advance());
    s.choose(2); // replays pick 2 where only 2 options are left
}
