//! Client authentication (`[server.auth]`): HTTP basic auth against bcrypt or SHA-256
//! password hashes, and bearer tokens against token hashes. bcrypt is slow on purpose, so a
//! credential that passed once is remembered (by its SHA-256, never in clear) and checked
//! again in microseconds; bcrypt runs on the blocking pool, off the request threads.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use base64::Engine as _;
use http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ClientAuth;

/// Credentials remembered as good; the memory is cleared when it fills.
const REMEMBERED: usize = 1024;

/// Who may use promgate, built from `[server.auth]`.
#[derive(Debug, Default)]
pub struct Authenticator {
    users: HashMap<String, String>,
    tokens: Vec<String>,
    remembered: Mutex<HashSet<[u8; 32]>>,
}

/// What a request presented.
enum Presented {
    Basic { user: String, password: String },
    Bearer(String),
}

impl Authenticator {
    /// Reads users and tokens from the config, its files and variables.
    pub fn new(auth: &ClientAuth) -> Result<Authenticator, String> {
        Ok(Authenticator {
            users: auth.users()?.into_iter().collect(),
            tokens: auth.tokens()?,
            remembered: Mutex::new(HashSet::new()),
        })
    }

    /// Whether the request's `Authorization` header names a configured user or token.
    pub async fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = presented(headers) else {
            return false;
        };
        let (secret, hashes): (String, Vec<&String>) = match &presented {
            Presented::Basic { user, password } => match self.users.get(user) {
                Some(hash) => (password.clone(), vec![hash]),
                None => return false,
            },
            Presented::Bearer(token) => (token.clone(), self.tokens.iter().collect()),
        };
        for hash in hashes {
            if self.matches(&secret, hash).await {
                return true;
            }
        }
        false
    }

    async fn matches(&self, secret: &str, hash: &str) -> bool {
        if let Some(hex) = hash.strip_prefix("sha256:") {
            let digest = hex_digest(secret.as_bytes());
            return digest
                .as_bytes()
                .ct_eq(hex.to_ascii_lowercase().as_bytes())
                .into();
        }
        let key: [u8; 32] = Sha256::new()
            .chain_update(hash.as_bytes())
            .chain_update([0])
            .chain_update(secret.as_bytes())
            .finalize()
            .into();
        if self.remembered.lock().unwrap().contains(&key) {
            return true;
        }
        let (secret, hash) = (secret.to_string(), hash.to_string());
        let good = tokio::task::spawn_blocking(move || bcrypt::verify(secret, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if good {
            let mut remembered = self.remembered.lock().unwrap();
            if remembered.len() >= REMEMBERED {
                remembered.clear();
            }
            remembered.insert(key);
        }
        good
    }
}

fn presented(headers: &HeaderMap) -> Option<Presented> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some(Presented::Basic {
            user: user.to_string(),
            password: password.to_string(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Presented::Bearer(rest.to_string()))
    } else {
        None
    }
}

/// `sha256:` hashes are lowercase hex of the secret's SHA-256
/// (`printf %s "$TOKEN" | sha256sum`).
pub fn hex_digest(secret: &[u8]) -> String {
    Sha256::digest(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Paths anyone may ask: liveness and readiness probes.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/-/healthy" | "/-/ready")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers(&format!("Basic {encoded}"))
    }

    fn authenticator() -> Authenticator {
        let mut config = ClientAuth::default();
        config
            .basic_users
            .insert("grafana".into(), bcrypt::hash("s3cret", 4).unwrap());
        config
            .basic_users
            .insert("ops".into(), format!("sha256:{}", hex_digest(b"opspw")));
        config
            .bearer_tokens
            .push(format!("sha256:{}", hex_digest(b"tok-1")));
        Authenticator::new(&config).unwrap()
    }

    #[tokio::test]
    async fn basic_auth_checks_user_and_password_against_their_hash() {
        let auth = authenticator();
        assert!(auth.allows(&basic("grafana", "s3cret")).await);
        // The second time comes from memory; it must still say the same.
        assert!(auth.allows(&basic("grafana", "s3cret")).await);
        assert!(!auth.allows(&basic("grafana", "wrong")).await);
        assert!(auth.allows(&basic("ops", "opspw")).await);
        assert!(!auth.allows(&basic("ops", "s3cret")).await);
        assert!(!auth.allows(&basic("nobody", "s3cret")).await);
    }

    #[tokio::test]
    async fn bearer_tokens_match_their_hash_only() {
        let auth = authenticator();
        assert!(auth.allows(&headers("Bearer tok-1")).await);
        assert!(auth.allows(&headers("bearer tok-1")).await);
        assert!(!auth.allows(&headers("Bearer tok-2")).await);
        // The hash itself is not a token.
        let hash = format!("sha256:{}", hex_digest(b"tok-1"));
        assert!(!auth.allows(&headers(&format!("Bearer {hash}"))).await);
    }

    #[tokio::test]
    async fn missing_or_malformed_headers_are_refused() {
        let auth = authenticator();
        assert!(!auth.allows(&HeaderMap::new()).await);
        assert!(!auth.allows(&headers("Basic !!!")).await);
        assert!(!auth.allows(&headers("Digest x")).await);
        assert!(!auth.allows(&headers("Bearer")).await);
    }
}
