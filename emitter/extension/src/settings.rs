//! The extension's settings, from the function's environment variables
//! (Lambda hands an extension the function's environment).

use std::time::Duration;

use edgepush_lambda::{Flush, Options};

use crate::recorder::GaugeSigns;

/// The budget of the last push, at SHUTDOWN.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(1);

/// What the extension is set to do.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settings {
    /// The receiver, key, flush strategy and deadline margin.
    pub options: Options,
    /// The CloudWatch namespace of every metric.
    pub namespace: String,
    /// The StatsD port on 127.0.0.1 (UDP); `None` listens for none.
    pub statsd_port: Option<u16>,
    /// How a gauge value written with a sign is read.
    pub gauge_signs: GaugeSigns,
    /// The OTLP/HTTP port on 127.0.0.1; `None` listens for none.
    pub otlp_port: Option<u16>,
    /// The port the Telemetry API sends platform events to (0: any free).
    pub telemetry_port: u16,
    /// Record the platform's metrics.
    pub platform_metrics: bool,
}

impl Settings {
    /// The settings: [`Options::from_env`]'s (`EDGEPUSH_URL`,
    /// `EDGEPUSH_API_KEY`, `EDGEPUSH_SIGN`, `EDGEPUSH_FLUSH`,
    /// `EDGEPUSH_DEADLINE_MARGIN_MS`), and `EDGEPUSH_NAMESPACE` (default
    /// `Lambda`), `EDGEPUSH_STATSD_PORT` (8125; `off`), `EDGEPUSH_STATSD_GAUGES`
    /// (`delta` or `value`), `EDGEPUSH_OTLP_PORT` (4318; `off`),
    /// `EDGEPUSH_TELEMETRY_PORT` (any free),
    /// `EDGEPUSH_PLATFORM_METRICS` (`on` or `off`). Empty is unset.
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|name| std::env::var(name).ok(), Options::from_env())
    }

    fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        options: edgepush_lambda::Result<Options>,
    ) -> Result<Self, String> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let mut options = options.map_err(|e| e.to_string())?;
        // Lambda gives external extensions two seconds at SHUTDOWN: half
        // of it for the last push, the rest for the last report and EMF.
        options.policy.shutdown_budget = SHUTDOWN_BUDGET;
        // An extension sees each invocation end only after its response:
        // its strategies are after each invocation, periodic and adaptive
        // (the default).
        options.policy.flush = match (var("EDGEPUSH_FLUSH"), options.policy.flush) {
            (None, _) => Flush::adaptive(),
            (Some(_), Flush::AfterResponse) => Flush::EndOfInvocation,
            (Some(_), flush) => flush,
        };
        let port = |name: &str, default: Option<u16>| match var(name).as_deref() {
            None => Ok(default),
            Some("off") => Ok(None),
            Some(p) => p
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}: `{p}` is not a port (or `off`)")),
        };
        let gauge_signs = match var("EDGEPUSH_STATSD_GAUGES").as_deref() {
            None | Some("delta") => GaugeSigns::Delta,
            Some("value") => GaugeSigns::Value,
            Some(other) => {
                return Err(format!(
                    "EDGEPUSH_STATSD_GAUGES: `{other}` is neither `delta` nor `value`"
                ));
            }
        };
        let platform_metrics = match var("EDGEPUSH_PLATFORM_METRICS").as_deref() {
            None | Some("on" | "1" | "true") => true,
            Some("off" | "0" | "false") => false,
            Some(other) => {
                return Err(format!(
                    "EDGEPUSH_PLATFORM_METRICS: `{other}` is neither `on` nor `off`"
                ));
            }
        };
        Ok(Settings {
            options,
            namespace: var("EDGEPUSH_NAMESPACE").unwrap_or_else(|| "Lambda".into()),
            statsd_port: port("EDGEPUSH_STATSD_PORT", Some(8125))?,
            gauge_signs,
            otlp_port: port("EDGEPUSH_OTLP_PORT", Some(4318))?,
            telemetry_port: port("EDGEPUSH_TELEMETRY_PORT", Some(0))?
                .ok_or("EDGEPUSH_TELEMETRY_PORT: the platform's events are needed, not `off`")?,
            platform_metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)], options: Options) -> Result<Settings, String> {
        Settings::from_vars(
            |name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            },
            Ok(options),
        )
    }

    #[test]
    fn defaults_are_adaptive_on_8125_with_platform_metrics() {
        let s = from(&[], Options::default()).expect("defaults");
        assert_eq!(s.options.policy.flush, Flush::adaptive());
        assert_eq!(s.options.policy.shutdown_budget, SHUTDOWN_BUDGET);
        assert_eq!(s.namespace, "Lambda");
        assert_eq!(s.statsd_port, Some(8125));
        assert_eq!(s.gauge_signs, GaugeSigns::Delta);
        assert_eq!(s.otlp_port, Some(4318));
        assert_eq!(s.telemetry_port, 0);
        assert!(s.platform_metrics);
    }

    #[test]
    fn settings_set_what_they_name() {
        let mut options = Options::default();
        options.policy.flush = Flush::AfterResponse;
        let s = from(
            &[
                ("EDGEPUSH_FLUSH", "after-response"),
                ("EDGEPUSH_NAMESPACE", "Shop"),
                ("EDGEPUSH_STATSD_PORT", "off"),
                ("EDGEPUSH_STATSD_GAUGES", "value"),
                ("EDGEPUSH_OTLP_PORT", "14318"),
                ("EDGEPUSH_TELEMETRY_PORT", "4243"),
                ("EDGEPUSH_PLATFORM_METRICS", "off"),
            ],
            options,
        )
        .expect("settings");
        assert_eq!(s.options.policy.flush, Flush::EndOfInvocation);
        assert_eq!(s.namespace, "Shop");
        assert_eq!(s.statsd_port, None);
        assert_eq!(s.gauge_signs, GaugeSigns::Value);
        assert_eq!(s.otlp_port, Some(14318));
        assert_eq!(s.telemetry_port, 4243);
        assert!(!s.platform_metrics);
        let mut options = Options::default();
        options.policy.flush = Flush::Periodic {
            interval: Duration::from_secs(30),
            points: 10,
        };
        let s = from(&[("EDGEPUSH_FLUSH", "periodic:30:10")], options.clone()).expect("periodic");
        assert_eq!(s.options.policy.flush, options.policy.flush);
    }

    #[test]
    fn bad_settings_say_which_and_why() {
        let bad = |name, value| from(&[(name, value)], Options::default()).expect_err("refused");
        assert_eq!(
            bad("EDGEPUSH_STATSD_PORT", "udp"),
            "EDGEPUSH_STATSD_PORT: `udp` is not a port (or `off`)"
        );
        assert_eq!(
            bad("EDGEPUSH_STATSD_GAUGES", "sum"),
            "EDGEPUSH_STATSD_GAUGES: `sum` is neither `delta` nor `value`"
        );
        assert_eq!(
            bad("EDGEPUSH_PLATFORM_METRICS", "maybe"),
            "EDGEPUSH_PLATFORM_METRICS: `maybe` is neither `on` nor `off`"
        );
        assert!(bad("EDGEPUSH_TELEMETRY_PORT", "off").starts_with("EDGEPUSH_TELEMETRY_PORT"));
    }
}
