//! The security parts of the configuration: TLS for the listener and for backends, who may
//! ask promgate (hashed passwords and tokens), and what promgate shows backends. Secrets
//! never appear in `Debug` output or in /api/v1/status/config.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

/// A secret written into the configuration (or read from where it names). Shown as
/// `<secret>` everywhere.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

/// `[server.tls]`: serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) instead of plain HTTP.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate signed by one.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// `[server.auth]`: clients must authenticate, with HTTP basic auth or a bearer token.
/// Only hashes are configured: bcrypt (`$2y$…`, as `htpasswd -B` and Prometheus's web
/// config write them) or `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuth {
    /// User name → password hash.
    pub basic_users: std::collections::BTreeMap<String, String>,
    /// A file of `name:hash` lines (htpasswd format).
    pub basic_users_file: Option<PathBuf>,
    /// An environment variable holding `name:hash` entries separated by whitespace.
    pub basic_users_env: Option<String>,
    /// Token hashes.
    pub bearer_tokens: Vec<String>,
    /// A file of token hashes, one a line.
    pub bearer_tokens_file: Option<PathBuf>,
    /// An environment variable holding token hashes separated by whitespace.
    pub bearer_tokens_env: Option<String>,
}

/// `[backend.tls]`: how promgate checks an `https://` backend and proves itself to it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendTls {
    /// PEM CA certificates to trust instead of the public roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key, for backends that ask for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. For tests only: anyone on the path can read and
    /// change the traffic.
    pub insecure_skip_verify: bool,
}

/// `[backend.basic_auth]`: HTTP basic auth towards the backend.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
}

/// `[backend.authorization]`: an `Authorization: <type> <credentials>` header towards the
/// backend (a bearer token by default).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    #[serde(rename = "type")]
    pub kind: String,
    pub credentials: Option<Secret>,
    pub credentials_file: Option<PathBuf>,
    pub credentials_env: Option<String>,
}

impl Default for Authorization {
    fn default() -> Self {
        Authorization {
            kind: "Bearer".to_string(),
            credentials: None,
            credentials_file: None,
            credentials_env: None,
        }
    }
}

/// A secret given inline, in a file or in an environment variable: exactly one of them.
pub(crate) fn read_secret(
    inline: Option<&Secret>,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Secret, String> {
    match (inline, file, env) {
        (Some(secret), None, None) => Ok(secret.clone()),
        (None, Some(path), None) => std::fs::read_to_string(path)
            .map(|text| Secret(text.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        (None, None, Some(var)) => std::env::var(var)
            .map(Secret)
            .map_err(|_| format!("environment variable {var} is not set")),
        (None, None, None) => Err("no secret given".to_string()),
        _ => Err("give the secret one way only (inline, file or env)".to_string()),
    }
}

impl BasicAuth {
    /// The `Authorization` header value.
    pub fn header(&self) -> Result<Secret, String> {
        use base64::Engine as _;
        let password = read_secret(
            self.password.as_ref(),
            self.password_file.as_deref(),
            self.password_env.as_deref(),
        )?;
        let pair = format!("{}:{}", self.username, password.expose());
        Ok(Secret(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )))
    }
}

impl Authorization {
    /// The `Authorization` header value.
    pub fn header(&self) -> Result<Secret, String> {
        let credentials = read_secret(
            self.credentials.as_ref(),
            self.credentials_file.as_deref(),
            self.credentials_env.as_deref(),
        )?;
        Ok(Secret(format!("{} {}", self.kind, credentials.expose())))
    }
}

impl ClientAuth {
    /// Every user with their hash, from the config, the file and the variable.
    pub fn users(&self) -> Result<Vec<(String, String)>, String> {
        let mut users: Vec<(String, String)> = self
            .basic_users
            .iter()
            .map(|(name, hash)| (name.clone(), hash.clone()))
            .collect();
        let entries = entries(
            self.basic_users_file.as_deref(),
            self.basic_users_env.as_deref(),
        )?;
        for entry in entries {
            let (name, hash) = entry
                .split_once(':')
                .ok_or_else(|| "a user entry is not name:hash".to_string())?;
            users.push((name.to_string(), hash.to_string()));
        }
        for (name, hash) in &users {
            check_hash(hash).map_err(|e| format!("user {name:?}: {e}"))?;
        }
        Ok(users)
    }

    /// Every token hash, from the config, the file and the variable.
    pub fn tokens(&self) -> Result<Vec<String>, String> {
        let mut tokens = self.bearer_tokens.clone();
        tokens.extend(entries(
            self.bearer_tokens_file.as_deref(),
            self.bearer_tokens_env.as_deref(),
        )?);
        for (i, hash) in tokens.iter().enumerate() {
            check_hash(hash).map_err(|e| format!("token {}: {e}", i + 1))?;
        }
        Ok(tokens)
    }
}

/// Entries from a file (one a line; blank lines and `#` comments skipped) and from an
/// environment variable (separated by whitespace).
fn entries(file: Option<&Path>, env: Option<&str>) -> Result<Vec<String>, String> {
    let mut entries = Vec::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        entries.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    if let Some(var) = env {
        let text =
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?;
        entries.extend(text.split_whitespace().map(str::to_string));
    }
    Ok(entries)
}

/// A hash promgate can check a secret against.
pub fn check_hash(hash: &str) -> Result<(), String> {
    if let Some(hex) = hash.strip_prefix("sha256:") {
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(());
        }
        return Err("sha256: needs 64 hex digits".to_string());
    }
    if hash.starts_with("$2") {
        return bcrypt::verify("", hash)
            .map(|_| ())
            .map_err(|e| format!("not a bcrypt hash: {e}"));
    }
    Err("not a hash: use bcrypt ($2y$...) or sha256:<hex>; never the secret itself".to_string())
}

/// Makes a relative path relative to `base` (the configuration file's directory).
pub(crate) fn resolve(path: &mut PathBuf, base: &Path) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let basic = BasicAuth {
            username: "grafana".into(),
            password: Some(Secret("hunter2".into())),
            ..Default::default()
        };
        assert!(!format!("{basic:?}").contains("hunter2"));
        let yaml = serde_yaml::to_string(&basic).unwrap();
        assert!(!yaml.contains("hunter2"), "{yaml}");
        assert!(yaml.contains("<secret>"), "{yaml}");
    }

    #[test]
    fn header_values_are_built_from_one_source() {
        let basic = BasicAuth {
            username: "u".into(),
            password: Some(Secret("p".into())),
            ..Default::default()
        };
        assert_eq!(basic.header().unwrap().expose(), "Basic dTpw");
        let token = Authorization {
            credentials: Some(Secret("abc".into())),
            ..Default::default()
        };
        assert_eq!(token.header().unwrap().expose(), "Bearer abc");
        let both = Authorization {
            credentials: Some(Secret("abc".into())),
            credentials_env: Some("PATH".into()),
            ..Default::default()
        };
        assert!(both.header().unwrap_err().contains("one way only"));
        assert!(Authorization::default().header().is_err());
    }

    #[test]
    fn users_and_tokens_come_from_config_file_and_variable() {
        let hash = format!("sha256:{}", "a".repeat(64));
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, format!("# ops team\nops:{hash}\n\n")).unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, format!("{hash}\n")).unwrap();
        let auth = ClientAuth {
            basic_users: [("grafana".to_string(), hash.clone())].into(),
            basic_users_file: Some(users),
            bearer_tokens_file: Some(tokens),
            bearer_tokens_env: Some("PROMGATE_TEST_NO_SUCH_VARIABLE".into()),
            ..ClientAuth::default()
        };
        let names: Vec<String> = auth.users().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["grafana", "ops"]);
        assert!(
            auth.tokens()
                .unwrap_err()
                .contains("PROMGATE_TEST_NO_SUCH_VARIABLE")
        );
        let auth = ClientAuth {
            bearer_tokens_env: None,
            ..auth
        };
        assert_eq!(auth.tokens().unwrap(), [hash]);
    }

    #[test]
    fn only_hashes_are_accepted() {
        assert!(check_hash(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(check_hash("sha256:abc").is_err());
        assert!(
            check_hash("hunter2")
                .unwrap_err()
                .contains("never the secret")
        );
        let bcrypt = bcrypt::hash("pw", 4).unwrap();
        assert!(check_hash(&bcrypt).is_ok());
        assert!(check_hash("$2y$10$short").is_err());
    }
}
