//! Timestamps as the exports write them, to milliseconds since the Unix epoch (UTC).

/// Twitter's snowflake epoch: a tweet id carries its creation time in milliseconds.
const TWITTER_EPOCH_MS: i64 = 1_288_834_974_657;

/// Parses `2019-05-01 12:34`, `2019-05-01 12:34:56(.789)`, `2019-05-01T12:34:56Z`,
/// `…+00:00`, `2019-05-01`, or a number of seconds since the epoch (`1556714096.5`).
pub fn parse_time_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds
            .is_finite()
            .then(|| (seconds * 1000.0).round() as i64);
    }
    parse_calendar(text)
}

fn parse_calendar(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i64 = text.get(0..4)?.parse().ok()?;
    let month: u32 = text.get(5..7)?.parse().ok()?;
    let day: u32 = text.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut rest = &text[10..];
    let mut ms_of_day = 0i64;
    if !rest.is_empty() {
        rest = rest.strip_prefix(['T', ' '])?;
        let (clock, offset_minutes) = split_offset(rest)?;
        ms_of_day = parse_clock(clock)? - offset_minutes * 60_000;
    }
    Some(days_from_civil(year, month, day) * 86_400_000 + ms_of_day)
}

/// Splits `12:34:56+02:00` / `12:34:56Z` / `12:34:56 UTC` into the clock and its offset.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    let text = text.trim_end();
    if let Some(clock) = text.strip_suffix('Z').or_else(|| text.strip_suffix(" UTC")) {
        return Some((clock, 0));
    }
    if let Some(pos) = text.rfind(['+', '-']) {
        let (clock, offset) = text.split_at(pos);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let digits: String = offset[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return None;
        }
        let hours: i64 = digits[..2].parse().ok()?;
        let minutes: i64 = digits[2..].parse().ok()?;
        return Some((clock, sign * (hours * 60 + minutes)));
    }
    Some((text, 0))
}

fn parse_clock(clock: &str) -> Option<i64> {
    let mut parts = clock.split(':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next()?.parse().ok()?;
    let seconds: f64 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0.0,
    };
    if parts.next().is_some() || hours > 23 || minutes > 59 || !(0.0..61.0).contains(&seconds) {
        return None;
    }
    Some((hours * 3600 + minutes * 60) * 1000 + (seconds * 1000.0).round() as i64)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i64;
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time in milliseconds (whole seconds).
pub fn format_time_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let secs = ms.rem_euclid(86_400_000) / 1000;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Whether a time as written gives the minute only (`YYYY-MM-DD HH:MM`, the archive's form).
pub fn minute_precision(text: &str) -> bool {
    let t = text.trim().trim_end_matches('Z');
    let bytes = t.as_bytes();
    bytes.len() == 16 && bytes[13] == b':' && matches!(bytes[10], b' ' | b'T')
}

/// The creation time a Twitter snowflake id carries, if `id` is one (ids after 2010-11-04).
pub fn snowflake_time_ms(id: &str) -> Option<i64> {
    let id: u64 = id.trim().parse().ok()?;
    // Older sequential ids are below 2^22 × (a few seconds) and carry no time.
    if id < (1u64 << 32) {
        return None;
    }
    Some((id >> 22) as i64 + TWITTER_EPOCH_MS)
}

/// Whether [`refine_with_snowflake`] takes the time from the id (it carries one that agrees
/// with the archive's, or the archive has none).
pub fn refined_by_snowflake(archive_ms: Option<i64>, tweet_id: &str) -> bool {
    match (archive_ms, snowflake_time_ms(tweet_id)) {
        (Some(archive), Some(precise)) => (archive - precise).abs() <= 120_000,
        (None, precise) => precise.is_some(),
        (Some(_), None) => false,
    }
}

/// Twitter's own precise time for a tweet when its archive time (often minute precision)
/// agrees with its id to within two minutes; otherwise the archive time.
pub fn refine_with_snowflake(archive_ms: Option<i64>, tweet_id: &str) -> Option<i64> {
    match (archive_ms, snowflake_time_ms(tweet_id)) {
        (Some(archive), Some(precise)) if (archive - precise).abs() <= 120_000 => Some(precise),
        (None, Some(precise)) => Some(precise),
        (archive, _) => archive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_archive_forms() {
        assert_eq!(parse_time_ms("1970-01-01"), Some(0));
        assert_eq!(parse_time_ms("2019-05-01 12:34"), Some(1_556_714_040_000));
        assert_eq!(
            parse_time_ms("2019-05-01 12:34:56"),
            Some(1_556_714_096_000)
        );
        assert_eq!(
            parse_time_ms("2019-05-01T12:34:56.5Z"),
            Some(1_556_714_096_500)
        );
        assert_eq!(
            parse_time_ms("2019-05-01T14:34:56+02:00"),
            Some(1_556_714_096_000)
        );
        assert_eq!(parse_time_ms("1556714096"), Some(1_556_714_096_000));
        assert_eq!(parse_time_ms("2020-02-29"), Some(1_582_934_400_000));
    }

    #[test]
    fn rejects_impossible_dates() {
        for bad in [
            "",
            "yesterday",
            "2019-02-30",
            "2019-13-01",
            "2019-05-01 25:00",
            "2019-05-01X",
        ] {
            assert_eq!(parse_time_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_time_ms(1_556_714_096_000), "2019-05-01T12:34:56Z");
        assert_eq!(format_time_ms(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn minute_precision_is_recognised() {
        assert!(minute_precision("2019-05-01 12:34"));
        assert!(minute_precision("2019-05-01T12:34Z"));
        assert!(!minute_precision("2019-05-01 12:34:56"));
        assert!(!minute_precision("2019-05-01"));
        assert!(!minute_precision("1556714096"));
    }

    #[test]
    fn an_id_written_as_a_float_gives_no_time() {
        assert_eq!(snowflake_time_ms("1.198473762313818e+18"), None);
        assert_eq!(snowflake_time_ms("3.65082069254156E+017"), None);
        let minute = parse_time_ms("2019-12-09 05:20").unwrap();
        assert_eq!(
            refine_with_snowflake(Some(minute), "1.198473762313818e+18"),
            Some(minute)
        );
    }

    #[test]
    fn snowflake_gives_milliseconds() {
        // (id >> 22) + 1288834974657 ms, as Twitter documents; checked with Python datetime.
        let precise = snowflake_time_ms("1126020958826766336").unwrap();
        assert_eq!(format_time_ms(precise), "2019-05-08T07:08:11Z");
        let minute = parse_time_ms("2019-05-08 07:08").unwrap();
        assert_eq!(
            refine_with_snowflake(Some(minute), "1126020958826766336"),
            Some(precise)
        );
        // A hashed id carries no time: the archive's stands.
        assert_eq!(refine_with_snowflake(Some(minute), "abc"), Some(minute));
        assert!(refined_by_snowflake(Some(minute), "1126020958826766336"));
        assert!(!refined_by_snowflake(Some(minute), "abc"));
        assert_eq!(snowflake_time_ms("12345"), None);
    }
}
