//! Durations as the configuration file and the command line write them: `30s`, `5m`, `24h`,
//! `1h30m`, `1h 30m`, `500ms`, `2d`, or a plain integer meaning seconds. Parsed and printed by
//! jiff's "friendly" format; this newtype keeps the bare-integer form, refuses negative
//! durations and keeps the serde representation the daemon's protocol uses.

use std::fmt;
use std::str::FromStr;

use jiff::fmt::friendly::{Designator, Spacing, SpanParser, SpanPrinter};

static PARSER: SpanParser = SpanParser::new();
static PRINTER: SpanPrinter = SpanPrinter::new()
    .designator(Designator::Compact)
    .spacing(Spacing::None);

/// A span of time written in the configuration (`interval`, `splay`, `status.heartbeat`).
///
/// Parsed from one or more `<number><unit>` parts, largest unit first (jiff's friendly format:
/// units `ms`, `s`, `m`, `h`, `d` and their long names, spaces allowed between the parts); a
/// bare integer is seconds. Displayed canonically in the compact form (`5400s` shows as
/// `1h30m`), so a displayed value parses back unchanged.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Duration(std::time::Duration);

/// What a duration must look like, for error messages.
pub const DURATION_SYNTAX: &str =
    "a duration such as `30s`, `5m`, `24h`, `1h30m` (units ms, s, m, h, d) or an integer number of seconds";

impl Duration {
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    pub const fn from_secs(secs: u64) -> Duration {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Duration {
        Duration(std::time::Duration::from_millis(millis))
    }

    pub const fn as_std(&self) -> std::time::Duration {
        self.0
    }

    pub const fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }

    pub const fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Duration {
        Duration(d)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> std::time::Duration {
        d.0
    }
}

/// A duration that does not parse; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError(pub String);

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseDurationError {}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(text: &str) -> Result<Duration, ParseDurationError> {
        let bad = |why: String| {
            ParseDurationError(format!(
                "invalid duration `{text}`{why}: expected {DURATION_SYNTAX}"
            ))
        };
        let s = text.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let secs: u64 = s.parse().map_err(|_| bad(" (too large)".to_string()))?;
            return Ok(Duration::from_secs(secs));
        }
        // jiff also reads a leading sign, `ago` and `HH:MM:SS`: a duration here is a plain
        // length of time, written with units.
        if s.starts_with(['+', '-']) || s.contains(':') || s.ends_with("ago") {
            return Err(bad(String::new()));
        }
        // Through a span, so that `d` (24 hours here) is accepted.
        let span = PARSER.parse_span(s).map_err(|e| bad(format!(" ({e})")))?;
        let signed = span
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(|e| bad(format!(" ({e})")))?;
        std::time::Duration::try_from(signed)
            .map(Duration)
            .map_err(|e| bad(format!(" ({e})")))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&PRINTER.unsigned_duration_to_string(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Duration {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(p("30s"), Duration::from_secs(30));
        assert_eq!(p("5m"), Duration::from_secs(300));
        assert_eq!(p("24h"), Duration::from_secs(86_400));
        assert_eq!(p("1h30m"), Duration::from_secs(5_400));
        assert_eq!(p("90"), Duration::from_secs(90));
        assert_eq!(p("0"), Duration::ZERO);
        assert_eq!(p("2d"), Duration::from_secs(172_800));
        assert_eq!(p("1500ms"), Duration::from_millis(1_500));
        assert_eq!(p("1m30s500ms"), Duration::from_millis(90_500));
        assert_eq!(p(" 5m "), Duration::from_secs(300));
        // jiff's friendly format also takes spaces, long unit names and a fraction.
        assert_eq!(p("1h 30m"), Duration::from_secs(5_400));
        assert_eq!(p("5 m"), Duration::from_secs(300));
        assert_eq!(p("2 hours"), Duration::from_secs(7_200));
        assert_eq!(p("1.5h"), Duration::from_secs(5_400));
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "",
            "5x",
            "m",
            "-5s",
            "1h30",
            "5mm",
            "99999999999999999999",
            "18446744073709551615d",
            "5s ago",
            "1:30:00",
            "1mo",
            "+5s",
        ] {
            let e = bad.parse::<Duration>().unwrap_err();
            assert!(e.0.contains("invalid duration"), "{bad}: {e}");
        }
        let e = "5x".parse::<Duration>().unwrap_err();
        assert!(e.0.contains("invalid duration `5x` ("), "{e}");
        assert!(e.0.ends_with(DURATION_SYNTAX), "{e}");
    }

    #[test]
    fn displays_canonically_and_round_trips() {
        for (text, shown) in [
            ("30s", "30s"),
            ("90", "1m30s"),
            ("24h", "24h"),
            ("1d", "24h"),
            ("1h30m", "1h30m"),
            ("0", "0s"),
            ("1500ms", "1s500ms"),
        ] {
            let d = p(text);
            assert_eq!(d.to_string(), shown);
            assert_eq!(p(&d.to_string()), d);
        }
    }
}
