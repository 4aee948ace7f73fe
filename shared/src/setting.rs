//! The clap value parser every setting of every binary goes through: a plain `fn(&str) -> Result<T, String>`
//! wrapped so that its error names the variable and the flag and can be printed as one safe line;
//! [`Within`] adds the range every duration, size and count setting has.
//!
//! clap's own message (`invalid value '<raw>' for '--flag <VAR>'`) prints the raw value, so a
//! newline in it splits the one-line error and a Redis URL shows its password. This adapter
//! writes `invalid VAR (--flag) value "<escaped>": <why>` instead, the value `{:?}`-escaped and,
//! for secrets, redacted first.

use std::ffi::OsStr;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Arg, Command};

/// A setting's parser plus how its value may be shown in an error.
#[derive(Clone, Copy)]
pub struct Setting<T> {
    parse: fn(&str) -> Result<T, String>,
    show: fn(&str) -> String,
}

/// A setting whose value may be shown as given.
pub fn plain<T>(parse: fn(&str) -> Result<T, String>) -> Setting<T> {
    Setting {
        parse,
        show: str::to_owned,
    }
}

/// A setting whose value may hold a secret: `hide` rewrites it before it is shown.
pub fn secret<T>(parse: fn(&str) -> Result<T, String>, hide: fn(&str) -> String) -> Setting<T> {
    Setting { parse, show: hide }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Setting<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        run(cmd, arg, value, self.parse, self.show)
    }
}

/// A setting with a range: its parser, the smallest and largest values it takes (both included),
/// and how a bound is written in the error (`10ms`, `16MiB`, `1000`). A value that parses but
/// lies outside is refused with `must be between <min> and <max>`; the value is shown as given
/// (no range-checked setting holds a secret). Built by `shared::duration::within`,
/// `shared::size::within` and `shared::count::within`, so each setting's range is written once,
/// where its flag is declared.
#[derive(Clone, Copy)]
pub struct Within<T> {
    parse: fn(&str) -> Result<T, String>,
    show: fn(&T) -> String,
    min: T,
    max: T,
}

impl<T: Copy + PartialOrd> Within<T> {
    /// The range `min..=max` over `parse`; `show` writes a bound.
    pub const fn new(
        parse: fn(&str) -> Result<T, String>,
        show: fn(&T) -> String,
        min: T,
        max: T,
    ) -> Self {
        Within {
            parse,
            show,
            min,
            max,
        }
    }

    pub fn min(&self) -> T {
        self.min
    }

    pub fn max(&self) -> T {
        self.max
    }

    /// `between <min> and <max>`, as the error and docs/CONFIG.md write it.
    pub fn range(&self) -> String {
        format!(
            "between {} and {}",
            (self.show)(&self.min),
            (self.show)(&self.max)
        )
    }

    /// `value` if it lies in the range, else `must be between <min> and <max>`.
    pub fn bound(&self, value: T) -> Result<T, String> {
        if value < self.min || value > self.max {
            return Err(format!("must be {}", self.range()));
        }
        Ok(value)
    }

    /// Parses `raw` and checks the range: what clap runs on the flag's value.
    pub fn check(&self, raw: &str) -> Result<T, String> {
        (self.parse)(raw).and_then(|value| self.bound(value))
    }
}

impl<T: Copy + PartialOrd + Send + Sync + 'static> TypedValueParser for Within<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        run(cmd, arg, value, |raw| self.check(raw), str::to_owned)
    }
}

/// Runs `parse` on the value; an error becomes the one line of [`describe`].
fn run<T>(
    cmd: &Command,
    arg: Option<&Arg>,
    value: &OsStr,
    parse: impl Fn(&str) -> Result<T, String>,
    show: fn(&str) -> String,
) -> Result<T, clap::Error> {
    let result = match value.to_str() {
        Some(text) => parse(text),
        None => Err("not valid UTF-8".to_owned()),
    };
    result.map_err(|why| {
        let shown = show(&value.to_string_lossy());
        let message = describe(arg, &shown, &why);
        clap::Error::raw(ErrorKind::ValueValidation, format!("{message}\n")).with_cmd(cmd)
    })
}

/// `invalid VAR (--flag) value "<shown>": <why>`, on one line whatever `shown` and `why` hold.
pub fn describe(arg: Option<&Arg>, shown: &str, why: &str) -> String {
    let var = arg.and_then(Arg::get_env).map(|v| v.to_string_lossy());
    let flag = arg.and_then(Arg::get_long).map(|long| format!("--{long}"));
    let name = match (var, flag) {
        (Some(var), Some(flag)) => format!("{var} ({flag})"),
        (Some(var), None) => var.into_owned(),
        (None, Some(flag)) => flag,
        (None, None) => "setting".to_owned(),
    };
    let why = why.replace(char::is_control, " ");
    format!("invalid {name} value {shown:?}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hide(_: &str) -> String {
        "***".to_owned()
    }

    /// Even numbers only; the reason never quotes the value, as no parser of secrets may.
    fn even(raw: &str) -> Result<u8, String> {
        match raw.parse::<u8>() {
            Ok(n) if n % 2 == 0 => Ok(n),
            _ => Err("not an even number".to_owned()),
        }
    }

    fn arg() -> Arg {
        Arg::new("n").long("even-number").env("EVEN_NUMBER")
    }

    fn error_of(setting: Setting<u8>, raw: &str) -> String {
        let cmd = Command::new("demo");
        let err = setting
            .parse_ref(&cmd, Some(&arg()), OsStr::new(raw))
            .unwrap_err();
        err.render().to_string()
    }

    #[test]
    fn good_values_pass_through() {
        let cmd = Command::new("demo");
        let parsed = plain(even).parse_ref(&cmd, Some(&arg()), OsStr::new("4"));
        assert_eq!(parsed.ok(), Some(4));
    }

    #[test]
    fn errors_name_variable_and_flag_on_one_line() {
        let text = error_of(plain(even), "3\nsecond line");
        let line = text.trim_end();
        assert_eq!(line.lines().count(), 1, "{text:?}");
        assert!(line.contains("EVEN_NUMBER (--even-number)"), "{line}");
        assert!(line.contains(r#""3\nsecond line""#), "{line}");
    }

    #[test]
    fn a_range_refuses_what_lies_outside_and_says_so() {
        let within = Within::new(even, u8::to_string, 2, 10);
        assert_eq!(within.check("4"), Ok(4));
        assert_eq!(within.check("10"), Ok(10));
        assert_eq!(
            within.check("12"),
            Err("must be between 2 and 10".to_owned())
        );
        assert_eq!(
            within.check("0"),
            Err("must be between 2 and 10".to_owned())
        );
        assert_eq!(within.check("3"), Err("not an even number".to_owned()));
        let cmd = Command::new("demo");
        let err = within
            .parse_ref(&cmd, Some(&arg()), OsStr::new("12"))
            .unwrap_err()
            .render()
            .to_string();
        assert_eq!(
            err.trim_end(),
            r#"error: invalid EVEN_NUMBER (--even-number) value "12": must be between 2 and 10"#
        );
    }

    #[test]
    fn secrets_are_hidden() {
        let text = error_of(secret(even, hide), "s3cret");
        assert!(text.contains(r#"value "***""#), "{text}");
    }

    #[test]
    fn names_whatever_the_argument_has() {
        assert_eq!(
            describe(None, "x", "bad"),
            r#"invalid setting value "x": bad"#
        );
        let flag_only = Arg::new("t").long("timeout");
        assert_eq!(
            describe(Some(&flag_only), "x", "bad"),
            r#"invalid --timeout value "x": bad"#
        );
    }
}
