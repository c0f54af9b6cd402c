//! Snowflake's date and time encodings turned into chrono values: days since the epoch, seconds
//! (or units of `10^-scale` seconds) since midnight or the epoch, and time zones encoded as
//! minutes plus 1440. Shared by the JSON decoder (`json`) and the Arrow decoder
//! ([`crate::arrow`]), so both read a cell the same way.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, Utc};

use crate::error::{Error, Result};

pub(crate) fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// A date from days since the epoch.
pub(crate) fn date_from_days(days: i64) -> Result<NaiveDate> {
    epoch_date()
        .checked_add_signed(Duration::days(days))
        .ok_or_else(|| Error::protocol(format!("date {days} days from 1970 is out of range")))
}

/// A time of day from seconds and nanoseconds since midnight.
pub(crate) fn time_from_parts(secs: i64, nanos: u32) -> Result<NaiveTime> {
    u32::try_from(secs)
        .ok()
        .and_then(|s| NaiveTime::from_num_seconds_from_midnight_opt(s, nanos))
        .ok_or_else(|| Error::protocol(format!("time {secs}s after midnight is out of range")))
}

/// An instant from seconds and nanoseconds since the epoch.
pub(crate) fn instant_from_parts(secs: i64, nanos: u32) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| Error::protocol(format!("timestamp {secs}s from 1970 is out of range")))
}

/// Snowflake encodes a time zone as its offset in minutes plus 1440.
pub(crate) fn offset_from_encoded(encoded: i64) -> Result<FixedOffset> {
    i32::try_from((encoded - 1440) * 60)
        .ok()
        .and_then(FixedOffset::east_opt)
        .ok_or_else(|| Error::protocol(format!("time zone code {encoded} is out of range")))
}

/// Split a value in units of `10^-scale` into whole units and nanoseconds (floor division, so
/// negative values before 1970 are right).
pub(crate) fn split_scaled(value: i64, scale: u32) -> (i64, u32) {
    let scale = scale.min(9);
    let per_sec = 10i64.pow(scale);
    let secs = value.div_euclid(per_sec);
    let frac = value.rem_euclid(per_sec);
    (secs, (frac * 10i64.pow(9 - scale)) as u32)
}
