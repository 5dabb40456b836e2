//! Time for window stages: durations (`--lateness`, window sizes), window
//! specs (`--window tumbling:5m`), event times read from events (`--time`)
//! and the epoch-aligned window grid.
//!
//! Every time and duration is an `i64` count of milliseconds; times count
//! from the Unix epoch, UTC.

use jaq_json::{Num, Val};
use jiff::Timestamp;

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Longest duration accepted. It is longer than the whole span of times
/// jiff represents (years -9999 to 9999), so it limits nothing useful, and
/// it keeps sums of a time and a few durations far from `i64` overflow.
const MAX_DURATION: i64 = 10_000_000 * DAY;

/// The time now, in milliseconds since the epoch (arrival time).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Like `parse_duration`, but zero is allowed (`0s`: no lateness).
pub fn parse_lateness(text: &str) -> Result<i64, String> {
    let number = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if !number.is_empty()
        && number.bytes().all(|b| b == b'0')
        && parse_duration(&format!("1{}", &text[number.len()..])).is_ok()
    {
        return Ok(0);
    }
    parse_duration(text)
}

/// Parses a duration: a positive integer followed by a unit `ms`, `s`, `m`,
/// `h` or `d` ("250ms", "10s", "5m", "1h", "1d"). Returns milliseconds
/// (> 0, at most 10000000d).
///
/// Units are case-sensitive: `5M` is rejected rather than guessed at
/// (minutes? months?). No sign, fraction or space is accepted.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: expected a whole number followed by ms, s, m, h or d \
             (250ms, 10s, 5m, 1h, 1d)"
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(invalid());
    }
    let unit_ms = match unit {
        "ms" => 1,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        _ => return Err(invalid()),
    };
    let too_long = || format!("duration {text:?} is too long (at most 10000000d)");
    // Only digits here, so a failed parse can only mean too many of them.
    let n: i64 = number.parse().map_err(|_| too_long())?;
    let ms = n
        .checked_mul(unit_ms)
        .filter(|&ms| ms <= MAX_DURATION)
        .ok_or_else(too_long)?;
    if ms == 0 {
        return Err(format!("duration {text:?} must be greater than zero"));
    }
    Ok(ms)
}

/// A window stage's shape. Sizes, slides and gaps are milliseconds (> 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowSpec {
    /// Back-to-back windows of `size`, aligned to the epoch.
    Tumbling { size: i64 },
    /// Windows of `size` starting every `slide` (`slide <= size`), aligned
    /// to the epoch; they overlap when `slide < size`.
    Sliding { size: i64, slide: i64 },
    /// Per key, events closer than `gap` to each other share a window.
    Session { gap: i64 },
}

/// Parses `tumbling:SIZE`, `sliding:SIZE/SLIDE` or `session:GAP`, each a
/// duration as [`parse_duration`] reads it.
///
/// A sliding window's slide must not be longer than its size (events would
/// fall between windows); the size need not be a multiple of the slide.
pub fn parse_window(text: &str) -> Result<WindowSpec, String> {
    let forms = "expected tumbling:SIZE, sliding:SIZE/SLIDE or session:GAP";
    let invalid = |why: String| format!("invalid window {text:?}: {why}");
    let duration = |d: &str| parse_duration(d).map_err(invalid);
    match text.split_once(':') {
        Some(("tumbling", size)) => Ok(WindowSpec::Tumbling {
            size: duration(size)?,
        }),
        Some(("session", gap)) => Ok(WindowSpec::Session {
            gap: duration(gap)?,
        }),
        Some(("sliding", rest)) => {
            let Some((size_text, slide_text)) = rest.split_once('/') else {
                return Err(invalid(
                    "expected sliding:SIZE/SLIDE, like sliding:5m/1m".into(),
                ));
            };
            let (size, slide) = (duration(size_text)?, duration(slide_text)?);
            if slide > size {
                return Err(invalid(format!(
                    "the slide {slide_text} is longer than the size {size_text}"
                )));
            }
            Ok(WindowSpec::Sliding { size, slide })
        }
        _ => Err(invalid(forms.into())),
    }
}

/// Event time of a value yielded by the `--time` expression.
///
/// A number is seconds since the epoch (fractions allowed); one whose
/// absolute value is >= 1e11 is milliseconds, >= 1e14 microseconds, >= 1e17
/// nanoseconds — so second, milli, micro and nano timestamps of any date
/// after 1973 are all read right. A string is RFC 3339 with `Z` or an offset,
/// fractional seconds allowed ("2026-11-02T08:15:03.120Z",
/// "2026-11-02T10:15:03+02:00"); jiff's parser also takes its usual
/// variations (a space for `T`, lower case `t`/`z`, a `[zone]` suffix).
///
/// The result is truncated toward negative infinity to whole milliseconds
/// and lies in years -9999 to 9999, so [`format_time`] can always show it.
pub fn event_time(v: &Val) -> Result<i64, String> {
    match v {
        Val::Num(n) => number_time(n).map_err(|why| format!("time {} {why}", shown(v))),
        Val::TStr(bytes) | Val::BStr(bytes) => {
            if let Some(ms) = utc_time(bytes) {
                return Ok(ms);
            }
            let text = std::str::from_utf8(bytes).unwrap_or("");
            match text.parse::<Timestamp>() {
                // Floor, not `as_millisecond`, which truncates toward zero
                // and so would round times before 1970 up.
                Ok(ts) => Ok(ts.as_nanosecond().div_euclid(1_000_000) as i64),
                // The commonest mistake: a local time without an offset.
                Err(_) if text.parse::<jiff::civil::DateTime>().is_ok() => Err(format!(
                    "time {} has no UTC offset (add Z or one like +02:00: 2026-11-02T08:15:03Z)",
                    shown(v)
                )),
                Err(_) => Err(format!(
                    "time {} is not RFC 3339 (like 2026-11-02T08:15:03Z)",
                    shown(v)
                )),
            }
        }
        _ => Err(format!(
            "time {} is neither a number nor an RFC 3339 string",
            shown(v)
        )),
    }
}

/// What [`event_time`] makes of a value given as its JSON text (as direct
/// evaluation reads it) and kind: `None` where it would fail, or for a
/// string with escapes (then jaq's value gives the answer and the message).
pub fn time_of_text(text: &[u8], kind: crate::json::Kind) -> Option<i64> {
    use crate::json::Kind;
    if kind == Kind::Int
        && let Some(ms) = int_time(text)
    {
        return Some(ms);
    }
    let text = std::str::from_utf8(text).ok()?;
    match kind {
        Kind::Int | Kind::Dec => text_time(text).ok(),
        Kind::Str => {
            let text = &text[1..text.len() - 1];
            if let Some(ms) = utc_time(text.as_bytes()) {
                return Some(ms);
            }
            let ts: Timestamp = text.parse().ok()?;
            Some(ts.as_nanosecond().div_euclid(1_000_000) as i64)
        }
        _ => None,
    }
}

/// The milliseconds of the usual spelling of a UTC time,
/// `YYYY-MM-DDTHH:MM:SS[.FFFFFFFFF]Z`, read without a general parser (once
/// per event); `None` for any other text, which jiff's parser answers (the
/// same for this spelling: a unit test compares them).
fn utc_time(t: &[u8]) -> Option<i64> {
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = t.get(range)?;
        digits.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    if t.len() < 20
        || t[4] != b'-'
        || t[7] != b'-'
        || t[10] != b'T'
        || t[13] != b':'
        || t[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    // A leap second (:60) is left to jiff.
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let millis = match &t[19..] {
        b"Z" => 0,
        [b'.', fraction @ .., b'Z'] if (1..=9).contains(&fraction.len()) => {
            let digits = num(20..20 + fraction.len())?;
            // The first three digits: whole milliseconds, rounded down.
            digits / 10i64.pow(fraction.len().saturating_sub(3) as u32)
                * 10i64.pow(3u32.saturating_sub(fraction.len() as u32))
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a civil date (the proleptic Gregorian
    // calendar's usual arithmetic, counting years from March).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1_000 + millis;
    // jiff's range (a day short of year 9999's end, for offsets).
    Timestamp::from_millisecond(ms).ok().map(|_| ms)
}

/// `text_time` of an integer's text of at most 18 digits, without making
/// a decimal of it (the usual epoch time, once per event); `None` for
/// anything else, which `text_time` answers.
fn int_time(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Digits without leading zeros decide the unit, as in `text_time`.
    let zeros = digits.iter().take_while(|&&b| b == b'0').count();
    let magnitude = digits.len() - zeros;
    if magnitude > 18 {
        return None;
    }
    let mut value: i64 = 0;
    for &b in &digits[zeros..] {
        value = value * 10 + i64::from(b - b'0');
    }
    let value = if negative { -value } else { value };
    let ms = match magnitude {
        18.. => value.div_euclid(1_000_000),
        15.. => value.div_euclid(1_000),
        12.. => value,
        _ => value * 1_000,
    };
    Timestamp::from_millisecond(ms).ok().map(|_| ms)
}

/// Milliseconds of a numeric event time, else why not. Every kind of number
/// goes through its decimal text, so 1762071303.12 gives exactly
/// 1762071303120 ms, which flooring the nearest `f64` times 1000 need not.
fn number_time(n: &Num) -> Result<i64, &'static str> {
    let text = match n {
        Num::Float(x) if !x.is_finite() => return Err("is not a finite number"),
        // The shortest text that reads back as `x`: for a float parsed
        // from JSON, the digits as they were written.
        Num::Float(x) => format!("{x:e}"),
        other => other.to_string(),
    };
    text_time(&text)
}

/// Milliseconds of a number's decimal text, else why not.
fn text_time(text: &str) -> Result<i64, &'static str> {
    let out_of_range = "is out of range (years -9999 to 9999)";
    // Only a hand-made `Num::Dec` can fail here; parsed JSON numbers can't.
    let d = Decimal::parse(text).ok_or("is not a number")?;
    // Digits before the point, which decide the unit.
    let magnitude = d.digits.len() as i64 + d.exp;
    let scale = match magnitude {
        18.. => -6, // >= 1e17: nanoseconds
        15.. => -3, // >= 1e14: microseconds
        12.. => 0,  // >= 1e11: milliseconds
        _ => 3,     // seconds
    };
    let ms = d.floor_scaled(d.exp + scale).ok_or(out_of_range)?;
    Timestamp::from_millisecond(ms)
        .map(|_| ms)
        .map_err(|_| out_of_range)
}

/// A decimal number: `digits` × 10^`exp`, negated if `negative`.
struct Decimal {
    negative: bool,
    /// ASCII digits without leading zeros; empty for zero.
    digits: Vec<u8>,
    exp: i64,
}

impl Decimal {
    /// Reads a JSON-style number: `-12`, `1.5`, `1.76e9`, `1E-3`.
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (mantissa, exp_text) = match rest.split_once(['e', 'E']) {
            Some((m, e)) => (m, Some(e)),
            None => (rest, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
            return None;
        }
        let mut exp = match exp_text {
            None => 0,
            Some(e) => {
                let (sign, unsigned) = match e.strip_prefix('-') {
                    Some(u) => (-1, u),
                    None => (1, e.strip_prefix('+').unwrap_or(e)),
                };
                if unsigned.is_empty() || !all_digits(unsigned) {
                    return None;
                }
                // Past a million the time is zero or out of range either
                // way; the cap keeps the sums below from overflowing.
                sign * unsigned.parse::<i64>().unwrap_or(i64::MAX).min(1_000_000)
            }
        };
        exp -= frac.len() as i64;
        let digits: Vec<u8> = int
            .bytes()
            .chain(frac.bytes())
            .skip_while(|&b| b == b'0')
            .collect();
        Some(Decimal {
            negative,
            digits,
            exp,
        })
    }

    /// floor(self × 10^`shift`) if it fits an `i64`.
    fn floor_scaled(&self, shift: i64) -> Option<i64> {
        if self.digits.is_empty() {
            return Some(0);
        }
        let kept_len = self.digits.len() as i64 + shift;
        // 18 digits always fit an i64 (and are far past year 9999 anyway).
        if kept_len > 18 {
            return None;
        }
        let kept = &self.digits[..kept_len.clamp(0, self.digits.len() as i64) as usize];
        let mut value: i64 = 0;
        for &b in kept {
            value = value * 10 + i64::from(b - b'0');
        }
        // Zeros appended for a positive shift (at most 18 digits, see above).
        for _ in self.digits.len() as i64..kept_len {
            value *= 10;
        }
        let dropped_nonzero = self.digits[kept.len()..].iter().any(|&b| b != b'0');
        Some(match (self.negative, dropped_nonzero) {
            (true, true) => -value - 1,
            (true, false) => -value,
            (false, _) => value,
        })
    }
}

/// A value for an error message: JSON, cut short if long.
fn shown(v: &Val) -> String {
    let text = v.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// RFC 3339 UTC text of a time: "2026-11-02T08:15:00Z" when the time is a
/// whole second, else with milliseconds "2026-11-02T08:15:00.250Z".
///
/// Times outside jiff's range (years -9999 to 9999), which [`event_time`]
/// never yields but arithmetic on times might, are written as their
/// millisecond count, like `900000000000000000ms`.
pub fn format_time(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(ts) if ms.rem_euclid(SECOND) == 0 => format!("{ts:.0}"),
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => format!("{ms}ms"),
    }
}

/// Start of the tumbling/sliding window grid cell containing `t` for
/// windows aligned to the epoch: floor(t / step) × step, also for negative
/// `t` (so -1 with step 1000 gives -1000, not 0). `step` must be > 0.
pub fn align(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

/// The start of the earliest window (of `size`, every `slide`, aligned to
/// the epoch) that contains `t`: the first start after `t - size`.
pub fn first_window(t: i64, size: i64, slide: i64) -> i64 {
    align(t - size, slide) + slide
}

/// The windows `(start, end)` of a tumbling or sliding spec that contain
/// time `t` (start <= t < end), in increasing start order. Tumbling: exactly
/// one. Sliding: every start = k × slide (epoch-aligned) with
/// start <= t < start + size, which is size/slide windows, rounded down or
/// up depending on `t` when size is not a multiple of slide.
///
/// # Panics
///
/// For [`WindowSpec::Session`]: a session's bounds depend on the other
/// events of its key, not on `t` alone, so asking is a bug in the caller.
#[cfg(test)]
pub fn windows_containing(spec: &WindowSpec, t: i64) -> Vec<(i64, i64)> {
    let (size, slide) = match *spec {
        WindowSpec::Tumbling { size } => (size, size),
        WindowSpec::Sliding { size, slide } => (size, slide),
        WindowSpec::Session { .. } => panic!("windows_containing: session windows have no grid"),
    };
    let mut start = first_window(t, size, slide);
    let mut windows = Vec::new();
    while start <= t {
        windows.push((start, start + size));
        start += slide;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn utc_times_are_read_as_jiff_reads_them() {
        let jiff = |t: &str| {
            t.parse::<Timestamp>()
                .ok()
                .map(|ts| ts.as_nanosecond().div_euclid(1_000_000) as i64)
        };
        let mut texts: Vec<String> = [
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999999Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "2000-02-29T12:00:00.5Z",
            "1900-02-29T12:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01T23:59:59.Z",
            "2024-01-01T23:59:59.1234567890Z",
            "2024-01-01T23:59:59z",
            "2024-01-01 23:59:59Z",
            "2024-01-01T23:59:59+02:00",
            "2024-01-01T23:59:59",
            "+2024-01-01T23:59:59Z",
            "2024-1-01T23:59:59Z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..20_000 {
            let fraction = match next(5) {
                0 => String::new(),
                k => format!(".{:0width$}", next(10u64.pow(9)), width = 9)
                    [..1 + 2 * k as usize - 1]
                    .to_string(),
            };
            texts.push(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
                next(10_000),
                next(14),
                next(33),
                next(25),
                next(61),
                next(61)
            ));
        }
        for t in &texts {
            let fast = utc_time(t.as_bytes());
            if fast.is_some() {
                assert_eq!(fast, jiff(t), "{t}");
            }
            assert_eq!(event_time(&Val::utf8_str(t.clone())).ok(), jiff(t), "{t}");
        }
        // The usual spelling is always read without jiff.
        let usual = |t: &&String| jiff(t).is_some() && &t[17..19] != "60";
        assert!(
            texts[21..]
                .iter()
                .filter(usual)
                .all(|t| utc_time(t.as_bytes()).is_some())
        );
    }

    #[test]
    fn integer_times_are_read_as_their_decimal_text_is() {
        let mut texts: Vec<String> = ["0", "-0", "007", "-1", "1", "999999999999999999"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Every length of digits, both signs, at the edges of each unit and
        // of the range of years, and with leading zeros.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 1..=18u32 {
            for _ in 0..200 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = x % 10u64.pow(len);
                texts.push(n.to_string());
                texts.push(format!("-{n}"));
                texts.push(format!("00{n}"));
            }
            let edge = 10u64.pow(len);
            texts.push((edge - 1).to_string());
            texts.push(format!("-{}", edge - 1));
        }
        for ms in [
            253_402_300_799_999i64,
            253_402_300_800_000,
            -377_705_116_800_000,
            -377_705_116_800_001,
        ] {
            texts.push(ms.to_string());
        }
        for t in &texts {
            assert_eq!(int_time(t.as_bytes()), text_time(t).ok(), "{t}");
        }
        assert_eq!(int_time(b"1234567890123456789"), None);
        assert_eq!(int_time(b"1.5"), None);
    }

    fn int(n: isize) -> Val {
        Val::Num(Num::Int(n))
    }
    fn float(x: f64) -> Val {
        Val::Num(Num::Float(x))
    }
    fn dec(s: &str) -> Val {
        Val::Num(Num::Dec(Rc::new(s.to_string())))
    }
    fn string(s: &str) -> Val {
        Val::utf8_str(s.to_string())
    }
    /// 2025-11-02T08:15:03Z.
    const T: i64 = 1_762_071_303_000;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("1ms"), Ok(1));
        assert_eq!(parse_duration("10s"), Ok(10_000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_duration("007s"), Ok(7_000));
        assert_eq!(parse_duration("10000000d"), Ok(MAX_DURATION));
    }

    #[test]
    fn bad_durations() {
        let expected = |t: &str| {
            format!(
                "invalid duration {t:?}: expected a whole number followed by ms, s, m, h or d \
                 (250ms, 10s, 5m, 1h, 1d)"
            )
        };
        for t in [
            "", "5", "m", "ms", "-5s", "+5s", "1.5s", "5 m", " 5m", "5m ", "5M", "5S", "5x",
            "5sec", "5mm", "5min", "s5", "5m5s", "٣s",
        ] {
            assert_eq!(parse_duration(t), Err(expected(t)), "{t:?}");
        }
        assert_eq!(
            parse_duration("0s"),
            Err(r#"duration "0s" must be greater than zero"#.into())
        );
        assert_eq!(
            parse_duration("000ms"),
            Err(r#"duration "000ms" must be greater than zero"#.into())
        );
        for t in [
            "999999999999999d",
            "10000001d",
            "99999999999999999999999ms",
            "9223372036854775807ms",
        ] {
            assert_eq!(
                parse_duration(t),
                Err(format!("duration {t:?} is too long (at most 10000000d)")),
                "{t:?}"
            );
        }
    }

    #[test]
    fn window_specs() {
        assert_eq!(
            parse_window("tumbling:5m"),
            Ok(WindowSpec::Tumbling { size: 300_000 })
        );
        assert_eq!(
            parse_window("sliding:5m/1m"),
            Ok(WindowSpec::Sliding {
                size: 300_000,
                slide: 60_000
            })
        );
        assert_eq!(
            parse_window("sliding:10s/3s"),
            Ok(WindowSpec::Sliding {
                size: 10_000,
                slide: 3_000
            })
        );
        assert_eq!(
            parse_window("sliding:1m/60s"),
            Ok(WindowSpec::Sliding {
                size: 60_000,
                slide: 60_000
            })
        );
        assert_eq!(
            parse_window("session:30s"),
            Ok(WindowSpec::Session { gap: 30_000 })
        );
    }

    #[test]
    fn bad_window_specs() {
        let forms = |t: &str| {
            format!(
                "invalid window {t:?}: expected tumbling:SIZE, sliding:SIZE/SLIDE or session:GAP"
            )
        };
        for t in [
            "hopping:5m",
            "",
            "tumbling",
            "5m",
            "Tumbling:5m",
            "tumbling=5m",
            ":5m",
        ] {
            assert_eq!(parse_window(t), Err(forms(t)), "{t:?}");
        }
        assert_eq!(
            parse_window("tumbling:5x"),
            Err(r#"invalid window "tumbling:5x": invalid duration "5x": expected a whole number followed by ms, s, m, h or d (250ms, 10s, 5m, 1h, 1d)"#.into())
        );
        assert_eq!(
            parse_window("session:0s"),
            Err(r#"invalid window "session:0s": duration "0s" must be greater than zero"#.into())
        );
        assert!(
            parse_window("tumbling:")
                .unwrap_err()
                .contains(r#"invalid duration """#)
        );
        assert!(
            parse_window("sliding:5m/")
                .unwrap_err()
                .contains(r#"invalid duration """#)
        );
        assert!(
            parse_window("sliding:/1m")
                .unwrap_err()
                .contains(r#"invalid duration """#)
        );
        assert!(
            parse_window("sliding:5m/1m/1s")
                .unwrap_err()
                .contains(r#"invalid duration "1m/1s""#)
        );
        assert_eq!(
            parse_window("sliding:5m"),
            Err(
                r#"invalid window "sliding:5m": expected sliding:SIZE/SLIDE, like sliding:5m/1m"#
                    .into()
            )
        );
        assert_eq!(
            parse_window("sliding:1m/5m"),
            Err(
                r#"invalid window "sliding:1m/5m": the slide 5m is longer than the size 1m"#.into()
            )
        );
    }

    #[test]
    fn numbers_in_seconds() {
        assert_eq!(event_time(&int(1_762_071_303)), Ok(T));
        assert_eq!(event_time(&int(0)), Ok(0));
        assert_eq!(event_time(&int(-1)), Ok(-1000));
        assert_eq!(event_time(&float(1_762_071_303.12)), Ok(T + 120));
        assert_eq!(event_time(&float(1_762_071_303.5)), Ok(T + 500));
        assert_eq!(event_time(&float(0.0005)), Ok(0));
        assert_eq!(event_time(&float(-0.0005)), Ok(-1));
        assert_eq!(event_time(&float(-0.0)), Ok(0));
        assert_eq!(event_time(&float(-1.5)), Ok(-1500));
        // Largest count still read as seconds: year 5138.
        assert_eq!(event_time(&int(99_999_999_999)), Ok(99_999_999_999_000));
        assert_eq!(event_time(&float(99_999_999_999.9)), Ok(99_999_999_999_900));
    }

    #[test]
    fn decimal_literals() {
        assert_eq!(event_time(&dec("1762071303.120")), Ok(T + 120));
        assert_eq!(event_time(&dec("1762071303.1209")), Ok(T + 120));
        assert_eq!(event_time(&dec("1762071303.123456789")), Ok(T + 123));
        assert_eq!(event_time(&dec("1.762071303120e9")), Ok(T + 120));
        assert_eq!(event_time(&dec("1762071303120E-3")), Ok(T + 120));
        assert_eq!(event_time(&dec("1.76207130312e+12")), Ok(T + 120));
        assert_eq!(event_time(&dec("-0.0001")), Ok(-1));
        assert_eq!(event_time(&dec("-0.000")), Ok(0));
        assert_eq!(event_time(&dec("0e999999999999999999999")), Ok(0));
        assert_eq!(event_time(&dec("1e-999999999999999999999")), Ok(0));
        assert_eq!(event_time(&dec("-1e-999999999999999999999")), Ok(-1));
        assert!(
            event_time(&dec("1e999999999999999999999"))
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            event_time(&dec("1e30"))
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn units_by_magnitude() {
        // 1e11 and up: milliseconds.
        assert_eq!(event_time(&int(100_000_000_000)), Ok(100_000_000_000));
        assert_eq!(event_time(&float(1e11)), Ok(100_000_000_000));
        assert_eq!(event_time(&int(1_762_071_303_120)), Ok(T + 120));
        assert_eq!(event_time(&float(1_762_071_303_120.9)), Ok(T + 120));
        assert_eq!(event_time(&int(-100_000_000_000)), Ok(-100_000_000_000));
        assert_eq!(event_time(&int(-99_999_999_999)), Ok(-99_999_999_999_000));
        assert_eq!(event_time(&dec("-100000000000.5")), Ok(-100_000_000_001));
        // 1e14 and up: microseconds.
        assert_eq!(event_time(&int(99_999_999_999_999)), Ok(99_999_999_999_999));
        assert_eq!(event_time(&int(100_000_000_000_000)), Ok(100_000_000_000));
        assert_eq!(event_time(&int(1_762_071_303_120_999)), Ok(T + 120));
        assert_eq!(event_time(&int(-1_762_071_303_120_001)), Ok(-T - 121));
        // 1e17 and up: nanoseconds.
        assert_eq!(
            event_time(&int(99_999_999_999_999_999)),
            Ok(99_999_999_999_999)
        );
        assert_eq!(
            event_time(&int(100_000_000_000_000_000)),
            Ok(100_000_000_000)
        );
        assert_eq!(event_time(&int(1_762_071_303_120_999_999)), Ok(T + 120));
        assert_eq!(event_time(&float(1.7620713031205e18)), Ok(T + 120));
        assert_eq!(event_time(&int(-1_762_071_303_120_000_001)), Ok(-T - 121));
        assert_eq!(event_time(&int(isize::MAX)), Ok(9_223_372_036_854));
        assert_eq!(event_time(&int(isize::MIN)), Ok(-9_223_372_036_855));
    }

    #[test]
    fn big_integers() {
        let big = |s: &str| Val::Num(Num::big_int(s.parse().unwrap()));
        // Nanoseconds past i64: year 2262 and on.
        assert_eq!(
            event_time(&big("10000000000000000000")),
            Ok(10_000_000_000_000)
        );
        assert!(
            event_time(&big("100000000000000000000000000000"))
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn bad_numbers() {
        assert_eq!(
            event_time(&float(f64::NAN)),
            Err("time NaN is not a finite number".into())
        );
        assert_eq!(
            event_time(&float(f64::INFINITY)),
            Err("time Infinity is not a finite number".into())
        );
        assert_eq!(
            event_time(&float(f64::NEG_INFINITY)),
            Err("time -Infinity is not a finite number".into())
        );
        // Larger units for larger numbers: only absurd magnitudes are out of range.
        assert_eq!(
            event_time(&float(1e300)),
            Err("time 1e300 is out of range (years -9999 to 9999)".into())
        );
        assert!(
            event_time(&float(-1e30))
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(
            event_time(&dec("1.2.3")),
            Err("time 1.2.3 is not a number".into())
        );
        assert_eq!(
            event_time(&dec("1e")),
            Err("time 1e is not a number".into())
        );
    }

    #[test]
    fn rfc3339_strings() {
        assert_eq!(event_time(&string("2025-11-02T08:15:03Z")), Ok(T));
        assert_eq!(event_time(&string("2025-11-02T08:15:03.120Z")), Ok(T + 120));
        assert_eq!(event_time(&string("2025-11-02T08:15:03.5Z")), Ok(T + 500));
        assert_eq!(
            event_time(&string("2025-11-02T08:15:03.123456789Z")),
            Ok(T + 123)
        );
        assert_eq!(
            event_time(&string("2025-11-02T08:15:03.999999999Z")),
            Ok(T + 999)
        );
        assert_eq!(event_time(&string("2025-11-02T10:15:03+02:00")), Ok(T));
        assert_eq!(event_time(&string("2025-11-02T02:45:03-05:30")), Ok(T));
        assert_eq!(
            event_time(&string("2025-11-02T02:45:03.25-05:30")),
            Ok(T + 250)
        );
        assert_eq!(event_time(&string("2025-11-02t08:15:03z")), Ok(T));
        // Before 1970 the fraction is still floored.
        assert_eq!(event_time(&string("1969-12-31T23:59:59.9999Z")), Ok(-1));
        assert_eq!(event_time(&string("1969-12-31T23:59:59.0001Z")), Ok(-1000));
        assert_eq!(event_time(&string("1970-01-01T00:00:00Z")), Ok(0));
    }

    #[test]
    fn bad_strings_and_types() {
        assert_eq!(
            event_time(&string("yesterday")),
            Err(r#"time "yesterday" is not RFC 3339 (like 2026-11-02T08:15:03Z)"#.into())
        );
        for s in [
            "",
            "2026-13-02T08:15:03Z",
            "2025-11-02T25:15:03Z",
            "1762071303",
        ] {
            assert!(
                event_time(&string(s))
                    .unwrap_err()
                    .contains("is not RFC 3339"),
                "{s:?}"
            );
        }
        assert_eq!(
            event_time(&string("2025-11-02T08:15:03")),
            Err(r#"time "2025-11-02T08:15:03" has no UTC offset (add Z or one like +02:00: 2026-11-02T08:15:03Z)"#.into())
        );
        assert!(
            event_time(&string("2026-11-02"))
                .unwrap_err()
                .contains("has no UTC offset")
        );
        assert_eq!(
            event_time(&Val::Bool(true)),
            Err("time true is neither a number nor an RFC 3339 string".into())
        );
        assert_eq!(
            event_time(&Val::Null),
            Err("time null is neither a number nor an RFC 3339 string".into())
        );
        assert_eq!(
            event_time(&Val::Arr(vec![int(1)].into())),
            Err("time [1] is neither a number nor an RFC 3339 string".into())
        );
        // Long values are cut short to keep the message one readable line.
        let long = string(&"x".repeat(500));
        let error = event_time(&long).unwrap_err();
        assert!(error.len() < 120 && error.contains('…'), "{error}");
    }

    #[test]
    fn formatting() {
        assert_eq!(format_time(T), "2025-11-02T08:15:03Z");
        assert_eq!(format_time(T + 250), "2025-11-02T08:15:03.250Z");
        assert_eq!(format_time(T + 1), "2025-11-02T08:15:03.001Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_time(-1000), "1969-12-31T23:59:59Z");
        assert_eq!(format_time(-1500), "1969-12-31T23:59:58.500Z");
        assert_eq!(format_time(900_000_000_000_000_000), "900000000000000000ms");
        // What event_time reads, format_time writes back.
        for text in [
            "2025-11-02T08:15:03.120Z",
            "1969-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00Z",
        ] {
            assert_eq!(format_time(event_time(&string(text)).unwrap()), text);
        }
    }

    #[test]
    fn alignment() {
        assert_eq!(align(0, 1000), 0);
        assert_eq!(align(999, 1000), 0);
        assert_eq!(align(1000, 1000), 1000);
        assert_eq!(align(-1, 1000), -1000);
        assert_eq!(align(-1000, 1000), -1000);
        assert_eq!(align(-1001, 1000), -2000);
        assert_eq!(align(T + 59_999, 60_000), T - 3_000 + 60_000);
        assert_eq!(align(7, 3), 6);
        assert_eq!(align(-7, 3), -9);
    }

    #[test]
    fn tumbling_windows() {
        let spec = WindowSpec::Tumbling { size: 300_000 };
        // 08:15:03 is in 08:15:00..08:20:00.
        let start = T - 3_000;
        assert_eq!(windows_containing(&spec, T), vec![(start, start + 300_000)]);
        // A window's start belongs to it; its end to the next one.
        assert_eq!(
            windows_containing(&spec, start),
            vec![(start, start + 300_000)]
        );
        assert_eq!(
            windows_containing(&spec, start - 1),
            vec![(start - 300_000, start)]
        );
        assert_eq!(windows_containing(&spec, -1), vec![(-300_000, 0)]);
    }

    #[test]
    fn sliding_windows() {
        let spec = WindowSpec::Sliding {
            size: 300_000,
            slide: 60_000,
        };
        let minute = T - 3_000; // 08:15:00
        let windows = windows_containing(&spec, T);
        let starts: Vec<i64> = (0..5).map(|k| minute - (4 - k) * 60_000).collect();
        assert_eq!(
            windows,
            starts.iter().map(|&s| (s, s + 300_000)).collect::<Vec<_>>()
        );
        // Exactly at a start: that window is the last, the one ending there is out.
        let windows = windows_containing(&spec, minute);
        assert_eq!(windows.len(), 5);
        assert_eq!(windows.last(), Some(&(minute, minute + 300_000)));
        assert_eq!(windows.first(), Some(&(minute - 240_000, minute + 60_000)));

        // Size not a multiple of slide: 3 or 4 windows of 10s every 3s.
        let spec = WindowSpec::Sliding {
            size: 10_000,
            slide: 3_000,
        };
        assert_eq!(
            windows_containing(&spec, 9_000),
            vec![
                (0, 10_000),
                (3_000, 13_000),
                (6_000, 16_000),
                (9_000, 19_000)
            ]
        );
        assert_eq!(
            windows_containing(&spec, 10_000),
            vec![(3_000, 13_000), (6_000, 16_000), (9_000, 19_000)]
        );
        assert_eq!(
            windows_containing(&spec, 11_999),
            vec![(3_000, 13_000), (6_000, 16_000), (9_000, 19_000)]
        );
        assert_eq!(
            windows_containing(&spec, -1),
            vec![(-9_000, 1_000), (-6_000, 4_000), (-3_000, 7_000)]
        );
        // Slide equal to size behaves as tumbling.
        let spec = WindowSpec::Sliding {
            size: 1_000,
            slide: 1_000,
        };
        assert_eq!(windows_containing(&spec, 1_500), vec![(1_000, 2_000)]);
    }

    #[test]
    fn every_window_contains_its_time() {
        for (size, slide) in [(10_000, 3_000), (300_000, 60_000), (7, 7), (7, 1), (1, 1)] {
            let spec = WindowSpec::Sliding { size, slide };
            for t in -25_000..25_000 {
                let windows = windows_containing(&spec, t);
                assert!(
                    windows
                        .iter()
                        .all(|&(s, e)| s <= t && t < e && s % slide == 0 && e - s == size)
                );
                let n = windows.len() as i64;
                assert!(
                    n == size / slide || n == (size + slide - 1) / slide,
                    "{size}/{slide} at {t}: {n}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "session")]
    fn session_has_no_grid() {
        windows_containing(&WindowSpec::Session { gap: 1_000 }, 0);
    }

    #[test]
    fn lateness_may_be_zero() {
        assert_eq!(parse_lateness("0s"), Ok(0));
        assert_eq!(parse_lateness("000ms"), Ok(0));
        assert_eq!(parse_lateness("30s"), Ok(30_000));
        assert!(parse_lateness("0x").is_err());
        assert!(parse_lateness("0").is_err());
        assert!(parse_lateness("").is_err());
        assert!(parse_lateness("-1s").is_err());
    }
}
