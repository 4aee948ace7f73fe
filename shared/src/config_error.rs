//! The one-line configuration error: every binary reports bad configuration as
//! `NAME: configuration error: <what, naming the flag or variable>` on stderr and exits 2,
//! before anything starts. clap's multi-line reports are cut to their first line.

use std::fmt::Display;

use clap::error::ErrorKind;

/// Exit status for bad configuration (the same as clap's usage errors).
pub const EXIT_CONFIG: i32 = 2;

/// A clap error as one line, without clap's `error: ` prefix: its first paragraph (the message,
/// and for a choice the possible values) with line breaks folded into spaces, so a value holding a
/// newline cannot split the line. The usage and tip paragraphs after it are left out.
pub fn first_line(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let paragraph = rendered
        .trim_start()
        .split("\n\n")
        .next()
        .unwrap_or_default();
    let folded = paragraph
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let line = folded.trim_start_matches("error: ");
    if line.is_empty() {
        "invalid configuration".to_owned()
    } else {
        line.to_owned()
    }
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
        #[arg(long, value_enum, default_value_t = Choice::A)]
        choice: Choice,
    }

    #[derive(Debug, Clone, Copy, clap::ValueEnum)]
    enum Choice {
        A,
        B,
    }

    #[test]
    fn a_value_with_a_newline_stays_on_one_line() {
        for args in [["demo", "--port", "1\n2"], ["demo", "--choice", "x\ny"]] {
            let err = Demo::try_parse_from(args).unwrap_err();
            let text = line("demo", first_line(&err));
            assert_eq!(text.lines().count(), 1, "{text:?}");
            assert!(text.contains(args[1]), "{text}");
            assert!(!text.contains("For more information"), "{text}");
        }
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
