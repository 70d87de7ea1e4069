//! The argument parser over every kind of argument, good and bad input, options in any
//! place, and words left over — with the exact error text the shell prints.

use sluice_irq_core::CpuMask;
use sluice_pci::PciAddress;
use sluice_shell::args::{
    ArgError, Args, Bdf, Count, Cpu, CpuList, Given, Irq, Kind, Number, OneOf, Opt, Word, none,
};

/// The error text of reading `words` as one required `kind`.
fn req_err<'a, K: Kind<'a>>(words: &[&'a str], kind: K) -> String
where
    K::Value: std::fmt::Debug,
{
    Args::new(words).req(kind).unwrap_err().to_string()
}

#[test]
fn cpu_numbers() {
    let mut a = Args::new(&["0", "7", "3"]);
    assert_eq!(a.req(Cpu::ANY), Ok(0));
    assert_eq!(a.req(Cpu::below(8)), Ok(7));
    assert_eq!(a.req(Cpu::below(4)), Ok(3));
    assert_eq!(a.finish(), Ok(()));
    assert_eq!(req_err(&[], Cpu::ANY), "missing CPU number");
    assert_eq!(req_err(&["one"], Cpu::ANY), "'one' is not a CPU number");
    assert_eq!(req_err(&["1.5"], Cpu::ANY), "'1.5' is not a CPU number");
    assert_eq!(req_err(&["-1"], Cpu::ANY), "'-1' is not a CPU number");
    assert_eq!(
        req_err(&["99"], Cpu::below(2)),
        "CPU 99 does not exist (this machine has 2)"
    );
    assert_eq!(
        req_err(&["2"], Cpu::below(2)),
        "CPU 2 does not exist (this machine has 2)"
    );
    assert_eq!(Args::new(&["99"]).req(Cpu::ANY), Ok(99));
}

#[test]
fn cpu_lists() {
    let four = CpuList { cpus: 4 };
    let mut want = CpuMask::new();
    for c in [0, 1, 2, 3] {
        want.set(c);
    }
    assert_eq!(Args::new(&["0-3"]).req(four), Ok(want));
    let mut want = CpuMask::new();
    for c in [0, 2, 3] {
        want.set(c);
    }
    assert_eq!(Args::new(&["0,2-3"]).req(four), Ok(want));
    assert_eq!(Args::new(&["1"]).req(four), Ok(CpuMask::single(1)));
    for bad in ["", "x", "3-1", "1,", ",1", "1--2", "0-"] {
        let e = Args::new(&[bad]).req(four).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("'{bad}' is not a CPU list (e.g. 0 or 0,2-3)")
        );
    }
    assert_eq!(
        req_err(&["0,4"], four),
        "CPU 4 does not exist (this machine has 4)"
    );
    assert_eq!(
        req_err(&["2-6"], four),
        "CPU 4 does not exist (this machine has 4)"
    );
    assert_eq!(req_err(&[], four), "missing CPU list");
}

#[test]
fn pci_addresses_in_both_forms() {
    let a: PciAddress = "0000:00:03.0".parse().unwrap();
    assert_eq!(Args::new(&["0000:00:03.0"]).req(Bdf), Ok(a));
    assert_eq!(Args::new(&["00:03.0"]).req(Bdf), Ok(a));
    let b = Args::new(&["0001:81:1f.7"]).req(Bdf).unwrap();
    assert_eq!(
        (b.segment(), b.bus(), b.device(), b.function()),
        (1, 0x81, 0x1f, 7)
    );
    assert_eq!(req_err(&[], Bdf), "missing PCI address");
    let e = req_err(&["zz"], Bdf);
    assert!(
        e.starts_with("'zz': not a PCI address") && e.ends_with("(e.g. 0000:00:03.0)"),
        "{e}"
    );
    // The address parser's own reason is kept: a device number above 0x1f.
    let e = req_err(&["00:20.0"], Bdf);
    assert!(e.contains("device 0x20 is out of range"), "{e}");
    let e = req_err(&["00:03.8"], Bdf);
    assert!(e.contains("function 0x8 is out of range"), "{e}");
}

#[test]
fn irq_numbers() {
    assert_eq!(Args::new(&["4"]).req(Irq), Ok(4));
    assert_eq!(Args::new(&["4294967295"]).req(Irq), Ok(u32::MAX));
    assert_eq!(req_err(&[], Irq), "missing irq number");
    assert_eq!(req_err(&["x"], Irq), "'x' is not an irq number");
    assert_eq!(
        req_err(&["4294967296"], Irq),
        "'4294967296' is not an irq number"
    );
}

#[test]
fn counts_with_their_range_and_default() {
    let c = Count::new("COUNT", "count", 100, 1000);
    assert_eq!(Args::new(&["100"]).req(c), Ok(100));
    assert_eq!(Args::new(&["1000"]).req(c), Ok(1000));
    for bad in ["99", "1001", "0", "x", "", "18446744073709551616"] {
        assert_eq!(
            req_err(&[bad], c),
            format!("COUNT must be 100..=1000, not '{bad}'")
        );
    }
    // Negative numbers are values, not options: the range names them.
    assert_eq!(req_err(&["-5"], c), "COUNT must be 100..=1000, not '-5'");
    assert_eq!(Args::new(&[]).opt(c).map(|v| v.unwrap_or(500)), Ok(500));
    let cycles = Count::new("CYCLES", "cycle count", 1, 100_000);
    assert_eq!(req_err(&[], cycles), "missing cycle count");
}

#[test]
fn plain_numbers_and_words() {
    let entry = Number::<u32>::new("entry number");
    assert_eq!(Args::new(&["3"]).req(entry), Ok(3));
    assert_eq!(req_err(&["e"], entry), "'e' is not an entry number");
    assert_eq!(req_err(&[], entry), "missing entry number");
    let vectors = Number::<u32>::new("vector count");
    assert_eq!(req_err(&["x"], vectors), "'x' is not a vector count");
    assert_eq!(Args::new(&["anything"]).req(Word("FILTER")), Ok("anything"));
    assert_eq!(req_err(&[], Word("FILTER")), "missing FILTER");
}

#[test]
fn one_of_a_set() {
    const SUB: OneOf = OneOf {
        what: "subcommand",
        choices: &["start", "stop"],
    };
    assert_eq!(Args::new(&["stop"]).req(SUB), Ok("stop"));
    assert_eq!(req_err(&["go"], SUB), "unknown subcommand 'go'");
    assert_eq!(req_err(&["Start"], SUB), "unknown subcommand 'Start'");
    assert_eq!(req_err(&[], SUB), "missing subcommand");
}

#[test]
fn keywords_are_optional_and_read_only_when_they_match() {
    let mut a = Args::new(&["bench", "20"]);
    assert!(!a.keyword("nmi"));
    assert!(a.keyword("bench"));
    assert_eq!(a.req(Number::<u64>::new("count")), Ok(20));
    assert!(!a.keyword("bench"));
    assert_eq!(a.finish(), Ok(()));
}

#[test]
fn flags_anywhere_every_occurrence() {
    let mut a = Args::new(&["--msi", "start", "1", "--msi"]);
    assert!(a.flag("--msi"));
    assert!(!a.flag("--msi"), "taken once, with every occurrence");
    assert!(!a.flag("--naive"));
    assert_eq!(a.req(Word("SUB")), Ok("start"));
    assert_eq!(a.req(Cpu::ANY), Ok(1));
    assert_eq!(a.finish(), Ok(()));
}

#[test]
fn positionals_skip_options_not_yet_read() {
    // A flag taken after the positional before it: `queued race --early`.
    let mut a = Args::new(&["race", "--early"]);
    assert_eq!(a.req(Word("SUB")), Ok("race"));
    assert!(a.flag("--early"));
    assert_eq!(a.finish(), Ok(()));
    // Not taken: refused at the end as an unknown option, not read as an argument.
    let mut a = Args::new(&["--early", "storm"]);
    assert_eq!(a.req(Word("SUB")), Ok("storm"));
    assert_eq!(a.opt(Word("MOVES")), Ok(None));
    assert_eq!(
        a.finish().unwrap_err().to_string(),
        "unknown option '--early'"
    );
}

#[test]
fn exclusive_flags() {
    let modes = ["--naive", "--still"];
    assert_eq!(Args::new(&[]).exclusive(&modes), Ok(None));
    assert_eq!(
        Args::new(&["x", "--still"]).exclusive(&modes),
        Ok(Some("--still"))
    );
    assert_eq!(
        Args::new(&["--naive", "--naive"]).exclusive(&modes),
        Ok(Some("--naive"))
    );
    let e = Args::new(&["--still", "--naive"])
        .exclusive(&modes)
        .unwrap_err();
    assert_eq!(e, ArgError::Exclusive("--naive", "--still"));
    assert_eq!(e.to_string(), "--naive and --still exclude each other");
}

#[test]
fn options_with_values_in_the_order_given() {
    let spec = [
        Opt::Flag("--pinned"),
        Opt::Flag("--queued"),
        Opt::Value("--msi", "PCI address"),
    ];
    let mut a = Args::new(&[
        "--msi", "00:03.0", "1", "--queued", "100", "--msi", "00:02.0", "--pinned",
    ]);
    let given = a.options(&spec).unwrap();
    assert_eq!(
        given,
        [
            Given {
                option: "--msi",
                value: Some("00:03.0")
            },
            Given {
                option: "--queued",
                value: None
            },
            Given {
                option: "--msi",
                value: Some("00:02.0")
            },
            Given {
                option: "--pinned",
                value: None
            },
        ]
    );
    assert_eq!(a.req(Cpu::ANY), Ok(1));
    assert_eq!(a.req(Count::new("CYCLES", "cycle count", 1, 100)), Ok(100));
    assert_eq!(a.finish(), Ok(()));
    for words in [
        &["1", "--msi"][..],
        &["--msi", "--pinned"],
        &["--msi", "-x"],
    ] {
        let e = Args::new(words).options(&spec).unwrap_err();
        assert_eq!(e.to_string(), "--msi needs a PCI address", "{words:?}");
    }
    assert_eq!(Args::new(&["1", "2"]).options(&spec), Ok(vec![]));
}

#[test]
fn leftovers_are_refused_first_come() {
    assert_eq!(none(&[]), Ok(()));
    assert_eq!(
        none(&["now"]).unwrap_err().to_string(),
        "unexpected argument 'now'"
    );
    assert_eq!(
        none(&["--bogus", "now"]).unwrap_err().to_string(),
        "unknown option '--bogus'"
    );
    assert_eq!(
        none(&["-x"]).unwrap_err().to_string(),
        "unknown option '-x'"
    );
    // A lone dash and a negative number are arguments, not options.
    assert_eq!(
        none(&["-"]).unwrap_err().to_string(),
        "unexpected argument '-'"
    );
    assert_eq!(
        none(&["-3"]).unwrap_err().to_string(),
        "unexpected argument '-3'"
    );
    let mut a = Args::new(&["4", "0", "1"]);
    assert_eq!(a.req(Irq), Ok(4));
    assert_eq!(a.req(CpuList { cpus: 2 }), Ok(CpuMask::single(0)));
    assert_eq!(
        a.finish().unwrap_err().to_string(),
        "unexpected argument '1'"
    );
}

#[test]
fn rest_reads_one_or_more() {
    let entry = Number::<u32>::new("entry number");
    let mut a = Args::new(&["00:03.0", "0", "2", "4"]);
    assert!(a.req(Bdf).is_ok());
    assert_eq!(a.rest(entry), Ok(vec![0, 2, 4]));
    assert_eq!(a.finish(), Ok(()));
    let mut a = Args::new(&["00:03.0"]);
    assert!(a.req(Bdf).is_ok());
    assert_eq!(
        a.rest(entry).unwrap_err().to_string(),
        "missing entry number"
    );
    let mut a = Args::new(&["1", "x"]);
    assert_eq!(
        a.rest(entry).unwrap_err().to_string(),
        "'x' is not an entry number"
    );
}

#[test]
fn a_bad_word_is_read_once_so_the_error_names_it() {
    // After an error the command stops; but a second read must not see the same word.
    let mut a = Args::new(&["x", "5"]);
    assert!(a.req(Irq).is_err());
    assert_eq!(a.req(Irq), Ok(5));
}
