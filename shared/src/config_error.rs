//! The one-line configuration error: every binary reports bad configuration as
//! `NAME: configuration error: <what, naming the flag or variable>` on stderr and exits 2,
//! before anything starts. clap's multi-line reports are cut to their first line.

use std::fmt::Display;

use clap::error::ErrorKind;

/// Exit status for bad configuration (the same as clap's usage errors).
pub const EXIT_CONFIG: i32 = 2;

/// The first non-empty line of a clap error, without clap's `error: ` prefix.
pub fn first_line(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid configuration")
        .trim_start_matches("error: ")
        .to_owned()
}

/// The line printed for a configuration error of `binary`.
pub fn line(binary: &str, message: impl Display) -> String {
    format!("{binary}: configuration error: {message}")
}

/// Prints the one line and exits 2.
pub fn exit(binary: &str, message: impl Display) -> ! {
    eprintln!("{}", line(binary, message));
    std::process::exit(EXIT_CONFIG)
}

/// Parses the command line of `binary`; `--help` and `--version` print and exit 0, anything
/// wrong prints one line and exits 2.
pub fn parse_or_exit<P: clap::Parser>(binary: &str) -> P {
    match P::try_parse() {
        Ok(parsed) => parsed,
        Err(e) if is_informational(&e) => {
            let _ = e.print();
            std::process::exit(0)
        }
        Err(e) => exit(binary, first_line(&e)),
    }
}

fn is_informational(e: &clap::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Demo {
        #[arg(long, env = "DEMO_PORT_FOR_TEST")]
        port: u16,
    }

    #[test]
    fn clap_errors_become_one_line_naming_the_flag() {
        let err = Demo::try_parse_from(["demo", "--port", "nope"]).unwrap_err();
        let text = line("demo", first_line(&err));
        assert_eq!(text.lines().count(), 1);
        assert!(text.starts_with("demo: configuration error: "), "{text}");
        assert!(text.contains("--port"), "{text}");
        assert!(!text.contains("error: error:"), "{text}");
        assert!(!first_line(&err).starts_with("error"), "{text}");
    }
}
