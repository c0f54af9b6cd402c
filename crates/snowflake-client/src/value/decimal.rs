//! [`Decimal`]: Snowflake's exact FIXED numbers (NUMBER(38, s) fits an `i128`), parsed from
//! rowset text without an exponent and printed back digit for digit — never through a float.

use std::fmt;

use crate::error::{Error, Result};

/// An exact decimal number: `unscaled / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    unscaled: i128,
    scale: u32,
}

impl Decimal {
    /// `unscaled / 10^scale`; scales above 38 are refused.
    pub fn new(unscaled: i128, scale: u32) -> Result<Self> {
        if scale > 38 {
            return Err(Error::protocol(format!(
                "decimal scale {scale} is above 38"
            )));
        }
        Ok(Decimal { unscaled, scale })
    }

    pub fn unscaled(&self) -> i128 {
        self.unscaled
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The value as an integer when it has no fractional part.
    pub fn to_i128(&self) -> Option<i128> {
        let p = 10i128.pow(self.scale);
        (self.unscaled % p == 0).then(|| self.unscaled / p)
    }

    /// The nearest `f64` (may lose precision; for display and arithmetic, not storage).
    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// Parse `-123.4500` style text exactly (no exponent).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::protocol(format!("'{text}' is not a decimal number"));
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let mut unscaled: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            unscaled = unscaled
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(b - b'0')))
                .ok_or_else(bad)?;
        }
        Decimal::new(
            if negative { -unscaled } else { unscaled },
            frac.len() as u32,
        )
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.unscaled);
        }
        let digits = self.unscaled.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        let sign = if self.unscaled < 0 { "-" } else { "" };
        write!(f, "{sign}{int}.{frac}")
    }
}
