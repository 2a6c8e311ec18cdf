//! How the integration pushes: the [`Policy`], the receiver and its key.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::policy::Policy;

/// How the integration pushes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// When to push, and the time limits of a push.
    pub policy: Policy,
    /// The receiver's base URL; `None` writes every batch as EMF.
    pub endpoint: Option<String>,
    /// Sent as `Authorization: Bearer <key>`, or used to sign each push
    /// when `sign` is set.
    pub api_key: Option<String>,
    /// Sign pushes with `api_key` (an `Edgepush-Signature` header) instead
    /// of sending it.
    pub sign: bool,
    /// Add `FunctionName` and `FunctionVersion` dimensions.
    pub function_dimensions: bool,
}

impl Default for Options {
    /// [`Policy::default`], no receiver (EMF only), function dimensions on.
    fn default() -> Self {
        Options {
            policy: Policy::default(),
            endpoint: None,
            api_key: None,
            sign: false,
            function_dimensions: true,
        }
    }
}

impl Options {
    /// Options from the environment: `EDGEPUSH_URL`, `EDGEPUSH_API_KEY`,
    /// `EDGEPUSH_SIGN` (`1` or `true`), `EDGEPUSH_FLUSH` (see
    /// [`Flush::from_str`](crate::Flush#method.from_str)) and
    /// `EDGEPUSH_DEADLINE_MARGIN_MS`. Empty variables count as unset.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Options::from_env`] with the variables `var` gives.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let mut options = Options {
            endpoint: var("EDGEPUSH_URL"),
            api_key: var("EDGEPUSH_API_KEY"),
            sign: var("EDGEPUSH_SIGN").is_some_and(|v| v == "1" || v == "true"),
            ..Options::default()
        };
        if let Some(flush) = var("EDGEPUSH_FLUSH") {
            options.policy.flush = flush.parse().map_err(Error::Setting)?;
        }
        if let Some(ms) = var("EDGEPUSH_DEADLINE_MARGIN_MS") {
            let ms = ms.parse().map_err(|_| {
                Error::Setting(format!(
                    "EDGEPUSH_DEADLINE_MARGIN_MS: `{ms}` is not milliseconds"
                ))
            })?;
            options.policy.margin = Duration::from_millis(ms);
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Flush;

    fn from(vars: &[(&str, &str)]) -> Result<Options> {
        Options::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_environment_sets_what_it_names_and_empty_is_unset() {
        let o = from(&[]).expect("defaults");
        assert_eq!((o.endpoint, o.api_key, o.sign), (None, None, false));
        assert_eq!(o.policy, Policy::default());
        let o = from(&[
            ("EDGEPUSH_URL", "https://metrics.example.com"),
            ("EDGEPUSH_API_KEY", ""),
            ("EDGEPUSH_SIGN", "true"),
            ("EDGEPUSH_FLUSH", "after-response"),
            ("EDGEPUSH_DEADLINE_MARGIN_MS", "250"),
        ])
        .expect("options");
        assert_eq!(o.endpoint.as_deref(), Some("https://metrics.example.com"));
        assert_eq!((o.api_key, o.sign), (None, true));
        assert_eq!(o.policy.flush, Flush::AfterResponse);
        assert_eq!(o.policy.margin, Duration::from_millis(250));
        assert!(from(&[("EDGEPUSH_SIGN", "yes")]).is_ok_and(|o| !o.sign));
    }

    #[test]
    fn bad_settings_say_which_and_why() {
        let err = from(&[("EDGEPUSH_FLUSH", "sometimes")]).expect_err("unknown");
        assert!(
            err.to_string()
                .starts_with("bad setting: unknown flush strategy `sometimes`"),
            "{err}"
        );
        let err = from(&[("EDGEPUSH_DEADLINE_MARGIN_MS", "soon")]).expect_err("not ms");
        assert_eq!(
            err.to_string(),
            "bad setting: EDGEPUSH_DEADLINE_MARGIN_MS: `soon` is not milliseconds"
        );
    }
}
