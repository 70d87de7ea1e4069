//! `cargo run -p sluice-acpi-tables --features std --example acpi-report -- PATH [--json]`:
//! the same output the launcher's `acpi` command prints, without building the launcher.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let Some(path) = args.iter().find(|a| *a != "--json") else {
        eprintln!("usage: acpi-report PATH [--json]");
        return std::process::ExitCode::from(2);
    };
    match sluice_acpi_tables::report(std::path::Path::new(path), json) {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
