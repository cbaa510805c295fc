//! Reload triggers besides POST /-/reload: SIGHUP, and changes to the configuration file.
//! The directory is watched rather than the file, because editors and config managers
//! replace files by renaming, which ends a watch on the old inode.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::app::App;

/// Changes arriving within this window are one reload.
const SETTLE: Duration = Duration::from_millis(250);

pub(super) async fn on_sighup(app: Arc<App>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload with POST /-/reload");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = app.reload().await;
        }
    }
    #[cfg(not(unix))]
    let _ = app;
}

pub(super) async fn on_file_change(app: Arc<App>, path: PathBuf) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let file_name = path.file_name().map(|n| n.to_os_string());
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                let ours = event
                    .paths
                    .iter()
                    .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name);
                if ours && !event.kind.is_access() {
                    let _ = tx.send(());
                }
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the configuration file");
                return;
            }
        };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the configuration directory");
        return;
    }
    while rx.recv().await.is_some() {
        tokio::time::sleep(SETTLE).await;
        while rx.try_recv().is_ok() {}
        let _ = app.reload().await;
    }
}
