//! The compose file as the checks see it: services with their image, command and mounts,
//! read with serde_yaml and checked for what needs no compose binary; and the compose
//! binary itself, when one is installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

// === the compose file ===

/// A service's mount: where it comes from on the host (relative binds resolved against the
/// stack directory) and where it goes in the container.
#[derive(Debug, Clone)]
pub enum Source {
    Bind(PathBuf),
    Volume(String),
    Other,
}

#[derive(Debug, Clone)]
pub struct Mount {
    pub source: Source,
    pub target: String,
}

pub struct Service {
    pub name: String,
    pub image: Option<String>,
    pub command: Vec<String>,
    pub mounts: Vec<Mount>,
}

pub struct Stack {
    pub dir: PathBuf,
    pub services: Vec<Service>,
}

impl Stack {
    pub fn has_service(&self, name: &str) -> bool {
        self.services.iter().any(|s| s.name == name)
    }

    /// Host files mounted at `target` by some service.
    pub fn sources_of(&self, target: &str) -> Vec<(&Service, PathBuf)> {
        let mut found = Vec::new();
        for service in &self.services {
            for mount in &service.mounts {
                if let (Source::Bind(path), true) = (&mount.source, mount.target == target) {
                    found.push((service, path.clone()));
                }
            }
        }
        found
    }
}

pub fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn bind_source(dir: &Path, source: &str) -> Source {
    if source.starts_with("./") || source.starts_with("../") || source == "." {
        Source::Bind(dir.join(source))
    } else if source.starts_with('/') || source.starts_with('~') || source.starts_with('$') {
        Source::Other
    } else {
        Source::Volume(source.to_string())
    }
}

/// Parses a stack's compose.yaml and checks what needs no compose binary: services with an
/// image or a build (whose context holds a Dockerfile), bind sources that exist, named
/// volumes that are declared.
pub fn load_stack(dir: &Path, problems: &mut Vec<String>) -> Option<Stack> {
    let file = dir.join("compose.yaml");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{}: {e}", file.display()));
            return None;
        }
    };
    let doc: Value = match serde_yaml::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("{}: not YAML: {e}", file.display()));
            return None;
        }
    };
    let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
        problems.push(format!("{}: no services", file.display()));
        return None;
    };
    let declared: BTreeSet<String> = doc
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(text_of).collect())
        .unwrap_or_default();
    let mut stack = Stack {
        dir: dir.to_path_buf(),
        services: Vec::new(),
    };
    for (name, body) in services {
        let name = text_of(name).unwrap_or_default();
        let at = format!("{}: services.{name}", file.display());
        let image = body.get("image").and_then(text_of);
        let build = body.get("build").map(|b| match b {
            Value::Mapping(_) => (
                b.get("context")
                    .and_then(text_of)
                    .unwrap_or(".".to_string()),
                b.get("dockerfile")
                    .and_then(text_of)
                    .unwrap_or("Dockerfile".to_string()),
            ),
            other => (text_of(other).unwrap_or_default(), "Dockerfile".to_string()),
        });
        match &build {
            None if image.is_none() => problems.push(format!("{at}: neither image nor build")),
            Some((context, dockerfile)) => {
                let context = dir.join(context);
                if !context.join(dockerfile).is_file() {
                    problems.push(format!(
                        "{at}: build context {} has no {dockerfile}",
                        context.display()
                    ));
                }
            }
            None => {}
        }
        let command = match body.get("command") {
            Some(Value::Sequence(items)) => items.iter().filter_map(text_of).collect(),
            Some(other) => text_of(other)
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut mounts = Vec::new();
        for volume in body
            .get("volumes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let mount = match volume {
                Value::String(short) => {
                    let mut parts = short.splitn(3, ':');
                    let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
                        // An anonymous volume: a container path only.
                        continue;
                    };
                    Mount {
                        source: bind_source(dir, source),
                        target: target.to_string(),
                    }
                }
                Value::Mapping(_) => {
                    let kind = volume.get("type").and_then(text_of).unwrap_or_default();
                    let source = volume.get("source").and_then(text_of).unwrap_or_default();
                    let target = volume.get("target").and_then(text_of).unwrap_or_default();
                    let source = match kind.as_str() {
                        "bind" => bind_source(dir, &source),
                        "volume" => Source::Volume(source),
                        _ => Source::Other,
                    };
                    Mount { source, target }
                }
                other => {
                    problems.push(format!("{at}: unreadable volume entry {other:?}"));
                    continue;
                }
            };
            match &mount.source {
                Source::Bind(path) if !path.exists() => problems.push(format!(
                    "{at}: bind mount source {} does not exist",
                    path.display()
                )),
                Source::Volume(v) if !declared.contains(v) => problems.push(format!(
                    "{at}: volume {v:?} is not declared under the top-level volumes"
                )),
                _ => {}
            }
            mounts.push(mount);
        }
        stack.services.push(Service {
            name,
            image,
            command,
            mounts,
        });
    }
    Some(stack)
}

pub fn copy_into(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_into(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to).map(|_| ())
    }
}

// === compose itself ===

/// The compose v2 binary: standalone or as docker's plugin, wherever it was installed.
pub fn compose_command() -> Option<Vec<String>> {
    let works = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    for candidate in [
        "docker-compose",
        "/opt/compose/usr/libexec/docker/cli-plugins/docker-compose",
        "/usr/libexec/docker/cli-plugins/docker-compose",
    ] {
        if works(&[candidate]) {
            return Some(vec![candidate.to_string()]);
        }
    }
    works(&["docker", "compose"]).then(|| vec!["docker".to_string(), "compose".to_string()])
}

pub fn compose_config_problems(compose: &[String], file: &Path) -> Vec<String> {
    let out = Command::new(&compose[0])
        .args(&compose[1..])
        .arg("-f")
        .arg(file)
        .args(["config", "-q"])
        .output();
    match out {
        Ok(o) if o.status.success() => Vec::new(),
        Ok(o) => vec![format!(
            "{}: `{} config -q` failed:\n{}{}",
            file.display(),
            compose.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )],
        Err(e) => vec![format!("{}: cannot run {compose:?}: {e}", file.display())],
    }
}
