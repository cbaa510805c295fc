//! TLS and credentials, both ways, against real servers:
//! - a real Prometheus behind TLS and basic auth (its own `--web.config.file`) is a backend
//!   promgate reaches with `[backend.tls]` and `[backend.basic_auth]`;
//! - that promgate serves HTTPS, asks clients for certificates signed by a CA
//!   (`client_ca_file`), and lets in only configured users and tokens (`[server.auth]`);
//! - a second promgate reads the first as its backend with a client certificate and a
//!   bearer token, through the query API and remote read;
//! - secrets never show in /api/v1/status/config, and `[server.auth]` follows a reload.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::Gateway;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use promgate::backend::HttpClient;
use promgate::config::BackendTls;
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};
use serde_json::Value;

const GRAFANA_PASSWORD: &str = "grafana-pw";
const TOKEN: &str = "token-for-the-second-gateway";
const PROMETHEUS_PASSWORD: &str = "prom-pw";
/// Samples of `demo_temperature` every 15 s for an hour from here.
const T0: i64 = 1_700_000_000;

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed, as PEM
/// files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "promgate test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        std::fs::write(dir.path().join("ca.crt"), ca_cert.pem()).unwrap();
        for (name, sans) in [
            (
                "server",
                vec!["127.0.0.1".to_string(), "localhost".to_string()],
            ),
            ("client", vec!["promgate-client".to_string()]),
        ] {
            let params = CertificateParams::new(sans).unwrap();
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            std::fs::write(dir.path().join(format!("{name}.crt")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// An HTTPS client for the tests, built the way promgate builds its backends' clients.
struct Https {
    rt: tokio::runtime::Runtime,
    client: HttpClient,
}

impl Https {
    fn new(pki: &Pki, with_client_cert: bool) -> Https {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tls = BackendTls {
            ca_file: Some(pki.path("ca.crt")),
            cert_file: with_client_cert.then(|| pki.path("client.crt")),
            key_file: with_client_cert.then(|| pki.path("client.key")),
            insecure_skip_verify: false,
        };
        let config = promgate::tls::client_config(&tls).unwrap();
        let client = rt.block_on(async { promgate::backend::client::http_client_with_tls(config) });
        Https { rt, client }
    }

    /// Status, `WWW-Authenticate` and body, or the transport error.
    fn get(&self, url: &str, authorization: Option<&str>) -> Result<(u16, String, Value), String> {
        let mut request = Request::get(url);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request.body(Full::new(Bytes::new())).unwrap();
        self.rt.block_on(async {
            let response =
                tokio::time::timeout(Duration::from_secs(20), self.client.request(request))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map_err(|e| format!("{e:?}"))?;
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            let body = serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null);
            Ok((status, challenge, body))
        })
    }

    fn post(&self, url: &str, authorization: &str) -> u16 {
        let request = Request::post(url)
            .header(header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.rt.block_on(async {
            self.client
                .request(request)
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or_else(|e| panic!("POST {url}: {e:?}"))
        })
    }
}

fn basic(user: &str, password: &str) -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {pair}")
}

fn sha256_hex(secret: &str) -> String {
    promgate::layer::auth::hex_digest(secret.as_bytes())
}

fn openmetrics() -> String {
    let mut text = String::from("# TYPE demo_temperature gauge\n");
    for i in 0..240 {
        let t = T0 + i * 15;
        text.push_str(&format!(
            "demo_temperature{{room=\"a\"}} {} {t}\n",
            20.0 + (i % 7) as f64
        ));
    }
    text.push_str("# EOF\n");
    text
}

/// A real Prometheus serving only over TLS, only to `prom`/`PROMETHEUS_PASSWORD`.
fn locked_prometheus(pki: &Pki) -> Option<PrometheusServer> {
    let bin = match PrometheusBinary::any() {
        Ok(bin) => bin,
        Err(e) => {
            eprintln!("SKIPPED: no Prometheus ({e})");
            return None;
        }
    };
    let hash = bcrypt::hash(PROMETHEUS_PASSWORD, 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  prom: '{hash}'\n",
        pki.path("server.crt").display(),
        pki.path("server.key").display()
    );
    let opts = PrometheusOptions {
        web_config: Some(web),
        ..PrometheusOptions::default()
    }
    .labels(&[("dc", "eu1")])
    .data(openmetrics());
    Some(PrometheusServer::start(&bin, opts).expect("prometheus starts"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The first gateway: HTTPS with client certificates, users and a token; its backend is
/// the locked Prometheus, reached with the CA and basic auth (password from a file,
/// relative to the config file).
fn first_gateway_config(pki: &Pki, prometheus_port: u16, extra_tokens: &[&str]) -> String {
    let grafana = bcrypt::hash(GRAFANA_PASSWORD, 4).unwrap();
    let mut tokens = vec![format!("\"sha256:{}\"", sha256_hex(TOKEN))];
    tokens.extend(
        extra_tokens
            .iter()
            .map(|t| format!("\"sha256:{}\"", sha256_hex(t))),
    );
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
watch_config = false
[server.tls]
cert_file = "{dir}/server.crt"
key_file = "{dir}/server.key"
client_ca_file = "{dir}/ca.crt"
[server.auth]
basic_users = {{ grafana = "{grafana}" }}
bearer_tokens = [{tokens}]

[[backend]]
name = "eu1"
kind = "prometheus"
url = "https://127.0.0.1:{prometheus_port}"
timeout = "10s"
[backend.tls]
ca_file = "{dir}/ca.crt"
[backend.basic_auth]
username = "prom"
password_file = "prometheus-password"
"#,
        dir = pki.dir.path().display(),
        tokens = tokens.join(", "),
    )
}

#[test]
fn promgate_speaks_tls_and_credentials_both_ways() {
    let pki = Pki::new();
    let Some(prometheus) = locked_prometheus(&pki) else {
        return;
    };
    let config_dir = tempfile::tempdir().unwrap();
    write(
        config_dir.path(),
        "prometheus-password",
        &format!("{PROMETHEUS_PASSWORD}\n"),
    );
    let first_config = write(
        config_dir.path(),
        "first.toml",
        &first_gateway_config(&pki, prometheus.port(), &[]),
    );
    let first = Gateway::start(&first_config);
    let base = format!("https://127.0.0.1:{}", first.addr.port());
    let client = Https::new(&pki, true);
    let query = format!(
        "{base}/api/v1/query?query=demo_temperature&time={}",
        T0 + 1800
    );

    // Probes need no credentials; the first answer also shows the listener is up.
    common::wait_until(Duration::from_secs(30), || {
        client
            .get(&format!("{base}/-/ready"), None)
            .is_ok_and(|(status, _, _)| status == 200)
    });
    let (status, _, _) = client.get(&format!("{base}/-/healthy"), None).unwrap();
    assert_eq!(status, 200);

    // No credentials, or wrong ones: 401 in Prometheus's format with a challenge.
    for authorization in [
        None,
        Some(basic("grafana", "wrong")),
        Some(basic("nobody", GRAFANA_PASSWORD)),
        Some("Bearer not-the-token".to_string()),
        Some(format!("Bearer sha256:{}", sha256_hex(TOKEN))),
    ] {
        let (status, challenge, body) = client.get(&query, authorization.as_deref()).unwrap();
        assert_eq!(status, 401, "{authorization:?}: {body}");
        assert_eq!(body["status"], "error", "{body}");
        assert_eq!(body["errorType"], "unauthorized", "{body}");
        assert!(challenge.starts_with("Basic"), "{challenge:?}");
    }

    // A user or the token: the locked Prometheus's data, through TLS and basic auth.
    for authorization in [
        basic("grafana", GRAFANA_PASSWORD),
        format!("Bearer {TOKEN}"),
    ] {
        let (status, _, body) = client.get(&query, Some(&authorization)).unwrap();
        assert_eq!(status, 200, "{body}");
        let result = body["data"]["result"].as_array().unwrap();
        assert_eq!(result.len(), 1, "{body}");
        assert_eq!(result[0]["metric"]["dc"], "eu1", "{body}");
        assert_eq!(result[0]["metric"]["room"], "a", "{body}");
        assert!(body.get("warnings").is_none(), "{body}");
    }

    // No client certificate: no TLS session at all. Plain HTTP: no answer either.
    let without_cert = Https::new(&pki, false);
    assert!(
        without_cert
            .get(&query, Some(&format!("Bearer {TOKEN}")))
            .is_err()
    );
    let plain = common::http_get(&format!("http://127.0.0.1:{}/-/healthy", first.addr.port()));
    assert!(
        !matches!(plain, Ok(ref r) if r.status == 200),
        "{:?}",
        plain.map(|r| r.status)
    );

    // The second gateway reads the first as a backend: client certificate and bearer token,
    // through the query API and remote read.
    let second_config = write(
        config_dir.path(),
        "second.toml",
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"
watch_config = false

[[backend]]
name = "first"
kind = "prometheus"
url = "{base}"
timeout = "10s"
[backend.tls]
ca_file = "{dir}/ca.crt"
cert_file = "{dir}/client.crt"
key_file = "{dir}/client.key"
[backend.authorization]
credentials = "{TOKEN}"
"#,
            dir = pki.dir.path().display()
        ),
    );
    let second = Gateway::start(&second_config);
    let (status, body) = second.get_json(&format!(
        "/api/v1/query_range?query=demo_temperature&start={}&end={}&step=60",
        T0,
        T0 + 3600
    ));
    assert_eq!(status, 200, "{body}");
    let values = body["data"]["result"][0]["values"].as_array().unwrap();
    assert!(values.len() >= 55, "{} points: {body}", values.len());
    use promgate::storage::remote::{LabelMatcher, MatcherType, Query, RemoteReadConfig};
    let series = common::remote_read(
        &second.url("/api/v1/read"),
        RemoteReadConfig::default(),
        &Query {
            start_timestamp_ms: T0 * 1000,
            end_timestamp_ms: (T0 + 3600) * 1000,
            matchers: vec![LabelMatcher {
                r#type: MatcherType::Eq as i32,
                name: "__name__".into(),
                value: "demo_temperature".into(),
            }],
            hints: None,
        },
    );
    let samples: usize = series.values().map(Vec::len).sum();
    assert_eq!(samples, 240, "remote read through the first gateway");

    // Secrets never show: not the token given inline, not the derived header.
    let (status, body) = second.get_json("/api/v1/status/config");
    assert_eq!(status, 200);
    let yaml = body["data"]["yaml"].as_str().unwrap();
    assert!(!yaml.contains(TOKEN), "{yaml}");
    assert!(yaml.contains("<secret>"), "{yaml}");
    let debug = format!("{:?}", second.app.topology.load().config);
    assert!(!debug.contains(TOKEN), "{debug}");

    // A wrong token towards the first gateway: a warning-free error naming the backend
    // (it is the only one), never a silent empty answer.
    std::fs::write(
        &second_config,
        std::fs::read_to_string(&second_config)
            .unwrap()
            .replace(TOKEN, "wrong-token"),
    )
    .unwrap();
    let reload = common::post_form(&second.url("/-/reload"), &[]);
    assert_eq!(
        reload.status,
        200,
        "{}",
        String::from_utf8_lossy(&reload.body)
    );
    let (status, body) = second.get_json(&format!(
        "/api/v1/query?query=demo_temperature&time={}",
        T0 + 1800
    ));
    assert_ne!(status, 200, "{body}");
    assert!(body["error"].as_str().unwrap().contains("first"), "{body}");
    assert!(body["error"].as_str().unwrap().contains("401"), "{body}");

    // [server.auth] follows a reload: a new token works at once, the old ones still do.
    std::fs::write(
        &first_config,
        first_gateway_config(&pki, prometheus.port(), &["fresh-token"]),
    )
    .unwrap();
    let status = client.post(
        &format!("{base}/-/reload"),
        &basic("grafana", GRAFANA_PASSWORD),
    );
    assert_eq!(status, 200);
    let (status, _, body) = client.get(&query, Some("Bearer fresh-token")).unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = client
        .get(&query, Some(&format!("Bearer {TOKEN}")))
        .unwrap();
    assert_eq!(status, 200);
    drop(prometheus);
}

#[test]
fn broken_security_settings_are_config_errors() {
    let pki = Pki::new();
    let dir = pki.dir.path().display();
    let cases = [
        (
            format!("[server.tls]\ncert_file = \"{dir}/missing.crt\"\nkey_file = \"{dir}/server.key\"\n"),
            "server.tls: cannot read",
        ),
        (
            format!("[server.tls]\ncert_file = \"{dir}/server.crt\"\nkey_file = \"{dir}/client.key\"\n"),
            "server.tls: certificate and key",
        ),
        (
            "[server.auth]\nbasic_users = { grafana = \"plain-password\" }\n".to_string(),
            "never the secret itself",
        ),
        ("[server.auth]\n".to_string(), "nobody could use promgate"),
        (
            "[[backend]]\nname = \"a\"\nkind = \"prometheus\"\nurl = \"http://h:9090\"\n[backend.tls]\n".to_string(),
            "backend[0].tls: the url is not https://",
        ),
        (
            "[[backend]]\nname = \"a\"\nkind = \"prometheus\"\nurl = \"https://h:9090\"\n[backend.basic_auth]\nusername = \"u\"\npassword_env = \"PROMGATE_TEST_UNSET_VARIABLE\"\n".to_string(),
            "backend[0].basic_auth: environment variable PROMGATE_TEST_UNSET_VARIABLE is not set",
        ),
        (
            "[[backend]]\nname = \"a\"\nkind = \"prometheus\"\nurl = \"https://h:9090\"\n[backend.authorization]\ncredentials = \"x\"\ncredentials_file = \"/etc/hostname\"\n".to_string(),
            "one way only",
        ),
    ];
    for (text, expected) in cases {
        let errors = promgate::config::Config::parse(&text)
            .unwrap_err()
            .to_string();
        assert!(errors.contains(expected), "{text}\n→ {errors}");
    }
}
