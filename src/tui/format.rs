//! Text formatting shared by the panels: sizes, rates, clocks, `N/A`, and the character-level
//! gauges and sparklines (drawn as text so that ASCII mode and narrow cells work the same way).

/// Shown for any value the driver did not report.
pub const NA: &str = "N/A";

const KIB: f64 = 1024.0;
const MIB: f64 = KIB * 1024.0;
const GIB: f64 = MIB * 1024.0;

/// A byte count as `12.3G`, `512M`, `900K` (binary units, short form for tables).
pub fn bytes_short(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= GIB * 100.0 {
        format!("{:.0}G", b / GIB)
    } else if b >= GIB {
        format!("{:.1}G", b / GIB)
    } else if b >= MIB {
        format!("{:.0}M", b / MIB)
    } else {
        format!("{:.0}K", b / KIB)
    }
}

/// An optional byte count, `N/A` when missing.
pub fn opt_bytes(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| NA.to_string(), bytes_short)
}

/// Used / total in GiB, e.g. `38.5/79.6G` (whole GiB from 100 GiB up, where a decimal adds
/// width but no information).
pub fn used_of_total_gib(used: u64, total: u64) -> String {
    let (u, t) = (used as f64 / GIB, total as f64 / GIB);
    if t >= 100.0 {
        format!("{u:.0}/{t:.0}G")
    } else {
        format!("{u:.1}/{t:.1}G")
    }
}

/// A throughput as `512M/s`.
pub fn rate(bytes_per_second: Option<u64>) -> String {
    bytes_per_second.map_or_else(|| NA.to_string(), |b| format!("{}/s", bytes_short(b)))
}

/// An optional number with a unit suffix, `N/A` when missing.
pub fn opt<T: std::fmt::Display>(value: Option<T>, unit: &str) -> String {
    value.map_or_else(|| NA.to_string(), |v| format!("{v}{unit}"))
}

/// Percent of `used` in `total` (0 when the total is unknown).
pub fn percent_of(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        used as f64 / total as f64 * 100.0
    }
}

/// `HH:MM:SS` and the date of a Unix time in milliseconds, in UTC (the frame's clock, so a
/// replay shows when it was recorded, not now).
pub fn utc_clock(timestamp_ms: u64) -> String {
    let secs = timestamp_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm), so no date crate is needed for one header field.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
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

/// Uptime as `12d 03:04` or `03:04:05`.
pub fn uptime(seconds: u64) -> String {
    let days = seconds / 86_400;
    let h = seconds % 86_400 / 3600;
    let m = seconds % 3600 / 60;
    if days > 0 {
        format!("{days}d {h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{:02}", seconds % 60)
    }
}

/// A sample interval as `1.0s` or `250ms`.
pub fn interval(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{ms}ms")
    }
}

/// The filled and empty parts of a `width`-cell gauge at `percent`.
pub fn gauge_cells(percent: f64, width: usize, chars: (char, char)) -> (String, String) {
    let filled = ((percent.clamp(0.0, 100.0) / 100.0) * width as f64).round() as usize;
    let filled = filled.min(width);
    (
        std::iter::repeat_n(chars.0, filled).collect(),
        std::iter::repeat_n(chars.1, width - filled).collect(),
    )
}

/// The newest `width` values of a 0..=100 series as one character each; a gap (`None`) is a
/// space. Shorter series are right-aligned so time runs left to right and ends at "now".
pub fn sparkline(
    values: impl Iterator<Item = Option<u32>>,
    len: usize,
    width: usize,
    levels: &[char; 8],
) -> String {
    let mut out = String::with_capacity(width * 3);
    for _ in len..width {
        out.push(' ');
    }
    for v in values {
        match v {
            Some(v) => {
                let idx = (v.min(100) as usize * (levels.len() - 1) + 50) / 100;
                out.push(levels[idx]);
            }
            None => out.push(' '),
        }
    }
    out
}

/// Cuts `text` to at most `width` characters.
pub fn fit(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// The GPU name without the vendor prefix, for narrow places.
pub fn short_gpu_name(name: &str) -> &str {
    name.strip_prefix("NVIDIA ").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats_known_dates_in_utc() {
        assert_eq!(utc_clock(0), "1970-01-01 00:00:00 UTC");
        // 2000-02-29 12:34:56 UTC, a leap day.
        assert_eq!(utc_clock(951_827_696_000), "2000-02-29 12:34:56 UTC");
    }

    #[test]
    fn byte_sizes_pick_a_readable_unit() {
        assert_eq!(bytes_short(512 * 1024 * 1024), "512M");
        assert_eq!(bytes_short(3 * 1024 * 1024 * 1024 / 2), "1.5G");
        assert_eq!(bytes_short(2048), "2K");
        assert_eq!(opt_bytes(None), NA);
    }

    #[test]
    fn gauge_fills_in_proportion_and_never_overflows() {
        let (f, e) = gauge_cells(50.0, 10, ('#', '.'));
        assert_eq!((f.as_str(), e.as_str()), ("#####", "....."));
        let (f, e) = gauge_cells(250.0, 4, ('#', '.'));
        assert_eq!((f.len(), e.len()), (4, 0));
    }

    #[test]
    fn sparkline_pads_short_series_and_marks_gaps() {
        let levels = ['0', '1', '2', '3', '4', '5', '6', '7'];
        let s = sparkline([Some(0), None, Some(100)].into_iter(), 3, 5, &levels);
        assert_eq!(s, "  0 7");
    }

    #[test]
    fn uptime_switches_to_days() {
        assert_eq!(uptime(59), "00:00:59");
        assert_eq!(uptime(86_400 * 2 + 3_660), "2d 01:01");
    }
}
