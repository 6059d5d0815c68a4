//! Human-friendly units used by the config file and the admin API: durations (`"30s"`,
//! `"500ms"`) and byte sizes (`"10MiB"`). Both parse strictly and serialize back to the
//! same human form, so a value read from the admin API can be written back unchanged.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Upper bounds of durations and sizes (the table is in ARCHITECTURE.md, "Bounds").
/// Parsing refuses anything above `MAX_DURATION` / `MAX_SIZE`, so no configured or
/// admin-given value can overflow an `Instant` or a millisecond counter; fields with a
/// tighter meaning are checked against the narrower bounds during validation.
pub mod bounds {
    use std::time::Duration;

    /// Longest duration anywhere (lifetimes: cache TTLs, retention, rate-limit windows).
    pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
    /// Longest timeout (request, upstream, health check, queue wait and lease, grace).
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
    /// Longest period (refresh and check intervals, breaker windows, instance TTLs).
    pub const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);
    /// Longest Redis connect / command timeout.
    pub const MAX_REDIS_TIMEOUT: Duration = Duration::from_secs(60);
    /// Largest size anywhere (the L1 cache capacity).
    pub const MAX_SIZE: u64 = 64 * 1024 * 1024 * 1024;
    /// Largest body-like size (request body, cached object, compression threshold).
    pub const MAX_BODY: u64 = 1024 * 1024 * 1024;
    /// Largest header block.
    pub const MAX_HEADER_BYTES: u64 = 1024 * 1024;
}

/// `Err` naming `field` when `value` is above `max`.
pub fn at_most(field: &str, value: Duration, max: Duration) -> Result<(), crate::spec::FieldError> {
    if value > max {
        return Err(crate::spec::FieldError::new(field, format!("must be at most {}", HumanDuration(max))));
    }
    Ok(())
}

/// `Err` naming `field` when `value` is above `max` bytes.
pub fn size_at_most(field: &str, value: ByteSize, max: u64) -> Result<(), crate::spec::FieldError> {
    if value.bytes() > max {
        return Err(crate::spec::FieldError::new(field, format!("must be at most {}", ByteSize(max))));
    }
    Ok(())
}

/// `start + d`, or `start` plus about 30 years when that overflows: never panics.
pub fn deadline_after(start: std::time::Instant, d: Duration) -> std::time::Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    start.checked_add(d).or_else(|| start.checked_add(FAR)).unwrap_or(start)
}

/// A duration written as a human string (`"250ms"`, `"30s"`, `"1m"`, `"1h 30m"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Builds a duration from whole seconds.
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    /// Builds a duration from milliseconds.
    pub const fn millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
    /// The wrapped `std::time::Duration`.
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty duration".into());
        }
        let d = humantime::parse_duration(t)
            .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. \"500ms\", \"30s\", \"5m\""))?;
        if d > bounds::MAX_DURATION {
            return Err(format!("duration {s:?} is too long: at most 365 days"));
        }
        Ok(HumanDuration(d))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let ms = d.as_millis();
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return write!(f, "{}", humantime::format_duration(d));
        }
        if ms == 0 {
            f.write_str("0s")
        } else if ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A size in bytes written as `"10MiB"`, `"32KiB"`, `"1MB"` or a plain integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Builds a size from kibibytes.
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }
    /// Builds a size from mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }
    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
    /// `n` bytes, refused above `bounds::MAX_SIZE`.
    pub fn bounded(n: u64) -> Result<Self, String> {
        if n > bounds::MAX_SIZE {
            return Err(format!("size {n} is too large: at most {}", ByteSize(bounds::MAX_SIZE)));
        }
        Ok(Self(n))
    }
    /// The number of bytes as `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || format!("invalid size {s:?}; write e.g. \"512\", \"32KiB\", \"10MiB\"");
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" | "ki" => 1024,
            "m" | "mb" => 1000 * 1000,
            "mib" | "mi" => 1024 * 1024,
            "g" | "gb" => 1000 * 1000 * 1000,
            "gib" | "gi" => 1024 * 1024 * 1024,
            _ => return Err(bad()),
        };
        let n = n.checked_mul(mult).ok_or_else(bad)?;
        ByteSize::bounded(n)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        const GI: u64 = 1024 * 1024 * 1024;
        const MI: u64 = 1024 * 1024;
        if b != 0 && b.is_multiple_of(GI) {
            write!(f, "{}GiB", b / GI)
        } else if b != 0 && b.is_multiple_of(MI) {
            write!(f, "{}MiB", b / MI)
        } else if b != 0 && b.is_multiple_of(1024) {
            write!(f, "{}KiB", b / 1024)
        } else {
            write!(f, "{b}")
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"10MiB\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                ByteSize::bounded(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("size must not be negative"))?;
                ByteSize::bounded(v).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_in_the_same_form() {
        for s in ["250ms", "30s", "5m", "1h", "0s"] {
            let d: HumanDuration = s.parse().expect("valid");
            assert_eq!(d.to_string(), s);
        }
        assert_eq!("1m".parse::<HumanDuration>().map(|d| d.0), Ok(Duration::from_secs(60)));
        assert!("soon".parse::<HumanDuration>().is_err());
        assert!("".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn durations_above_a_year_are_refused_and_deadlines_never_overflow() {
        assert!("10000000000000000000s".parse::<HumanDuration>().is_err());
        assert!("366d".parse::<HumanDuration>().is_err());
        assert_eq!("365d".parse::<HumanDuration>().map(|d| d.0), Ok(bounds::MAX_DURATION));
        let now = std::time::Instant::now();
        assert!(deadline_after(now, Duration::MAX) > now);
        assert_eq!(deadline_after(now, Duration::from_secs(1)), now + Duration::from_secs(1));
    }

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!("10MiB".parse::<ByteSize>(), Ok(ByteSize(10 * 1024 * 1024)));
        assert_eq!("32KiB".parse::<ByteSize>(), Ok(ByteSize(32 * 1024)));
        assert_eq!("1MB".parse::<ByteSize>(), Ok(ByteSize(1_000_000)));
        assert_eq!("512".parse::<ByteSize>(), Ok(ByteSize(512)));
        assert!("ten".parse::<ByteSize>().is_err());
        assert!("10XB".parse::<ByteSize>().is_err());
        assert!("99999999999999999999GiB".parse::<ByteSize>().is_err());
        assert!("65GiB".parse::<ByteSize>().is_err(), "above MAX_SIZE");
        assert_eq!("64GiB".parse::<ByteSize>(), Ok(ByteSize(bounds::MAX_SIZE)));
        assert_eq!(ByteSize::mib(10).to_string(), "10MiB");
    }
}
