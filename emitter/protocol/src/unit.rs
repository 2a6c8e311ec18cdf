//! CloudWatch units as a type.

use core::fmt;
use core::str::FromStr;

macro_rules! units {
    ($($variant:ident => $name:literal,)*) => {
        /// A CloudWatch unit. [`Unit::None`] is the default.
        ///
        /// The string forms are exactly CloudWatch's (`"Count/Second"`,
        /// `"Milliseconds"`, ...); [`FromStr`] accepts only those.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Unit {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
            /// `None`: a plain number.
            #[default]
            None,
        }

        impl Unit {
            /// Every unit, in CloudWatch's order.
            pub const ALL: &'static [Unit] = &[$(Unit::$variant,)* Unit::None];

            /// The CloudWatch name of the unit.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Unit::$variant => $name,)*
                    Unit::None => "None",
                }
            }
        }

        impl FromStr for Unit {
            type Err = UnknownUnit;

            fn from_str(s: &str) -> Result<Self, UnknownUnit> {
                match s {
                    $($name => Ok(Unit::$variant),)*
                    "None" => Ok(Unit::None),
                    _ => Err(UnknownUnit),
                }
            }
        }
    };
}

units! {
    Seconds => "Seconds",
    Microseconds => "Microseconds",
    Milliseconds => "Milliseconds",
    Bytes => "Bytes",
    Kilobytes => "Kilobytes",
    Megabytes => "Megabytes",
    Gigabytes => "Gigabytes",
    Terabytes => "Terabytes",
    Bits => "Bits",
    Kilobits => "Kilobits",
    Megabits => "Megabits",
    Gigabits => "Gigabits",
    Terabits => "Terabits",
    Percent => "Percent",
    Count => "Count",
    BytesPerSecond => "Bytes/Second",
    KilobytesPerSecond => "Kilobytes/Second",
    MegabytesPerSecond => "Megabytes/Second",
    GigabytesPerSecond => "Gigabytes/Second",
    TerabytesPerSecond => "Terabytes/Second",
    BitsPerSecond => "Bits/Second",
    KilobitsPerSecond => "Kilobits/Second",
    MegabitsPerSecond => "Megabits/Second",
    GigabitsPerSecond => "Gigabits/Second",
    TerabitsPerSecond => "Terabits/Second",
    CountPerSecond => "Count/Second",
}

/// The string named no CloudWatch unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownUnit;

impl fmt::Display for UnknownUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a CloudWatch unit")
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How finely CloudWatch stores a metric.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    /// One-second data (`StorageResolution = 1`, "high resolution").
    High,
    /// One-minute data (`StorageResolution = 60`), the default.
    #[default]
    Standard,
}

impl Resolution {
    /// The `StorageResolution` value in seconds.
    pub const fn seconds(self) -> u32 {
        match self {
            Resolution::High => 1,
            Resolution::Standard => 60,
        }
    }

    /// The resolution for a `StorageResolution` value, if it is 1 or 60.
    pub const fn from_seconds(seconds: u32) -> Option<Self> {
        match seconds {
            1 => Some(Resolution::High),
            60 => Some(Resolution::Standard),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_round_trips_through_its_name() {
        assert_eq!(Unit::ALL.len(), 27);
        for unit in Unit::ALL {
            assert_eq!(unit.as_str().parse::<Unit>(), Ok(*unit));
        }
    }

    #[test]
    fn unknown_units_are_refused() {
        for bad in ["", "count", "ms", "Seconds ", "Bytes/second"] {
            assert_eq!(bad.parse::<Unit>(), Err(UnknownUnit), "{bad:?}");
        }
    }

    #[test]
    fn resolution_accepts_only_1_and_60() {
        assert_eq!(Resolution::from_seconds(1), Some(Resolution::High));
        assert_eq!(Resolution::from_seconds(60), Some(Resolution::Standard));
        assert_eq!(Resolution::from_seconds(5), None);
    }
}
