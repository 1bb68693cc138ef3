//! The `date` fields of replies: a human-readable time like the seeds' `new Date().toString()`.

use std::fmt::Write;

/// Milliseconds since the epoch as `Tue Jan 02 02:28:12 UTC 2024`, always in UTC. Written byte by
/// byte: it is in every reply 0 and DELIVERED, and `format!` cost ~2,000 instructions a call.
pub fn date_string(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut out = String::with_capacity(32);
    out.push_str(WEEKDAYS[days.rem_euclid(7) as usize]);
    out.push(' ');
    out.push_str(MONTHS[(m - 1) as usize]);
    out.push(' ');
    two_digits(&mut out, d);
    out.push(' ');
    two_digits(&mut out, rem / 3600);
    out.push(':');
    two_digits(&mut out, rem % 3600 / 60);
    out.push(':');
    two_digits(&mut out, rem % 60);
    out.push_str(" UTC ");
    if (1000..10_000).contains(&y) {
        two_digits(&mut out, y / 100);
        two_digits(&mut out, y % 100);
    } else {
        let _ = write!(out, "{y}");
    }
    out
}

/// `n` (0–99) as two digits.
fn two_digits(out: &mut String, n: i64) {
    out.push(char::from(b'0' + (n / 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_string_matches_known_instant() {
        // 2024-01-02 02:28:12 UTC, a Tuesday (the seeds' sample, in UTC).
        assert_eq!(
            date_string(1_704_162_492_912),
            "Tue Jan 02 02:28:12 UTC 2024"
        );
    }

    /// The `format!` this replaced, as the reference.
    fn reference(ms: i64) -> String {
        let secs = ms.div_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
            WEEKDAYS[days.rem_euclid(7) as usize],
            MONTHS[(m - 1) as usize],
            d,
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            y
        )
    }

    #[test]
    fn date_string_equals_the_format_it_replaced() {
        // Every day from 1600 to 2400 at a moving time of day, the epoch's edges, and far years.
        let day = 86_400_000i64;
        let mut ms = -11_676_096_000_000i64; // 1600-01-01
        while ms < 13_569_465_600_000 {
            assert_eq!(date_string(ms), reference(ms), "{ms}");
            ms += day + 1_234_567;
        }
        for ms in [
            0,
            -1,
            1,
            999,
            -1000,
            i64::from(i32::MAX) * 1000,
            -62_135_596_800_000 - 1,
            253_402_300_800_000,
        ] {
            assert_eq!(date_string(ms), reference(ms), "{ms}");
        }
    }
}
