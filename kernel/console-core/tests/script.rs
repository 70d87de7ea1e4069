//! The boot-script format.

use sluice_console::script::{HEADER, ScriptError, build, parse, split_run};

#[test]
fn build_then_parse_round_trips() {
    let cmds = split_run(" info ;irqs;; test --exit\npoweroff ");
    assert_eq!(cmds, ["info", "irqs", "test --exit", "poweroff"]);
    let text = build(&cmds).unwrap();
    assert!(text.starts_with(HEADER));
    assert_eq!(parse(text.as_bytes()).unwrap(), cmds);
}

#[test]
fn comments_blanks_and_errors() {
    let ok = format!("{HEADER}\n# the report\n\ninfo\n");
    assert_eq!(parse(ok.as_bytes()).unwrap(), ["info"]);
    assert_eq!(parse(b"info\n"), Err(ScriptError::NotAScript));
    assert_eq!(parse(&[0xff, 0xfe]), Err(ScriptError::NotUtf8));
    let bad = format!("{HEADER}\ninfo\n\tx\u{7}\n");
    assert_eq!(parse(bad.as_bytes()), Err(ScriptError::BadLine(3)));
    assert_eq!(build(&["caf\u{e9}"]), Err(ScriptError::BadLine(2)));
    assert_eq!(split_run("#!sluice-script 1\n# note\ninfo"), ["info"]);
}
