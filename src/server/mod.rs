//! The listener: HTTP/1.1 and h2c on one port (or HTTPS, with HTTP/2 by ALPN) behind the
//! tower stack (request id, tracing, gzip, metrics, admission — per-client rate, request
//! slots with a bounded queue —, timeout), client authentication, graceful shutdown, and
//! the reload triggers (SIGHUP, file changes, POST /-/reload).

mod reload;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::api::Body;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::{BoxError, ServiceBuilder};
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::api;
use crate::app::{App, DISCOVERY_BUDGET};
use crate::config::{Config, ConfigErrors};
use crate::error::ApiError;
use crate::layer::admission::{Admission, AdmissionLayer, AdmissionSettings, ClientAddr};
use crate::layer::http_metrics::HttpMetricsLayer;

/// How long a client may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often discovered external labels are read again.
const LABEL_REFRESH: Duration = Duration::from_secs(60);

/// A running server.
pub struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds `listen` and starts serving `app`. Returns once the socket is bound; the
    /// backends' external labels are discovered in the background, and /-/ready answers 200
    /// when that first round is over.
    pub async fn start(app: Arc<App>, listen: SocketAddr) -> std::io::Result<Server> {
        let tls = match &app.topology.load().config.server.tls {
            Some(tls) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                crate::tls::server_config(tls).map_err(std::io::Error::other)?,
            ))),
            None => None,
        };
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let grace = app.topology.load().config.server.shutdown_grace.0;
        let task = tokio::spawn(serve(listener, tls, app.clone(), stopped, grace));
        let discovery = {
            let app = app.clone();
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + DISCOVERY_BUDGET;
                app.topology.discover_all(Some(deadline), false).await;
                app.set_ready();
                let mut every = tokio::time::interval(LABEL_REFRESH);
                every.tick().await;
                loop {
                    every.tick().await;
                    let deadline = tokio::time::Instant::now() + DISCOVERY_BUDGET;
                    app.topology.discover_all(Some(deadline), true).await;
                }
            })
        };
        tracing::info!(%addr, "promgate listening");
        Ok(Server {
            addr,
            app,
            stop,
            task,
            background: vec![discovery],
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Re-reads the configuration on file changes and SIGHUP, for as long as the server runs.
    pub fn watch_reloads(&mut self, path: &Path) {
        let app = self.app.clone();
        self.background
            .push(tokio::spawn(reload::on_sighup(app.clone())));
        if app.topology.load().config.server.watch_config {
            self.background.push(tokio::spawn(reload::on_file_change(
                app,
                path.to_path_buf(),
            )));
        }
    }

    /// Stops accepting, lets requests in flight finish (bounded by `server.shutdown_grace`),
    /// and returns when the server is down.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        for task in self.background {
            task.abort();
        }
    }
}

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{n:x}"))
            .ok()
            .map(RequestId::new)
    }
}

/// A 5xx answer is what promgate meant to say (a backend down, not ready yet) and is
/// logged where its cause is; only a response that failed outright is a warning.
fn log_failure(
    failure: tower_http::classify::ServerErrorsFailureClass,
    latency: Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass as Class;
    match failure {
        Class::StatusCode(code) => {
            tracing::debug!(status = %code, ?latency, "answered with a server error")
        }
        Class::Error(error) => tracing::warn!(%error, ?latency, "response failed"),
    }
}

async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<App>,
    mut stopped: watch::Receiver<bool>,
    grace: Duration,
) {
    let config = app.topology.load().config.clone();
    let handler_app = app.clone();
    let settings_app = app.clone();
    let admission = Admission::new(
        config.server.max_concurrent_requests,
        move || admission_settings(&settings_app.topology.load().config),
        app.metrics.clone(),
    );
    let service = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(Counter::default()))
        .layer(TraceLayer::new_for_http().on_failure(log_failure))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(CompressionLayer::new().gzip(true))
        .layer(HttpMetricsLayer::new(app.metrics.clone()))
        .map_result(layer_errors_as_responses)
        .layer(AdmissionLayer::new(admission))
        .timeout(config.query.timeout.0 + Duration::from_secs(5))
        .service_fn(move |req: Request<Incoming>| {
            let app = handler_app.clone();
            async move {
                if !app.authorizes(req.uri().path(), req.headers()).await {
                    return Ok::<_, Infallible>(unauthorized());
                }
                Ok(api::handle(app, req).await)
            }
        });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let max_header_bytes = usize::try_from(config.server.max_header_bytes.0).unwrap_or(usize::MAX);
    builder.http1().max_buf_size(max_header_bytes);
    builder
        .http2()
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let client = ClientAddr(peer.ip());
                let service = TowerToHyperService::new(tower::util::MapRequest::new(
                    service.clone(),
                    move |mut req: Request<Incoming>| {
                        req.extensions_mut().insert(client);
                        req
                    },
                ));
                let Some(acceptor) = &tls else {
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                    continue;
                };
                // The handshake runs in the connection's task, so a slow client holds up
                // only itself.
                let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stopped.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "shutdown grace elapsed with requests still in flight"
        );
    }
}

/// 401 in Prometheus's error format, asking for basic auth.
fn unauthorized() -> Response<Body> {
    let mut response = api::error_response(&ApiError::unauthorized(
        "authentication required: basic auth or a bearer token",
    ));
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"promgate\""),
    );
    response
}

/// The admission knobs that a reload may change.
fn admission_settings(config: &Config) -> AdmissionSettings {
    AdmissionSettings {
        requests_per_second: config.server.client_requests_per_second,
        burst: config.server.client_burst,
        max_queued: config.server.max_queued_requests,
        queue_timeout: config.server.queue_timeout.0,
    }
}

/// Errors of the layers below (timeout) become answers in Prometheus's format.
fn layer_errors_as_responses(
    result: Result<Response<Body>, BoxError>,
) -> Result<Response<Body>, BoxError> {
    Ok(result.unwrap_or_else(|e| api::error_response(&layer_error(e))))
}

fn layer_error(e: BoxError) -> ApiError {
    if e.is::<tower::timeout::error::Elapsed>() {
        ApiError::timeout("request timed out")
    } else {
        ApiError::internal(e.to_string())
    }
}

/// `promgate run`: serves until SIGTERM or SIGINT, then drains.
pub async fn run(config_path: PathBuf, listen: Option<String>) -> Result<(), RunError> {
    let config = Config::load(&config_path).map_err(RunError::Config)?;
    let listen = listen.unwrap_or_else(|| config.server.listen.clone());
    let addr = crate::config::parse_listen(&listen)
        .map_err(|e| RunError::Config(ConfigErrors(vec![format!("--listen: {e}")])))?;
    let app = App::new(config, Some(config_path.clone()));
    let mut server = Server::start(app, addr).await.map_err(RunError::Bind)?;
    server.watch_reloads(&config_path);
    wait_for_termination().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid configuration:\n{0}")]
    Config(ConfigErrors),
    #[error("cannot listen: {0}")]
    Bind(std::io::Error),
}
