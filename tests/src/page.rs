//! Reading the app's pages: the visit number of the count page.

/// The N of the count page's line "This page has been visited <span class="count">N</span> times.".
/// `Err` says what is wrong when the page has no such line, its number is not one, or the line is cut
/// short; callers that require the line fail on it, the load generator records `None`.
pub fn visits_in(page: &str) -> Result<i64, String> {
    let start = page
        .find("This page has been visited")
        .ok_or_else(|| format!("no visit line in page:\n{page}"))?;
    let rest = &page[start..];
    let digits: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if !rest.contains("</span> times.") {
        return Err(format!("visit line is not complete: {rest:.120}"));
    }
    digits
        .parse()
        .map_err(|e| format!("visit count {digits:?} is not a number: {e}"))
}

/// [`visits_in`] for a page that must show the count: fails the test otherwise.
pub fn visits_shown(page: &str) -> i64 {
    visits_in(page).unwrap_or_else(|why| panic!("{why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_number_and_insists_on_the_whole_line() {
        let page = r#"<h1>This page has been visited <span class="count">42</span> times.</h1>"#;
        assert_eq!(visits_in(page), Ok(42));
        assert!(visits_in("503: Redis is unavailable").is_err());
        assert!(visits_in(r#"This page has been visited <span class="count">42"#).is_err());
    }
}
