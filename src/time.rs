//! Time and duration syntax as Prometheus accepts it: unix seconds with fractions or RFC 3339
//! for instants, `1h30m` or float seconds for durations. All instants are milliseconds since
//! the epoch, the resolution Prometheus keeps.

use std::time::Duration;

/// The smallest and largest timestamps Prometheus's API accepts as "unbounded" (its
/// `minTime`/`maxTime`), in milliseconds.
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974;
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974;

/// RFC 3339 spellings of [`MIN_TIME_MS`] and [`MAX_TIME_MS`] that clients (Grafana, the
/// Prometheus UI) send for open ranges.
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";

/// Prometheus's duration units, largest first, in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a Prometheus duration: a sequence of `<int><unit>` with units y, w, d, h, m, s, ms
/// in that order, each at most once (`1h30m`, `5m`, `10s53ms`), or `0`.
pub fn parse_prometheus_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("not a valid duration string: {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration string".to_string());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(invalid());
        }
        let n: u64 = s[start..i].parse().map_err(|_| invalid())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        let pos = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(invalid)?;
        let (_, ms) = UNITS[next_unit + pos];
        next_unit += pos + 1;
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= i64::MAX as u64 / 1_000_000)
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way Prometheus prints one (`1h30m`, `5m`, `0s`).
pub fn format_prometheus_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// Parses an API timestamp (`time`, `start`, `end`): unix seconds, possibly fractional and
/// rounded to the millisecond, or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let invalid = || format!("cannot parse {s:?} to a valid timestamp");
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(invalid());
        }
        let secs = f.trunc();
        let frac = ((f - secs) * 1000.0).round();
        let ms = secs * 1000.0 + frac;
        if ms < i64::MIN as f64 || ms > i64::MAX as f64 {
            return Err(invalid());
        }
        return Ok(ms as i64);
    }
    match s {
        MIN_TIME_FORMATTED => return Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => return Ok(MAX_TIME_MS),
        _ => {}
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| invalid())
}

/// Parses an API duration (`step`, `timeout`, `lookback_delta`): float seconds or a
/// Prometheus duration. Returns milliseconds (may be zero or negative for float input; the
/// caller decides what it accepts).
pub fn parse_duration_param(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        let ns = f * 1e9;
        if ns > i64::MAX as f64 || ns < i64::MIN as f64 || ns.is_nan() {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok((f * 1000.0).round() as i64);
    }
    parse_prometheus_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| format!("cannot parse {s:?} to a valid duration"))
}

/// Writes a millisecond timestamp as Prometheus's JSON does: seconds, then up to three
/// fraction digits without trailing zeros (`1700000000`, `1700000000.5`).
pub fn write_timestamp(out: &mut Vec<u8>, ms: i64) {
    let (negative, seconds, fraction) = timestamp_parts(ms);
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(itoa::Buffer::new().format(seconds).as_bytes());
    out.extend_from_slice(fraction.as_slice());
}

/// A timestamp's parts as written: whether it is negative, its whole seconds and its
/// fraction (`.5`, `.25`, `.125`, or nothing), from milliseconds.
pub fn timestamp_parts(ms: i64) -> (bool, u64, Fraction) {
    let abs = ms.unsigned_abs();
    let frac = abs % 1000;
    let bytes = [
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let len = if frac == 0 {
        0
    } else if bytes[3] != b'0' {
        4
    } else if bytes[2] != b'0' {
        3
    } else {
        2
    };
    (ms < 0, abs / 1000, Fraction { bytes, len })
}

/// The written fraction of a timestamp's second, point included.
pub struct Fraction {
    bytes: [u8; 4],
    len: usize,
}

impl Fraction {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_prometheus_syntax() {
        assert_eq!(
            parse_prometheus_duration("5m").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            parse_prometheus_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_prometheus_duration("10s53ms").unwrap(),
            Duration::from_millis(10_053)
        );
        assert_eq!(parse_prometheus_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_prometheus_duration("2d").unwrap(),
            Duration::from_secs(172_800)
        );
    }

    #[test]
    fn durations_reject_bad_syntax() {
        for bad in ["", "5", "m", "5x", "1m1h", "1m1m", "-5m", "1.5m", "5 m"] {
            assert!(parse_prometheus_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn durations_format_like_prometheus() {
        assert_eq!(
            format_prometheus_duration(Duration::from_secs(5400)),
            "1h30m"
        );
        assert_eq!(
            format_prometheus_duration(Duration::from_millis(1500)),
            "1s500ms"
        );
        assert_eq!(format_prometheus_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn times_parse_unix_and_rfc3339() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1700000000.1234").unwrap(), 1_700_000_000_123);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.5+00:00").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(parse_time(MIN_TIME_FORMATTED).unwrap(), MIN_TIME_MS);
        assert_eq!(parse_time(MAX_TIME_FORMATTED).unwrap(), MAX_TIME_MS);
        assert_eq!(
            parse_time("abc").unwrap_err(),
            "cannot parse \"abc\" to a valid timestamp"
        );
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn duration_params_accept_floats_and_durations() {
        assert_eq!(parse_duration_param("15").unwrap(), 15_000);
        assert_eq!(parse_duration_param("0.5").unwrap(), 500);
        assert_eq!(parse_duration_param("1m").unwrap(), 60_000);
        assert_eq!(parse_duration_param("-1").unwrap(), -1000);
        assert!(
            parse_duration_param("1e30")
                .unwrap_err()
                .contains("overflows")
        );
        assert_eq!(
            parse_duration_param("x").unwrap_err(),
            "cannot parse \"x\" to a valid duration"
        );
    }

    #[test]
    fn timestamps_are_written_like_prometheus() {
        let fmt = |ms| {
            let mut v = Vec::new();
            write_timestamp(&mut v, ms);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(fmt(1_700_000_000_000), "1700000000");
        assert_eq!(fmt(1_700_000_000_500), "1700000000.5");
        assert_eq!(fmt(1_700_000_000_050), "1700000000.05");
        assert_eq!(fmt(1_700_000_000_123), "1700000000.123");
        assert_eq!(fmt(-500), "-0.5");
        assert_eq!(fmt(-1500), "-1.5");
    }
}
