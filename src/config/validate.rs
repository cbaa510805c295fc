//! Loading with every problem reported: unknown keys are collected rather than fatal, then
//! each field is checked and every failure is listed with its path.

use std::collections::HashSet;
use std::path::Path;

use super::{BackendConfig, BackendKind, Config, ConfigErrors};

pub(super) fn parse(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let mut problems = Vec::new();
    let deserializer = toml::Deserializer::new(text);
    let parsed: Result<Config, _> = serde_ignored::deserialize(deserializer, |path| {
        problems.push(format!("{}: unknown key", field_path(&path)));
    });
    let mut config = match parsed {
        Ok(config) => config,
        Err(e) => {
            let location = e
                .span()
                .map(|span| {
                    let (line, col) = line_col(text, span.start);
                    format!("line {line}, column {col}: ")
                })
                .unwrap_or_default();
            problems.push(format!("{location}{}", e.message().trim()));
            return Err(ConfigErrors(problems));
        }
    };
    check(&config, &mut problems);
    resolve_files(&mut config, base);
    check_security(&mut config, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(problems))
    }
}

/// Relative paths of certificate, key and secret files are relative to the configuration
/// file's directory.
fn resolve_files(config: &mut Config, base: &Path) {
    use super::security::resolve;
    if let Some(tls) = &mut config.server.tls {
        resolve(&mut tls.cert_file, base);
        resolve(&mut tls.key_file, base);
        if let Some(ca) = &mut tls.client_ca_file {
            resolve(ca, base);
        }
    }
    if let Some(auth) = &mut config.server.auth {
        for path in [&mut auth.basic_users_file, &mut auth.bearer_tokens_file]
            .into_iter()
            .flatten()
        {
            resolve(path, base);
        }
    }
    for backend in &mut config.backends {
        if let Some(tls) = &mut backend.tls {
            for path in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file]
                .into_iter()
                .flatten()
            {
                resolve(path, base);
            }
        }
        if let Some(path) = backend
            .basic_auth
            .as_mut()
            .and_then(|b| b.password_file.as_mut())
        {
            resolve(path, base);
        }
        if let Some(path) = backend
            .authorization
            .as_mut()
            .and_then(|a| a.credentials_file.as_mut())
        {
            resolve(path, base);
        }
    }
}

/// TLS files load, client credentials are hashes, and each backend's credentials are read
/// into `credentials`.
fn check_security(config: &mut Config, problems: &mut Vec<String>) {
    if let Some(tls) = &config.server.tls
        && let Err(e) = crate::tls::server_config(tls)
    {
        problems.push(format!("server.tls: {e}"));
    }
    if let Some(auth) = &config.server.auth {
        let users = auth.users();
        let tokens = auth.tokens();
        if let Err(e) = &users {
            problems.push(format!("server.auth: {e}"));
        }
        if let Err(e) = &tokens {
            problems.push(format!("server.auth: {e}"));
        }
        if let (Ok(users), Ok(tokens)) = (users, tokens)
            && users.is_empty()
            && tokens.is_empty()
        {
            problems
                .push("server.auth: no user and no token: nobody could use promgate".to_string());
        }
    }
    for (i, backend) in config.backends.iter_mut().enumerate() {
        if backend.kind == BackendKind::Blocks {
            for (field, set) in [
                ("tls", backend.tls.is_some()),
                ("basic_auth", backend.basic_auth.is_some()),
                ("authorization", backend.authorization.is_some()),
            ] {
                if set {
                    problems.push(format!(
                        "backend[{i}].{field}: not for kind = \"blocks\" (see [backend.bucket])"
                    ));
                }
            }
            continue;
        }
        if let Some(tls) = &backend.tls {
            if let Err(e) = crate::tls::client_config(tls) {
                problems.push(format!("backend[{i}].tls: {e}"));
            }
            if !backend.url.starts_with("https://") {
                problems.push(format!(
                    "backend[{i}].tls: the url is not https://, so this would not be used"
                ));
            }
        }
        backend.credentials = match (&backend.basic_auth, &backend.authorization) {
            (Some(_), Some(_)) => {
                problems.push(format!(
                    "backend[{i}].authorization: give basic_auth or authorization, not both"
                ));
                None
            }
            (Some(basic), None) => basic
                .header()
                .map_err(|e| problems.push(format!("backend[{i}].basic_auth: {e}")))
                .ok(),
            (None, Some(authorization)) => authorization
                .header()
                .map_err(|e| problems.push(format!("backend[{i}].authorization: {e}")))
                .ok(),
            (None, None) => None,
        };
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `backend[2].url` from serde_ignored's path.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

fn check(config: &Config, problems: &mut Vec<String>) {
    if let Err(e) = parse_listen(&config.server.listen) {
        problems.push(format!("server.listen: {e}"));
    }
    if config.server.max_concurrent_requests == 0 {
        problems.push("server.max_concurrent_requests: must be at least 1".to_string());
    }
    let server = &config.server;
    if !(server.client_requests_per_second.is_finite() && server.client_requests_per_second >= 0.0)
    {
        problems.push(
            "server.client_requests_per_second: must be zero (off) or a positive number"
                .to_string(),
        );
    }
    if server.client_burst > 0 && server.client_requests_per_second == 0.0 {
        problems.push(
            "server.client_burst: needs server.client_requests_per_second (the limit is off)"
                .to_string(),
        );
    }
    if server.max_queued_requests > 0 && server.queue_timeout.0.is_zero() {
        problems.push(
            "server.queue_timeout: must be greater than zero when requests may queue".to_string(),
        );
    }
    // hyper reads request heads into a buffer of at least 8 KiB.
    if server.max_header_bytes.0 < 8 << 10 {
        problems.push("server.max_header_bytes: at least 8KiB".to_string());
    }
    if config.query.max_samples == 0 {
        problems.push("query.max_samples: must be at least 1".to_string());
    }
    if config.query.hedge_after.0.is_zero() {
        problems.push("query.hedge_after: must be greater than zero".to_string());
    }
    if config.query.timeout.0.is_zero() {
        problems.push("query.timeout: must be greater than zero".to_string());
    }
    for (i, name) in config.query.replica_labels.iter().enumerate() {
        if !is_label_name(name) {
            problems.push(format!(
                "query.replica_labels[{i}]: invalid label name {name:?}"
            ));
        }
    }
    let mut names = HashSet::new();
    for (i, backend) in config.backends.iter().enumerate() {
        check_backend(i, backend, problems);
        if !names.insert(backend.name.as_str()) {
            problems.push(format!(
                "backend[{i}].name: duplicate backend name {:?}",
                backend.name
            ));
        }
    }
}

fn check_backend(i: usize, backend: &BackendConfig, problems: &mut Vec<String>) {
    let at = |field: &str| format!("backend[{i}].{field}");
    if backend.name.is_empty() {
        problems.push(format!("{}: must not be empty", at("name")));
    } else if !backend
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        problems.push(format!(
            "{}: {:?} may only contain letters, digits, '-', '_' and '.'",
            at("name"),
            backend.name
        ));
    }
    if backend.kind == BackendKind::Blocks {
        check_blocks(&at, backend, problems);
    } else {
        check_url(&at("url"), &backend.url, problems);
        for (field, set) in [
            ("bucket", backend.bucket.is_some()),
            ("dir", backend.dir.is_some()),
        ] {
            if set {
                problems.push(format!("{}: only for kind = \"blocks\"", at(field)));
            }
        }
    }
    match (backend.kind, &backend.database) {
        (BackendKind::Influx, None) => problems.push(format!(
            "{}: required for kind = \"influx\"",
            at("database")
        )),
        (BackendKind::Influx, Some(db)) if db.is_empty() => {
            problems.push(format!("{}: must not be empty", at("database")))
        }
        (BackendKind::Prometheus | BackendKind::Blocks, Some(_)) => {
            problems.push(format!("{}: only for kind = \"influx\"", at("database")))
        }
        _ => {}
    }
    if backend.timeout.0.is_zero() {
        problems.push(format!("{}: must be greater than zero", at("timeout")));
    }
    if backend.max_response_bytes.0 == 0 {
        problems.push(format!(
            "{}: must be greater than zero",
            at("max_response_bytes")
        ));
    }
    if backend.retries > 10 {
        problems.push(format!("{}: at most 10", at("retries")));
    }
    if backend.max_concurrent_requests == 0 {
        problems.push(format!(
            "{}: must be at least 1",
            at("max_concurrent_requests")
        ));
    }
    if let Some(labels) = &backend.labels {
        for name in labels.keys() {
            if !is_label_name(name) {
                problems.push(format!("{}: invalid label name {name:?}", at("labels")));
            }
        }
    }
}

fn check_url(at: &str, url: &str, problems: &mut Vec<String>) {
    match url::Url::parse(url) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => problems.push(format!(
            "{at}: scheme {:?} is not http or https",
            url.scheme()
        )),
        Ok(url) if url.host().is_none() => problems.push(format!("{at}: URL has no host")),
        Ok(url) if url.query().is_some() || url.fragment().is_some() => {
            problems.push(format!("{at}: URL must not have a query or fragment"))
        }
        Ok(_) => {}
        Err(e) => problems.push(format!("{at}: {e}")),
    }
}

/// A blocks backend reads a bucket or a directory, never a URL.
fn check_blocks(at: &dyn Fn(&str) -> String, backend: &BackendConfig, problems: &mut Vec<String>) {
    if !backend.url.is_empty() {
        problems.push(format!(
            "{}: not for kind = \"blocks\" (use [backend.bucket] or dir)",
            at("url")
        ));
    }
    match (&backend.bucket, &backend.dir) {
        (None, None) => problems.push(format!(
            "{}: kind = \"blocks\" needs [backend.bucket] or dir",
            at("bucket")
        )),
        (Some(_), Some(_)) => problems.push(format!(
            "{}: give [backend.bucket] or dir, not both",
            at("dir")
        )),
        (None, Some(dir)) if dir.is_empty() => {
            problems.push(format!("{}: must not be empty", at("dir")))
        }
        (Some(bucket), None) => {
            check_url(&at("bucket.endpoint"), &bucket.endpoint, problems);
            if bucket.bucket.is_empty() {
                problems.push(format!("{}: must not be empty", at("bucket.bucket")));
            }
            if !bucket.prefix.is_empty() && !bucket.prefix.ends_with('/') {
                problems.push(format!("{}: must end with '/'", at("bucket.prefix")));
            }
            if bucket.prefix.starts_with('/') {
                problems.push(format!("{}: must not start with '/'", at("bucket.prefix")));
            }
            if bucket.access_key.is_some() != bucket.secret_key.is_some() {
                problems.push(format!(
                    "{}: access_key and secret_key go together",
                    at("bucket")
                ));
            }
            if bucket.access_key_env.is_some() != bucket.secret_key_env.is_some() {
                problems.push(format!(
                    "{}: access_key_env and secret_key_env go together",
                    at("bucket")
                ));
            }
        }
        (None, Some(_)) => {}
    }
    if backend.sync_interval.0 < std::time::Duration::from_secs(1) {
        problems.push(format!("{}: at least 1s", at("sync_interval")));
    }
}

/// Resolves `server.listen`: `host:port`, `[v6]:port` or `:port` (all interfaces).
pub fn parse_listen(listen: &str) -> Result<std::net::SocketAddr, String> {
    let candidate = if let Some(port) = listen.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else {
        listen.to_string()
    };
    if let Ok(addr) = candidate.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    candidate
        .to_socket_addrs()
        .map_err(|e| format!("{listen:?} is not a valid host:port ({e})"))?
        .next()
        .ok_or_else(|| format!("{listen:?} resolves to no address"))
}

/// Prometheus's classic label-name syntax: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        super::parse(text, Path::new(""))
    }

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9090"
[query]
replica_labels = ["replica"]
partial_response = true
timeout = "2m"
[[backend]]
name = "eu1-a"
kind = "prometheus"
url = "http://127.0.0.1:9091"
timeout = "30s"
labels = { cluster = "eu1", replica = "a" }
"#;

    #[test]
    fn valid_config_parses_with_durations_and_labels() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.query.timeout.0, Duration::from_secs(120));
        assert_eq!(config.query.replica_labels, vec!["replica"]);
        let backend = &config.backends[0];
        assert_eq!(backend.timeout.0, Duration::from_secs(30));
        assert_eq!(backend.labels.as_ref().unwrap()["cluster"], "eu1");
    }

    #[test]
    fn every_problem_is_reported_with_its_field_path() {
        let text = r#"
[server]
listen = "nope"
colour = "blue"
[query]
replica_labels = ["0bad"]
[[backend]]
name = "a"
kind = "prometheus"
url = "http://127.0.0.1:1"
[[backend]]
name = "a"
kind = "prometheus"
url = "localhost/api"
extra = 1
"#;
        let errors = parse(text).unwrap_err().0;
        let expect = [
            "server.colour: unknown key",
            "backend[1].extra: unknown key",
            "server.listen: \"nope\" is not a valid host:port",
            "query.replica_labels[0]: invalid label name \"0bad\"",
            "backend[1].url: relative URL without a base",
            "backend[1].name: duplicate backend name \"a\"",
        ];
        for e in expect {
            assert!(
                errors.iter().any(|got| got.starts_with(e)),
                "missing {e:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    }

    #[test]
    fn type_errors_point_at_the_line() {
        let errors = parse("[query]\ntimeout = \"5 minutes\"\n").unwrap_err().0;
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("line 2, column"), "{errors:?}");
        assert!(errors[0].contains("not a valid duration"), "{errors:?}");
    }

    #[test]
    fn unknown_backend_kind_is_an_error() {
        let errors = parse("[[backend]]\nname=\"x\"\nkind=\"graphite\"\nurl=\"http://h\"\n")
            .unwrap_err()
            .0;
        assert!(
            errors[0].contains("unknown variant `graphite`"),
            "{errors:?}"
        );
    }

    #[test]
    fn influx_backends_need_a_database_and_only_they_take_one() {
        let errors = parse(
            "[[backend]]\nname=\"lts\"\nkind=\"influx\"\nurl=\"http://h:8086\"\n\
             [[backend]]\nname=\"p\"\nkind=\"prometheus\"\nurl=\"http://h\"\ndatabase=\"x\"\n",
        )
        .unwrap_err()
        .0;
        assert_eq!(
            errors,
            vec![
                "backend[0].database: required for kind = \"influx\"".to_string(),
                "backend[1].database: only for kind = \"influx\"".to_string(),
            ]
        );
        let config = parse(
            "[[backend]]\nname=\"lts\"\nkind=\"influx\"\nurl=\"http://h:8086\"\ndatabase=\"prom\"\n",
        )
        .unwrap();
        assert_eq!(config.backends[0].kind, BackendKind::Influx);
        assert_eq!(config.backends[0].database.as_deref(), Some("prom"));
    }

    #[test]
    fn blocks_backends_read_a_bucket_or_a_directory_and_nothing_else() {
        let errors = parse(
            "[[backend]]\nname=\"a\"\nkind=\"blocks\"\n\
             [[backend]]\nname=\"b\"\nkind=\"blocks\"\nurl=\"http://h\"\ndir=\"/d\"\n\
             [backend.bucket]\nendpoint=\"s3.local\"\nbucket=\"\"\nprefix=\"p\"\naccess_key=\"k\"\n\
             [[backend]]\nname=\"c\"\nkind=\"prometheus\"\nurl=\"http://h\"\ndir=\"/d\"\n",
        )
        .unwrap_err()
        .0;
        assert_eq!(
            errors,
            vec![
                "backend[0].bucket: kind = \"blocks\" needs [backend.bucket] or dir".to_string(),
                "backend[1].url: not for kind = \"blocks\" (use [backend.bucket] or dir)"
                    .to_string(),
                "backend[1].dir: give [backend.bucket] or dir, not both".to_string(),
                "backend[2].dir: only for kind = \"blocks\"".to_string(),
            ]
        );
        let errors = parse(
            "[[backend]]\nname=\"b\"\nkind=\"blocks\"\ncache_size=\"3 parsecs\"\n\
             [backend.bucket]\nendpoint=\"http://s3\"\nbucket=\"m\"\n",
        )
        .unwrap_err()
        .0;
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("unknown size unit"), "{errors:?}");
        let bad_bucket = parse(
            "[[backend]]\nname=\"b\"\nkind=\"blocks\"\n\
             [backend.bucket]\nendpoint=\"s3.local\"\nbucket=\"\"\nprefix=\"p\"\naccess_key=\"k\"\n",
        )
        .unwrap_err()
        .0;
        assert_eq!(
            bad_bucket,
            vec![
                "backend[0].bucket.endpoint: relative URL without a base".to_string(),
                "backend[0].bucket.bucket: must not be empty".to_string(),
                "backend[0].bucket.prefix: must end with '/'".to_string(),
                "backend[0].bucket: access_key and secret_key go together".to_string(),
            ]
        );
        let config = parse(
            "[[backend]]\nname=\"lts\"\nkind=\"blocks\"\ncache_size=\"64MiB\"\n\
             [backend.bucket]\nendpoint=\"http://127.0.0.1:9000\"\nbucket=\"metrics\"\n\
             prefix=\"eu1/\"\npath_style=true\n",
        )
        .unwrap();
        let lts = &config.backends[0];
        assert_eq!(lts.kind, BackendKind::Blocks);
        assert_eq!(lts.cache_size, super::super::ByteSize(64 << 20));
        let bucket = lts.bucket.as_ref().unwrap();
        assert_eq!(
            (bucket.region.as_str(), bucket.path_style),
            ("us-east-1", true)
        );
        let secret = parse(
            "[[backend]]\nname=\"lts\"\nkind=\"blocks\"\n\
             [backend.bucket]\nendpoint=\"http://s3\"\nbucket=\"m\"\n\
             access_key=\"AKIA1\"\nsecret_key=\"hunter2\"\n",
        )
        .unwrap();
        let shown = format!("{:?}", secret.backends[0]);
        assert!(
            shown.contains("AKIA1") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn limits_have_defaults_and_parse_with_units() {
        let defaults = parse("").unwrap();
        assert_eq!(defaults.server.max_queued_requests, 256);
        assert_eq!(defaults.server.queue_timeout.0, Duration::from_secs(2));
        assert_eq!(defaults.server.client_requests_per_second, 0.0);
        assert_eq!(
            defaults.server.max_header_bytes,
            super::super::ByteSize(64 << 10)
        );
        assert_eq!(defaults.query.max_samples, 50_000_000);
        assert_eq!(defaults.query.max_series_per_select, 0);
        assert_eq!(defaults.query.max_query_length, 0);
        assert!(defaults.query.max_range.0.is_zero());
        let config = parse(
            "[server]\nmax_queued_requests = 8\nqueue_timeout = \"500ms\"\n\
             client_requests_per_second = 2.5\nclient_burst = 10\nmax_header_bytes = \"16KiB\"\n\
             [query]\nmax_samples = 1000\nmax_series_per_select = 50\nmax_query_length = 4096\n\
             max_range = \"31d\"\n\
             [[backend]]\nname = \"a\"\nkind = \"prometheus\"\nurl = \"http://h\"\n\
             max_response_bytes = \"64MiB\"\n",
        )
        .unwrap();
        assert_eq!(config.server.max_queued_requests, 8);
        assert_eq!(config.server.queue_timeout.0, Duration::from_millis(500));
        assert_eq!(config.server.client_requests_per_second, 2.5);
        assert_eq!(config.server.client_burst, 10);
        assert_eq!(config.server.max_header_bytes.0, 16 << 10);
        assert_eq!(config.query.max_samples, 1000);
        assert_eq!(config.query.max_series_per_select, 50);
        assert_eq!(config.query.max_query_length, 4096);
        assert_eq!(config.query.max_range.0, Duration::from_secs(31 * 86400));
        assert_eq!(config.backends[0].max_response_bytes.0, 64 << 20);
        assert_eq!(
            parse("[[backend]]\nname = \"a\"\nkind = \"prometheus\"\nurl = \"http://h\"\n")
                .unwrap()
                .backends[0]
                .max_response_bytes
                .0,
            1 << 30
        );
    }

    #[test]
    fn limits_out_of_range_are_reported() {
        let errors = parse(
            "[server]\nclient_requests_per_second = -1.0\nqueue_timeout = \"0s\"\n\
             max_header_bytes = 1024\n[query]\nmax_samples = 0\n\
             [[backend]]\nname = \"a\"\nkind = \"prometheus\"\nurl = \"http://h\"\n\
             max_response_bytes = 0\n",
        )
        .unwrap_err()
        .0;
        assert_eq!(
            errors,
            vec![
                "server.client_requests_per_second: must be zero (off) or a positive number"
                    .to_string(),
                "server.queue_timeout: must be greater than zero when requests may queue"
                    .to_string(),
                "server.max_header_bytes: at least 8KiB".to_string(),
                "query.max_samples: must be at least 1".to_string(),
                "backend[0].max_response_bytes: must be greater than zero".to_string(),
            ]
        );
        let errors = parse("[server]\nclient_burst = 5\n").unwrap_err().0;
        assert_eq!(
            errors,
            vec![
                "server.client_burst: needs server.client_requests_per_second (the limit is off)"
                    .to_string()
            ]
        );
        let errors = parse("[server]\nmax_queued_requests = -1\n").unwrap_err().0;
        assert!(errors[0].starts_with("line 2"), "{errors:?}");
    }

    #[test]
    fn sizes_take_units() {
        use super::super::ByteSize;
        assert_eq!(ByteSize::parse("512MiB"), Ok(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("2GB"), Ok(ByteSize(2_000_000_000)));
        assert_eq!(ByteSize::parse("100"), Ok(ByteSize(100)));
        assert!(ByteSize::parse("MiB").is_err());
        assert!(ByteSize::parse("99999999999999GiB").is_err());
    }

    #[test]
    fn listen_accepts_port_only() {
        assert_eq!(parse_listen(":9090").unwrap().port(), 9090);
    }
}
