//! Times as the customer reads them. Payments in CNY are shown in Beijing time (UTC+8, no
//! daylight saving), the same on the server and in the browser, so the hydrated page matches
//! the server's HTML.

/// `2026-11-27 14:03:22` in Beijing time, from Unix milliseconds.
pub fn beijing(ms: i64) -> String {
    let secs = ms.div_euclid(1000) + 8 * 3600;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `14:59` (or `1:02:03` beyond an hour) until `deadline`; `0:00` once passed.
pub fn remaining(now_ms: i64, deadline_ms: i64) -> String {
    let left = (deadline_ms - now_ms).max(0);
    let secs = (left + 999) / 1000;
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn beijing_time_and_countdowns() {
        assert_eq!(super::beijing(0), "1970-01-01 08:00:00");
        // 2026-11-27T06:03:22Z
        assert_eq!(super::beijing(1_795_759_402_000), "2026-11-27 14:03:22");
        assert_eq!(super::beijing(951_782_400_000), "2000-02-29 08:00:00");
        assert_eq!(super::remaining(0, 900_000), "15:00");
        assert_eq!(super::remaining(0, 4_999), "0:05");
        assert_eq!(super::remaining(10, 0), "0:00");
        assert_eq!(super::remaining(0, 3_723_000), "1:02:03");
    }
}
