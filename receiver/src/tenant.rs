//! Tenants: who may push, into which namespaces, and how fast.
//!
//! Each tenant has one or more keys, the CloudWatch namespaces it may write
//! (exact names, or `Prefix/*`), optional request and point rates, and
//! optionally its own [`Limits`]. A request proves its tenant with
//! `Authorization: Bearer <key>` or with an `Edgepush-Signature` (see
//! [`edgepush_protocol::sign`]): an HMAC-SHA256 of the time and the body, refused
//! when it is more than the window away from the receiver's clock or was
//! seen before ([`Replays`]). Keys are compared in constant time.
//!
//! With no tenant configured the receiver is open (local use): every
//! request is accepted and may write any namespace.
//!
//! About 500 lines: tenants, keys, signatures, replay and rate limits are
//! the one question "who may push what, how often", answered in one place.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use edgepush_protocol::sign;
use serde::Deserialize;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::error::{Error, Result};
use crate::limits::Limits;

/// One tenant's settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// A name for logs, answers and the dedupe keys.
    pub name: String,
    /// Its keys: each may be sent as a bearer key or used to sign.
    pub keys: Vec<String>,
    /// The namespaces it may write: exact names, `Prefix/*` (anything
    /// below `Prefix/`), or `*` (any).
    pub namespaces: Vec<String>,
    /// Refuse bearer keys: only signed requests are accepted.
    #[serde(default)]
    pub require_signature: bool,
    /// Most requests per second, on average (0: no limit).
    #[serde(default)]
    pub requests_per_second: u32,
    /// Most points per second, on average (0: no limit).
    #[serde(default)]
    pub points_per_second: u32,
    /// How many seconds' worth of requests or points may come at once.
    #[serde(default = "default_burst_seconds")]
    pub burst_seconds: u32,
    /// Bounds for this tenant's requests instead of the receiver's (the
    /// body is still read up to the receiver's `max_body_bytes` at most).
    #[serde(default)]
    pub limits: Option<Limits>,
}

fn default_burst_seconds() -> u32 {
    10
}

impl TenantConfig {
    /// A tenant with `keys` that may write `namespaces`, without rate limits.
    pub fn new(name: &str, keys: &[&str], namespaces: &[&str]) -> Self {
        TenantConfig {
            name: name.into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            require_signature: false,
            requests_per_second: 0,
            points_per_second: 0,
            burst_seconds: default_burst_seconds(),
            limits: None,
        }
    }

    /// Whether this tenant may write `namespace`.
    pub fn allows(&self, namespace: &str) -> bool {
        self.namespaces
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some("") => true,
                Some(prefix) => namespace.len() > prefix.len() && namespace.starts_with(prefix),
                None => pattern == namespace,
            })
    }
}

/// The default window around the receiver's clock a signature's time must
/// fall in, in seconds.
pub const DEFAULT_SIGNATURE_WINDOW_SECONDS: u64 = 300;

/// The configured tenants, ready to authenticate requests.
#[derive(Clone, Debug, Default)]
pub struct Tenants {
    tenants: Vec<TenantConfig>,
    /// Key id to (tenant, key), for signatures.
    key_ids: HashMap<String, (usize, usize)>,
    window_seconds: u64,
}

/// Who sent a request, once authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Index of the tenant; `None` when the receiver is open.
    pub tenant: Option<usize>,
    /// The request's signature, to be checked against [`Replays`], and the
    /// time (ms) until which it must be remembered.
    pub signature: Option<([u8; 32], i64)>,
}

impl Caller {
    /// A caller of an open receiver.
    pub const OPEN: Caller = Caller {
        tenant: None,
        signature: None,
    };
}

impl Tenants {
    /// Checks `tenants` (names and keys unique, patterns well formed) and
    /// indexes their keys. An error names the tenant and what is wrong.
    pub fn new(
        tenants: Vec<TenantConfig>,
        window_seconds: u64,
    ) -> std::result::Result<Self, String> {
        let mut key_ids = HashMap::new();
        let mut names = HashSet::new();
        for (t, tenant) in tenants.iter().enumerate() {
            let name = &tenant.name;
            if name.is_empty() || !names.insert(name.as_str()) {
                return Err(format!("tenant name {name:?} is empty or used twice"));
            }
            if tenant.keys.is_empty() {
                return Err(format!("tenant {name:?} has no keys"));
            }
            if tenant.namespaces.is_empty() {
                return Err(format!(
                    "tenant {name:?} has no namespaces (use \"*\" to allow any)"
                ));
            }
            for pattern in &tenant.namespaces {
                let star = pattern.find('*');
                if star.is_some_and(|i| i + 1 != pattern.len()) || pattern.is_empty() {
                    return Err(format!(
                        "tenant {name:?}: namespace pattern {pattern:?}: `*` may only end it"
                    ));
                }
            }
            if tenant.burst_seconds == 0 {
                return Err(format!("tenant {name:?}: burst_seconds must be at least 1"));
            }
            for (k, key) in tenant.keys.iter().enumerate() {
                if key.trim().is_empty() {
                    return Err(format!("tenant {name:?} has an empty key"));
                }
                if key_ids.insert(sign::key_id(key), (t, k)).is_some() {
                    return Err(format!("tenant {name:?}: a key is used twice"));
                }
            }
        }
        Ok(Tenants {
            tenants,
            key_ids,
            window_seconds,
        })
    }

    /// [`Tenants::new`] with, when `api_keys` is not empty, a tenant named
    /// `default` first that has those keys and may write any namespace (the
    /// plain `api_keys` setting).
    pub fn with_api_keys(
        api_keys: Vec<String>,
        mut tenants: Vec<TenantConfig>,
        window_seconds: u64,
    ) -> std::result::Result<Self, String> {
        if !api_keys.is_empty() {
            let mut default = TenantConfig::new("default", &[], &["*"]);
            default.keys = api_keys;
            tenants.insert(0, default);
        }
        Tenants::new(tenants, window_seconds)
    }

    /// Whether no tenant is configured: every request is accepted.
    pub fn is_open(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The tenant at `index`.
    pub fn get(&self, index: usize) -> Option<&TenantConfig> {
        self.tenants.get(index)
    }

    /// The name of the caller's tenant, or `""` for an open receiver.
    pub fn name(&self, caller: &Caller) -> &str {
        caller
            .tenant
            .and_then(|t| self.get(t))
            .map_or("", |t| t.name.as_str())
    }

    /// Finds the tenant of a request from its `Authorization` and
    /// `Edgepush-Signature` headers and its body (as sent). `now_ms` is the
    /// receiver's clock.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Caller> {
        if self.is_open() {
            return Ok(Caller::OPEN);
        }
        if let Some(value) = signature {
            return self.check_signature(value, body, now_ms);
        }
        let Some(given) = authorization else {
            return Err(unauthorized(
                "authorization",
                "missing Authorization: Bearer <key> (or Token <key>, or Basic with the key as password) or Edgepush-Signature",
            ));
        };
        let given = presented_key(given);
        let given = given.as_deref().unwrap_or("");
        // Every key is compared, in constant time, and the match selected
        // without branching, so timing tells nothing about the keys.
        let mut found = subtle::Choice::from(0);
        let mut tenant = 0u32;
        for (t, config) in self.tenants.iter().enumerate() {
            for key in &config.keys {
                let equal = key.as_bytes().ct_eq(given.as_bytes());
                tenant.conditional_assign(&(t as u32), equal);
                found |= equal;
            }
        }
        if !bool::from(found) {
            return Err(unauthorized("authorization", "the key is not valid"));
        }
        let tenant = tenant as usize;
        if self.tenants[tenant].require_signature {
            return Err(unauthorized(
                "authorization",
                format!(
                    "tenant {:?} accepts signed requests only (Edgepush-Signature)",
                    self.tenants[tenant].name
                ),
            ));
        }
        Ok(Caller {
            tenant: Some(tenant),
            signature: None,
        })
    }

    fn check_signature(&self, value: &str, body: &[u8], now_ms: i64) -> Result<Caller> {
        let field = sign::HEADER;
        let signature = sign::parse(value).map_err(|reason| unauthorized(field, reason))?;
        let Some(&(tenant, key)) = self.key_ids.get(signature.key_id) else {
            return Err(unauthorized(
                field,
                format!("no key has the id {:?}", signature.key_id),
            ));
        };
        if !signature.verify(&self.tenants[tenant].keys[key], body) {
            return Err(unauthorized(
                field,
                "the signature does not match the body and time",
            ));
        }
        let signed_ms = i64::try_from(signature.unix_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        let window_ms = i64::try_from(self.window_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        if signed_ms.abs_diff(now_ms) > window_ms.unsigned_abs() {
            return Err(Error::new(
                401,
                "stale_signature",
                format!(
                    "signed at {} s, more than {} s from the receiver's clock ({} s): sign each request when it is sent",
                    signature.unix_seconds,
                    self.window_seconds,
                    now_ms / 1000
                ),
            )
            .field(field));
        }
        Ok(Caller {
            tenant: Some(tenant),
            signature: Some((signature.mac, signed_ms.saturating_add(window_ms))),
        })
    }

    /// The bounds on the caller's requests.
    pub fn limits<'a>(&'a self, caller: &Caller, default: &'a Limits) -> &'a Limits {
        caller
            .tenant
            .and_then(|t| self.tenants.get(t))
            .and_then(|t| t.limits.as_ref())
            .unwrap_or(default)
    }

    /// Refuses a namespace the caller's tenant may not write (403).
    pub fn check_namespace(&self, caller: &Caller, namespace: &str) -> Result<()> {
        match caller.tenant.and_then(|t| self.tenants.get(t)) {
            Some(tenant) if !tenant.allows(namespace) => Err(Error::new(
                403,
                "namespace_forbidden",
                format!(
                    "tenant {:?} may not write namespace {namespace:?}; it may write {}",
                    tenant.name,
                    tenant.namespaces.join(", ")
                ),
            )
            .field("ns")),
            _ => Ok(()),
        }
    }
}

fn unauthorized(field: &str, message: impl Into<String>) -> Error {
    Error::new(401, "unauthorized", message).field(field)
}

/// The 401 for a signature seen before.
pub fn replayed() -> Error {
    Error::new(
        401,
        "replayed_signature",
        "this signature was used before: sign each request afresh",
    )
    .field(sign::HEADER)
}

/// Signatures seen recently, each until its time plus the window (after
/// that it is refused as stale anyway). Bounded: when full, new signed
/// requests are refused (503) rather than old signatures forgotten.
#[derive(Debug)]
pub struct Replays {
    capacity: usize,
    inner: Mutex<ReplaysInner>,
}

#[derive(Debug, Default)]
struct ReplaysInner {
    seen: HashSet<[u8; 32]>,
    by_expiry: BTreeSet<(i64, [u8; 32])>,
}

impl Replays {
    /// Remembers at most `capacity` signatures.
    pub fn new(capacity: usize) -> Self {
        Replays {
            capacity,
            inner: Mutex::new(ReplaysInner::default()),
        }
    }

    /// Remembers the caller's signature; refuses one seen before.
    pub fn check(&self, caller: &Caller, now_ms: i64) -> Result<()> {
        let Some((mac, until_ms)) = caller.signature else {
            return Ok(());
        };
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| Error::new(500, "internal", "replay cache poisoned"))?;
        while let Some(&(expiry, old)) = inner.by_expiry.first() {
            if expiry >= now_ms {
                break;
            }
            inner.by_expiry.pop_first();
            inner.seen.remove(&old);
        }
        if inner.seen.contains(&mac) {
            return Err(replayed());
        }
        if inner.seen.len() >= self.capacity {
            return Err(Error::new(
                503,
                "replay_cache_full",
                format!(
                    "{} signatures are remembered, the most replay_capacity allows: try again later",
                    self.capacity
                ),
            )
            .retry_after(1));
        }
        inner.seen.insert(mac);
        inner.by_expiry.insert((until_ms, mac));
        Ok(())
    }
}

/// Per-tenant token buckets for requests and points. A bucket holds
/// `burst_seconds` worth of its rate; a request passes when its bucket has
/// what it costs (or is full, for a batch larger than the bucket) and may
/// leave it in debt, which later requests wait out.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(usize, Resource), Bucket>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Resource {
    Requests,
    Points,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl RateLimiter {
    /// Counts one request against the caller's request rate (429 when over).
    pub fn request(&self, tenants: &Tenants, caller: &Caller, now_ms: i64) -> Result<()> {
        self.take(tenants, caller, Resource::Requests, 1, now_ms)
    }

    /// Counts `points` against the caller's point rate (429 when over).
    pub fn points(
        &self,
        tenants: &Tenants,
        caller: &Caller,
        points: usize,
        now_ms: i64,
    ) -> Result<()> {
        self.take(tenants, caller, Resource::Points, points, now_ms)
    }

    fn take(
        &self,
        tenants: &Tenants,
        caller: &Caller,
        resource: Resource,
        cost: usize,
        now_ms: i64,
    ) -> Result<()> {
        let Some((index, tenant)) = caller.tenant.and_then(|t| Some((t, tenants.get(t)?))) else {
            return Ok(());
        };
        let (rate, setting) = match resource {
            Resource::Requests => (tenant.requests_per_second, "requests_per_second"),
            Resource::Points => (tenant.points_per_second, "points_per_second"),
        };
        if rate == 0 {
            return Ok(());
        }
        let rate = f64::from(rate);
        let capacity = rate * f64::from(tenant.burst_seconds.max(1));
        let cost = cost as f64;
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| Error::new(500, "internal", "rate limiter poisoned"))?;
        let bucket = buckets.entry((index, resource)).or_insert(Bucket {
            tokens: capacity,
            at_ms: now_ms,
        });
        let elapsed = (now_ms - bucket.at_ms).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at_ms = bucket.at_ms.max(now_ms);
        let needed = cost.min(capacity);
        if bucket.tokens >= needed {
            bucket.tokens -= cost;
            return Ok(());
        }
        let wait = ((needed - bucket.tokens) / rate).ceil().max(1.0) as u64;
        Err(Error::new(
            429,
            "rate_limited",
            format!(
                "tenant {:?} is over its {setting} of {rate}: retry in {wait} s",
                tenant.name
            ),
        )
        .field(format!("tenants.{}.{setting}", tenant.name))
        .retry_after(wait))
    }
}

/// The key an `Authorization` header presents: `Bearer <key>`,
/// `Token <key>` (InfluxDB clients) or `Basic` with the key as the password
/// (Prometheus' and InfluxDB v1 clients; the user name is ignored).
fn presented_key(authorization: &str) -> Option<std::borrow::Cow<'_, str>> {
    use base64::Engine as _;
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        return Some(std::borrow::Cow::Borrowed(rest));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(std::borrow::Cow::Owned(password.to_string()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn tenants() -> Tenants {
        let mut signed = TenantConfig::new("b", &["key-b"], &["B", "Shared/*"]);
        signed.require_signature = true;
        Tenants::new(
            vec![
                TenantConfig::new("a", &["key-a1", "key-a2"], &["A/*"]),
                signed,
            ],
            300,
        )
        .expect("valid")
    }

    #[test]
    fn namespace_patterns() {
        let t = TenantConfig::new("t", &["k"], &["Exact", "Team/*"]);
        assert!(t.allows("Exact") && t.allows("Team/api") && t.allows("Team/a/b"));
        assert!(!t.allows("Exact2") && !t.allows("Team") && !t.allows("Team/"));
        assert!(!t.allows("TeamX/api") && !t.allows("exact"));
        assert!(TenantConfig::new("t", &["k"], &["*"]).allows("Anything"));
    }

    #[test]
    fn bearer_keys_find_their_tenant() {
        let t = tenants();
        let a = t
            .authenticate(Some("Bearer key-a2"), None, b"", NOW)
            .expect("valid key");
        assert_eq!((a.tenant, t.name(&a)), (Some(0), "a"));
        let e = t
            .authenticate(Some("Bearer key-a"), None, b"", NOW)
            .expect_err("prefix");
        assert_eq!((e.status, e.field.as_deref()), (401, Some("authorization")));
        let e = t.authenticate(None, None, b"", NOW).expect_err("missing");
        assert!(e.message.contains("missing"), "{e}");
        let e = t
            .authenticate(Some("key-a1"), None, b"", NOW)
            .expect_err("no scheme");
        assert_eq!(e.status, 401);
        let e = t
            .authenticate(Some("Bearer key-b"), None, b"", NOW)
            .expect_err("must sign");
        assert!(e.message.contains("signed requests only"), "{e}");
        // The schemes other clients send: InfluxDB's Token, and Basic with
        // the key as the password (Prometheus clients, InfluxDB v1).
        let basic = |user_pass: &str| {
            use base64::Engine as _;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_pass)
            )
        };
        for header in [
            "Token key-a2".to_string(),
            "bearer  key-a2 ".to_string(),
            basic("anyone:key-a2"),
        ] {
            let a = t
                .authenticate(Some(&header), None, b"", NOW)
                .unwrap_or_else(|e| panic!("{header}: {e}"));
            assert_eq!(a.tenant, Some(0), "{header}");
        }
        for header in [basic("key-a2"), basic("key-a2:"), "Basic !!".to_string()] {
            let e = t
                .authenticate(Some(&header), None, b"", NOW)
                .expect_err(&header);
            assert_eq!(e.status, 401, "{header}");
        }
    }

    #[test]
    fn signatures_are_checked_for_key_body_and_time() {
        let t = tenants();
        let body = b"gzip bytes";
        let header = sign::header("key-b", (NOW / 1000) as u64, "n", body);
        let caller = t
            .authenticate(None, Some(&header), body, NOW)
            .expect("valid");
        assert_eq!(caller.tenant, Some(1));
        assert!(caller.signature.is_some());
        let e = t
            .authenticate(None, Some(&header), b"other", NOW)
            .expect_err("body");
        assert_eq!((e.status, e.field.as_deref()), (401, Some(sign::HEADER)));
        let e = t
            .authenticate(
                None,
                Some(&sign::header("not a key", 1, "n", body)),
                body,
                NOW,
            )
            .expect_err("unknown key");
        assert!(e.message.contains("no key has the id"), "{e}");
        let old = sign::header("key-b", (NOW / 1000) as u64 - 301, "n", body);
        let e = t
            .authenticate(None, Some(&old), body, NOW)
            .expect_err("old");
        assert_eq!(e.error, "stale_signature");
        let future = sign::header("key-b", (NOW / 1000) as u64 + 301, "n", body);
        assert_eq!(
            t.authenticate(None, Some(&future), body, NOW)
                .map_err(|e| e.error),
            Err("stale_signature")
        );
        let edge = sign::header("key-b", (NOW / 1000) as u64 - 300, "n", body);
        assert!(t.authenticate(None, Some(&edge), body, NOW).is_ok());
        let e = t
            .authenticate(None, Some("t=1"), body, NOW)
            .expect_err("malformed");
        assert!(e.message.contains("missing"), "{e}");
    }

    #[test]
    fn a_signature_is_accepted_once() {
        let t = tenants();
        let replays = Replays::new(10);
        let body = b"x";
        let header = sign::header("key-a1", (NOW / 1000) as u64, "n", body);
        let caller = t
            .authenticate(None, Some(&header), body, NOW)
            .expect("valid");
        replays.check(&caller, NOW).expect("first time");
        assert_eq!(
            replays.check(&caller, NOW + 1).map_err(|e| e.error),
            Err("replayed_signature")
        );
        // Forgotten only once it would be stale anyway.
        assert!(replays.check(&caller, NOW + 300_000).is_err());
        assert!(replays.check(&caller, NOW + 300_001).is_ok());
    }

    #[test]
    fn a_full_replay_cache_refuses_rather_than_forgets() {
        let t = tenants();
        let replays = Replays::new(2);
        for i in 0..3u8 {
            let body = [i];
            let header = sign::header("key-a1", (NOW / 1000) as u64, "n", &body);
            let caller = t
                .authenticate(None, Some(&header), &body, NOW)
                .expect("valid");
            let checked = replays.check(&caller, NOW);
            assert_eq!(checked.is_ok(), i < 2, "{checked:?}");
            if i == 2 {
                assert_eq!(
                    checked.map_err(|e| (e.status, e.error)),
                    Err((503, "replay_cache_full"))
                );
            }
        }
    }

    #[test]
    fn namespaces_of_other_tenants_are_forbidden() {
        let t = tenants();
        let a = Caller {
            tenant: Some(0),
            signature: None,
        };
        assert!(t.check_namespace(&a, "A/orders").is_ok());
        let e = t.check_namespace(&a, "B").expect_err("b's");
        assert_eq!(
            (e.status, e.error, e.field.as_deref()),
            (403, "namespace_forbidden", Some("ns"))
        );
        assert!(t.check_namespace(&Caller::OPEN, "B").is_ok());
    }

    #[test]
    fn bad_tenant_settings_are_named() {
        let bad = |tenants: Vec<TenantConfig>| Tenants::new(tenants, 300).expect_err("bad");
        assert!(bad(vec![TenantConfig::new("a", &[], &["*"])]).contains("no keys"));
        assert!(bad(vec![TenantConfig::new("a", &["k"], &[])]).contains("no namespaces"));
        assert!(bad(vec![TenantConfig::new("a", &["k"], &["A*B"])]).contains("may only end"));
        assert!(
            bad(vec![
                TenantConfig::new("a", &["k"], &["*"]),
                TenantConfig::new("b", &["k"], &["*"])
            ])
            .contains("used twice")
        );
        assert!(
            bad(vec![
                TenantConfig::new("a", &["k1"], &["*"]),
                TenantConfig::new("a", &["k2"], &["*"])
            ])
            .contains("used twice")
        );
    }

    #[test]
    fn rates_allow_a_burst_then_refill() {
        let mut config = TenantConfig::new("a", &["k"], &["*"]);
        config.requests_per_second = 2;
        config.points_per_second = 100;
        config.burst_seconds = 1;
        let t = Tenants::new(vec![config], 300).expect("valid");
        let caller = Caller {
            tenant: Some(0),
            signature: None,
        };
        let limiter = RateLimiter::default();
        assert!(limiter.request(&t, &caller, NOW).is_ok());
        assert!(limiter.request(&t, &caller, NOW).is_ok());
        let e = limiter
            .request(&t, &caller, NOW)
            .expect_err("third in a second");
        assert_eq!((e.status, e.retry_after), (429, Some(1)));
        assert_eq!(e.field.as_deref(), Some("tenants.a.requests_per_second"));
        assert!(
            limiter.request(&t, &caller, NOW + 500).is_ok(),
            "refilled one"
        );
        // A batch larger than the bucket passes when it is full, then waits.
        assert!(limiter.points(&t, &caller, 250, NOW).is_ok());
        let e = limiter
            .points(&t, &caller, 1, NOW + 1000)
            .expect_err("in debt");
        assert_eq!(e.retry_after, Some(1));
        assert!(limiter.points(&t, &caller, 1, NOW + 1600).is_ok());
        assert!(
            limiter.request(&t, &Caller::OPEN, NOW).is_ok(),
            "open: no limit"
        );
    }
}
