//! Durations as the configuration file and the command line write them: `30s`, `5m`, `24h`,
//! `1h30m`, `500ms`, `2d`, or a plain integer meaning seconds.

use std::fmt;
use std::str::FromStr;

/// A span of time written in the configuration (`interval`, `splay`, `status.heartbeat`).
///
/// Parsed from one or more `<integer><unit>` parts, largest unit first or not (they add up),
/// with the units `ms`, `s`, `m`, `h`, `d`; a bare integer is seconds. Displayed in the same
/// syntax, canonically (`5400s` shows as `1h30m`), so a displayed value parses back unchanged.
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
        let bad = |why: &str| {
            ParseDurationError(format!(
                "invalid duration `{text}`{why}: expected {DURATION_SYNTAX}"
            ))
        };
        let s = text.trim();
        if s.is_empty() {
            return Err(bad(""));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            let secs: u64 = s.parse().map_err(|_| bad(" (too large)"))?;
            return Ok(Duration::from_secs(secs));
        }
        let mut total_ms: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad(""));
            }
            let number: u64 = rest[..digits].parse().map_err(|_| bad(" (too large)"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let factor: u64 = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => return Err(bad(" (a number without a unit inside a compound duration)")),
                other => return Err(bad(&format!(" (unknown unit `{other}`)"))),
            };
            total_ms = number
                .checked_mul(factor)
                .and_then(|ms| total_ms.checked_add(ms))
                .ok_or_else(|| bad(" (too large)"))?;
        }
        Ok(Duration::from_millis(total_ms))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms_total = self.0.as_millis();
        if ms_total == 0 {
            return f.write_str("0s");
        }
        let mut out = String::new();
        let mut rest = ms_total;
        for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                out.push_str(&format!("{n}{unit}"));
            }
        }
        f.pad(&out)
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
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "",
            "5x",
            "m",
            "5 m",
            "-5s",
            "1.5h",
            "1h30",
            "5mm",
            "99999999999999999999",
            "18446744073709551615d",
        ] {
            let e = bad.parse::<Duration>().unwrap_err();
            assert!(e.0.contains("invalid duration"), "{bad}: {e}");
        }
        let e = "5x".parse::<Duration>().unwrap_err();
        assert!(e.0.contains("unknown unit `x`"), "{e}");
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
