//! Passwords, sessions, CSRF tokens, API tokens and auth rate limits.
//!
//! Sessions live in the database (several web processes share them); the cookie
//! carries a random secret and the store keeps only its sha256. Logged-in forms
//! carry the session's CSRF token; anonymous forms (login, register) carry a
//! double-submit token that matches an HttpOnly cookie set on the first visit.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use futures_util::future::LocalBoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota};
use rand::RngCore;
use riposte_core::store::{Session, User};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, PageError};
use crate::startup::AppState;

/// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
fn hasher() -> anyhow::Result<Argon2<'static>> {
    let params =
        Params::new(19_456, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash off the async threads: argon2 takes tens of milliseconds by design.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    let span = tracing::Span::current();
    web::block(move || {
        let _entered = span.enter();
        let hash = hasher()?
            .hash_password(password.as_bytes())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
        Ok::<_, anyhow::Error>(hash.to_string())
    })
    .await
    .map_err(|e| anyhow::anyhow!("password hashing task: {e}"))?
}

/// A hash of a password nobody knows, checked when the username is unknown so that
/// a failed login takes the same time whether or not the account exists.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0yb2WrzrDcJ6RHNEuBRaiDmHgDX4IMlTQt2I5uHX9QU";

pub async fn verify_password(
    password: String,
    stored_hash: Option<String>,
) -> anyhow::Result<bool> {
    let span = tracing::Span::current();
    web::block(move || {
        let _entered = span.enter();
        let real = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| DECOY_HASH.to_owned());
        let ok = hasher()?
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        Ok::<_, anyhow::Error>(real && ok)
    })
    .await
    .map_err(|e| anyhow::anyhow!("password check task: {e}"))?
}

/// 32 random bytes, base64url.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A short human-typable code (invite codes).
pub fn random_code(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub const API_TOKEN_PREFIX: &str = "rpt_";

pub fn new_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", random_secret())
}

pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-riposte_session"
    } else {
        "riposte_session"
    }
}

pub fn csrf_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-riposte_csrf"
    } else {
        "riposte_csrf"
    }
}

fn cookie(
    name: &'static str,
    value: String,
    secure: bool,
    max_age: Option<CookieDuration>,
) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .finish();
    if let Some(age) = max_age {
        c.set_max_age(age);
    }
    c
}

pub fn session_cookie(secret: String, state: &AppState) -> Cookie<'static> {
    let secure = state.settings.secure_cookies;
    let age = CookieDuration::hours(state.settings.session_absolute_hours);
    cookie(session_cookie_name(secure), secret, secure, Some(age))
}

pub fn expired_session_cookie(state: &AppState) -> Cookie<'static> {
    let secure = state.settings.secure_cookies;
    let mut c = cookie(session_cookie_name(secure), String::new(), secure, None);
    c.make_removal();
    c
}

/// The anonymous visitor's CSRF token, read from or newly set as a cookie.
#[derive(Clone)]
struct AnonCsrf(String);

/// Middleware: every visitor has a CSRF cookie before any form is rendered.
pub async fn ensure_csrf_cookie(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let secure = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.settings.secure_cookies);
    // The API has no forms (and its clients keep no cookie jar): no cookie to set.
    if req.path().starts_with("/api/") {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let name = csrf_cookie_name(secure);
    let existing = req
        .cookie(name)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 43);
    let (token, fresh) = match existing {
        Some(token) => (token, false),
        None => (random_secret(), true),
    };
    req.extensions_mut().insert(AnonCsrf(token.clone()));
    let mut response = next.call(req).await?;
    if fresh {
        let c = cookie(name, token, secure, None);
        if let Ok(value) = header::HeaderValue::from_str(&c.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response.map_into_right_body())
}

/// Who is asking, for pages: the live session, if any, and the CSRF token to embed.
pub struct Visitor {
    pub session: Option<Session>,
    session_hash: Option<String>,
    anon_csrf: String,
}

impl Visitor {
    pub fn user(&self) -> Option<&User> {
        self.session.as_ref().map(|s| &s.user)
    }

    pub fn csrf(&self) -> &str {
        match &self.session {
            Some(s) => &s.csrf_token,
            None => &self.anon_csrf,
        }
    }

    pub fn session_hash(&self) -> Option<&str> {
        self.session_hash.as_deref()
    }

    /// Refuse a state-changing form whose token does not match.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), PageError> {
        if same_secret(self.csrf(), submitted) {
            Ok(())
        } else {
            Err(PageError::forbidden(
                "The form's security token is missing or does not match this session. Reload the page and submit the form again.",
            ))
        }
    }

    /// The logged-in user, or a 401 page pointing to the login form.
    pub fn require(&self) -> Result<&User, PageError> {
        self.user().ok_or_else(|| {
            PageError::new(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "Please log in to see this page.",
            )
        })
    }
}

impl FromRequest for Visitor {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| PageError::internal(anyhow::anyhow!("app state missing")))?;
            let anon_csrf = req
                .extensions()
                .get::<AnonCsrf>()
                .map(|c| c.0.clone())
                .unwrap_or_default();
            let secret = req
                .cookie(session_cookie_name(state.settings.secure_cookies))
                .map(|c| c.value().to_owned());
            let Some(secret) = secret.filter(|s| !s.is_empty()) else {
                return Ok(Visitor {
                    session: None,
                    session_hash: None,
                    anon_csrf,
                });
            };
            let hash = sha256_hex(&secret);
            let now = state.clock.now();
            let idle_cutoff = now - state.settings.session_idle_minutes * 60;
            let session = state.store.session(&hash, now, idle_cutoff).await?;
            if let Some(s) = &session
                && now - s.last_seen_at >= 60
            {
                state.store.touch_session(&hash, now).await?;
            }
            Ok(Visitor {
                session_hash: session.as_ref().map(|_| hash),
                session,
                anon_csrf,
            })
        })
    }
}

/// Who is asking, for the API: a bearer token or, from a browser, a session.
pub struct ApiUser(pub User);

impl FromRequest for ApiUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("app state missing")))?;
            let now = state.clock.now();
            if let Some(value) = req.headers().get(header::AUTHORIZATION) {
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim)
                    .ok_or_else(|| {
                        ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
                    })?;
                let user = state.store.user_by_token(&sha256_hex(token), now).await?;
                return user.map(ApiUser).ok_or_else(|| {
                    ApiError::unauthorized("unknown or revoked API token: create one on your account page or with POST /api/v1/auth/token")
                });
            }
            if let Some(c) = req.cookie(session_cookie_name(state.settings.secure_cookies)) {
                let idle_cutoff = now - state.settings.session_idle_minutes * 60;
                if let Some(s) = state
                    .store
                    .session(&sha256_hex(c.value()), now, idle_cutoff)
                    .await?
                {
                    check_cookie_write(&req, &s.csrf_token)?;
                    return Ok(ApiUser(s.user));
                }
            }
            Err(ApiError::unauthorized(
                "authentication required: send 'Authorization: Bearer <token>'",
            ))
        })
    }
}

/// The header a script sends its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A write authenticated by the session cookie alone could be a cross-site forgery
/// (a form on another site posting to the API). Allow it only from this site's own
/// pages: the session's CSRF token in `X-CSRF-Token`, or the browser's own word that
/// the request is same-origin (`Sec-Fetch-Site`, else an `Origin` naming this host).
/// Bearer-token calls never reach here: a browser does not attach those by itself.
fn check_cookie_write(req: &HttpRequest, csrf_token: &str) -> Result<(), ApiError> {
    if req.method().is_safe() {
        return Ok(());
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = header(CSRF_HEADER) {
        return if same_secret(token, csrf_token) {
            Ok(())
        } else {
            Err(csrf_refusal(
                "the X-CSRF-Token header does not match this session",
            ))
        };
    }
    let same_origin = match (header("sec-fetch-site"), header("origin")) {
        (Some(site), _) => site == "same-origin",
        (None, Some(origin)) => {
            let host = req.connection_info().host().to_owned();
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(&host))
        }
        (None, None) => false,
    };
    if same_origin {
        Ok(())
    } else {
        Err(csrf_refusal(
            "a cookie-authenticated write must come from this site's pages",
        ))
    }
}

fn csrf_refusal(why: &str) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::FORBIDDEN,
        "csrf",
        format!(
            "{why}: send 'Authorization: Bearer <token>' from scripts, or the session's CSRF token in X-CSRF-Token"
        ),
    )
}

/// Keys a rate limiter holds before it forgets those whose quota has refilled.
const LIMITER_MAX_KEYS: usize = 50_000;

/// Keep a keyed limiter's map bounded: a key whose quota is full again carries no
/// state worth keeping. Amortized: the map is walked once per `LIMITER_MAX_KEYS` new keys.
fn forget_idle_keys<K: std::hash::Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>) {
    if limiter.len() >= LIMITER_MAX_KEYS {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

/// The client's network: its IPv4 address, or the /64 an IPv6 host gets (one
/// machine can hold a whole /64, so counting single IPv6 addresses counts nothing).
/// Behind a trusted reverse proxy the client is read from `X-Forwarded-For`
/// (see [`crate::proxy`]).
pub fn client_ip(req: &HttpRequest) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let ip = match req.app_data::<actix_web::web::Data<crate::startup::AppState>>() {
        Some(state) if !state.settings.trusted_proxies.is_empty() => {
            let lines = req
                .headers()
                .get_all("x-forwarded-for")
                .filter_map(|v| v.to_str().ok());
            state.settings.trusted_proxies.client(peer, lines)
        }
        _ => peer,
    };
    match crate::proxy::unmap(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// [`client_ip`] as text, the key of per-(account, client) login limits.
pub fn client_key(req: &HttpRequest) -> String {
    client_ip(req).to_string()
}

/// Attempts per client IP, shared by login, token and registration.
pub struct IpThrottle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: governor::clock::DefaultClock,
}

impl IpThrottle {
    pub fn per_second(n: u32) -> Arc<Self> {
        Self::with_quota(Quota::per_second(
            NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN),
        ))
    }

    pub fn per_minute(n: u32) -> Arc<Self> {
        Self::with_quota(Quota::per_minute(
            NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN),
        ))
    }

    fn with_quota(quota: Quota) -> Arc<Self> {
        Arc::new(Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            clock: governor::clock::DefaultClock::default(),
        })
    }

    /// `Err(seconds to wait)` when the IP is over its quota.
    pub fn check(&self, req: &HttpRequest) -> Result<(), u64> {
        let ip = client_ip(req);
        forget_idle_keys(&self.limiter);
        self.limiter.check_key(&ip).map_err(|not_until| {
            use governor::clock::Clock;
            not_until.wait_time_from(self.clock.now()).as_secs().max(1)
        })
    }
}

/// Requests per user per second (the query API), in this process.
pub struct UserThrottle {
    limiter: governor::DefaultKeyedRateLimiter<i64>,
    clock: governor::clock::DefaultClock,
}

impl UserThrottle {
    pub fn per_second(n: u32) -> Arc<Self> {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        Arc::new(Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(n)),
            clock: governor::clock::DefaultClock::default(),
        })
    }

    /// `Err(seconds to wait)` when the user is over the quota.
    pub fn check_user(&self, user: i64) -> Result<(), u64> {
        forget_idle_keys(&self.limiter);
        self.limiter.check_key(&user).map_err(|not_until| {
            use governor::clock::Clock;
            not_until.wait_time_from(self.clock.now()).as_secs().max(1)
        })
    }
}

/// Active API tokens a user may hold at once.
pub const MAX_TOKENS_PER_USER: usize = 20;

/// Why a token was not issued (the message is fit to show).
pub enum TokenRefusal {
    Invalid(String),
    TooMany(String),
    Store(riposte_core::store::StoreError),
}

/// Issue a new API token named `name` for `user`: the one rule for the account page
/// and `POST /api/v1/auth/token`. A token named like an active one replaces it, so a
/// notebook that asks for its token at every run holds one token, not hundreds;
/// beyond that a user holds at most [`MAX_TOKENS_PER_USER`].
pub async fn issue_api_token(
    state: &AppState,
    user: i64,
    name: &str,
) -> Result<String, TokenRefusal> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(TokenRefusal::Invalid(
            "a token name must be 1 to 64 printable characters".to_owned(),
        ));
    }
    let active = state
        .store
        .list_tokens(user)
        .await
        .map_err(TokenRefusal::Store)?;
    let mut replaced = 0;
    for same in active.iter().filter(|t| t.name == name) {
        state
            .store
            .revoke_token(user, same.id)
            .await
            .map_err(TokenRefusal::Store)?;
        replaced += 1;
    }
    if replaced > 0 {
        state.query_models.forget_tokens();
    }
    if active.len() - replaced >= MAX_TOKENS_PER_USER {
        return Err(TokenRefusal::TooMany(format!(
            "you have {MAX_TOKENS_PER_USER} active API tokens: revoke one on your account page, or reuse a name to replace its token"
        )));
    }
    let token = new_api_token();
    state
        .store
        .create_token(user, name, &sha256_hex(&token), state.clock.now())
        .await
        .map_err(TokenRefusal::Store)?;
    Ok(token)
}
