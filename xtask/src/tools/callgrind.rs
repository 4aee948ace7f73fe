//! Driving valgrind's callgrind and reading its profiles: the tools checked, the counting switched
//! on and off (`callgrind_control -i`), the instruction total and the per-function self costs
//! that `callgrind_annotate --inclusive=no` prints, and the grouping of functions by the crate
//! (or shared library) they come from.
//!
//! Callgrind counts instructions executed in user space, not time, so the same binary fed the same
//! requests gives (nearly) the same count however busy the machine is: a change to the request
//! path is judged by a number that the noise of a shared 2-core machine cannot move. Parsing is
//! kept pure (text in, figures out) so it is unit-tested without valgrind.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// One function's self cost (instructions executed in its own body, callees excluded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionCost {
    pub instructions: u64,
    pub function: String,
    /// The crate for Rust symbols, the library for shared objects (`libc`), else the program name.
    pub group: String,
}

/// What one profile holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub total: u64,
    /// Every function, most expensive first.
    pub functions: Vec<FunctionCost>,
}

/// valgrind and the two callgrind tools this module runs, or one line naming the package.
pub fn check_installed() -> Result<()> {
    for tool in ["valgrind", "callgrind_control", "callgrind_annotate"] {
        let found = Command::new(tool).arg("--version").output().is_ok();
        if !found {
            bail!(
                "{tool} not found: install the Debian package with `apt-get install -y valgrind`"
            );
        }
    }
    Ok(())
}

/// `callgrind_control -i on|off PID`: counting switched on or off in a running process.
pub fn control(pid: u32, state: &str) -> Result<()> {
    let output = Command::new("callgrind_control")
        .args(["-i", state, &pid.to_string()])
        .output()
        .context("running callgrind_control")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !text.contains("OK") {
        bail!(
            "callgrind_control -i {state} {pid} failed: {} {}",
            text.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `callgrind_annotate --inclusive=no` on `file` and parses its output; `program` names the
/// profiled executable (its functions without a crate path are grouped under that name).
pub fn annotate(file: &Path, program: &str) -> Result<Profile> {
    let output = Command::new("callgrind_annotate")
        .args(["--inclusive=no", "--threshold=100"])
        .arg(file)
        .output()
        .context("running callgrind_annotate (Debian package valgrind)")?;
    if !output.status.success() {
        bail!(
            "callgrind_annotate {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_annotate(&String::from_utf8_lossy(&output.stdout), program)
        .with_context(|| format!("reading the annotation of {}", file.display()))
}

/// Parses `callgrind_annotate --inclusive=no` output.
pub fn parse_annotate(text: &str, program: &str) -> Result<Profile> {
    let total = text
        .lines()
        .find(|l| l.contains("PROGRAM TOTALS"))
        .and_then(|l| parse_count(l.split_whitespace().next()?))
        .context("no PROGRAM TOTALS line")?;
    let mut functions: Vec<FunctionCost> = text
        .lines()
        .filter(|l| !l.contains("PROGRAM TOTALS"))
        .filter_map(|l| parse_function_line(l, program))
        .collect();
    functions.sort_by_key(|f| std::cmp::Reverse(f.instructions));
    Ok(Profile { total, functions })
}

/// `1,234,567` → 1234567.
fn parse_count(text: &str) -> Option<u64> {
    let digits: String = text.chars().filter(|c| *c != ',').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `96,300 ( 7.75%)  ???:ngx_http_parse_header_line [/usr/sbin/nginx]`.
fn parse_function_line(line: &str, program: &str) -> Option<FunctionCost> {
    let line = line.trim();
    let (count, rest) = line.split_once(' ')?;
    let instructions = parse_count(count)?;
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('(')?.split_once(')')?.1.trim();
    let (location, object) = match rest.rsplit_once(" [") {
        Some((loc, obj)) => (loc, obj.trim_end_matches(']')),
        None => (rest, ""),
    };
    // `file:function`; the file part holds no spaces, the function may hold `::`.
    let function = location.split_once(':').map_or(location, |(_, f)| f);
    Some(FunctionCost {
        instructions,
        function: function.to_string(),
        group: group_of(function, object, program),
    })
}

/// The crate of a Rust symbol (`<hyper::proto::h1::Conn<..> as ..>::poll` → `hyper`), the library
/// of a shared object (`/usr/lib/x86_64-linux-gnu/libc.so.6` → `libc`), or `program`.
pub fn group_of(function: &str, object: &str, program: &str) -> String {
    let file = object.rsplit('/').next().unwrap_or(object);
    if file.contains(".so") {
        if file.starts_with("vgpreload") {
            return "valgrind".to_string();
        }
        return file.split(".so").next().unwrap_or(file).to_string();
    }
    let symbol = function.trim_start_matches(['<', '&', '*', ' ']);
    let symbol = symbol.strip_prefix("mut ").unwrap_or(symbol);
    match symbol.split_once("::") {
        Some((krate, _)) if is_crate_name(krate) => krate.to_string(),
        _ => program.to_string(),
    }
}

fn is_crate_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Instructions by group, most expensive first.
pub fn by_group(functions: &[FunctionCost]) -> Vec<(String, u64)> {
    let mut groups: Vec<(String, u64)> = Vec::new();
    for f in functions {
        match groups.iter_mut().find(|(g, _)| *g == f.group) {
            Some((_, n)) => *n += f.instructions,
            None => groups.push((f.group.clone(), f.instructions)),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.1));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
--------------------------------------------------------------------------------
Ir                 
--------------------------------------------------------------------------------
1,243,035 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir               file:function
--------------------------------------------------------------------------------
96,300 ( 7.75%)  ???:ngx_http_parse_header_line [/usr/sbin/nginx]
48,246 ( 3.88%)  ./malloc/./malloc/malloc.c:_int_malloc [/usr/lib/x86_64-linux-gnu/libc.so.6]
50,790 ( 4.09%)  ???:0x000000000002aca0 [/usr/sbin/nginx]
1,000 ( 0.08%)  ???:<hyper::proto::h1::conn::Conn<I,B,T> as core::ops::Drop>::drop [/b/balancer]
2,000 ( 0.16%)  ???:core::ptr::drop_in_place<http::header::map::HeaderMap> [/b/balancer]
";

    #[test]
    fn parses_total_and_functions_sorted() {
        let p = parse_annotate(SAMPLE, "nginx").unwrap();
        assert_eq!(p.total, 1_243_035);
        assert_eq!(p.functions.len(), 5);
        assert_eq!(p.functions[0].function, "ngx_http_parse_header_line");
        assert_eq!(p.functions[0].instructions, 96_300);
        assert_eq!(p.functions[1].function, "0x000000000002aca0");
        assert_eq!(p.functions[2].group, "libc");
        assert_eq!(p.functions[2].function, "_int_malloc");
    }

    #[test]
    fn groups_rust_symbols_by_crate() {
        assert_eq!(
            group_of(
                "<hyper::proto::h1::conn::Conn<I,B,T> as core::ops::Drop>::drop",
                "/b/balancer",
                "balancer"
            ),
            "hyper"
        );
        assert_eq!(
            group_of("core::ptr::drop_in_place<x>", "/b/balancer", "balancer"),
            "core"
        );
        assert_eq!(group_of("ngx_palloc", "/usr/sbin/nginx", "nginx"), "nginx");
        assert_eq!(group_of("0x00002aca0", "/usr/sbin/nginx", "nginx"), "nginx");
        assert_eq!(
            group_of("memcpy", "/usr/lib/x86_64-linux-gnu/libc.so.6", "nginx"),
            "libc"
        );
        assert_eq!(
            group_of("malloc", "/usr/libexec/valgrind/vgpreload_core.so", "x"),
            "valgrind"
        );
    }

    #[test]
    fn sums_groups() {
        let p = parse_annotate(SAMPLE, "nginx").unwrap();
        let groups = by_group(&p.functions);
        assert_eq!(groups[0], ("nginx".to_string(), 147_090));
        assert_eq!(groups.iter().map(|g| g.1).sum::<u64>(), 198_336);
    }

    #[test]
    fn refuses_text_without_totals() {
        assert!(parse_annotate("nothing here", "x").is_err());
        assert_eq!(parse_count("1,2x"), None);
    }
}
