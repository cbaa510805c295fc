//! Objects in an S3 bucket (AWS or any S3-compatible server), below an optional key prefix.
//! Every request is bounded by one timeout; statuses become [`ObjectError`]s (404 is
//! `NotFound`, 416 `OutOfRange`). Credentials are static: given in the location, else
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`) from the
//! environment, else none (anonymous requests). Instance metadata is never asked.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use ::s3::Bucket;
use ::s3::creds::Credentials;
use ::s3::error::S3Error;
use ::s3::region::Region;
use bytes::Bytes;
use futures::future::BoxFuture;

use super::{ObjectError, ObjectInfo, ObjectStore, check_range};

/// Where the objects are and how to reach them.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct S3Location {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`; empty for AWS's
    /// endpoint of `region`.
    pub endpoint: String,
    pub bucket: String,
    /// `""` or a prefix ending in `/`, put before every key.
    pub prefix: String,
    pub region: String,
    /// `endpoint/bucket/key` URLs rather than `bucket.endpoint/key` (most S3-compatible
    /// servers want this).
    pub path_style: bool,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

/// Shows everything but the secret key.
impl fmt::Debug for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Location")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key", &self.access_key)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Static credentials, in the order the module describes, with `env` standing for the
/// process environment.
fn credentials(
    location: &S3Location,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Credentials, String> {
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let (access, secret, session) = match (given(&location.access_key), given(&location.secret_key))
    {
        (Some(a), Some(s)) => (a, s, None),
        (None, None) => {
            let var = |name: &str| env(name).filter(|s| !s.is_empty());
            match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                (Some(a), Some(s)) => (a, s, var("AWS_SESSION_TOKEN")),
                _ => {
                    return Credentials::anonymous().map_err(|e| e.to_string());
                }
            }
        }
        _ => {
            return Err(format!(
                "s3://{}: an access key needs its secret key and the other way round",
                location.bucket
            ));
        }
    };
    Credentials::new(Some(&access), Some(&secret), None, session.as_deref(), None)
        .map_err(|e| e.to_string())
}

/// The wait before a read that failed is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// An S3 bucket (below a prefix) seen as an object store.
#[derive(Clone)]
pub struct S3Objects {
    bucket: Box<Bucket>,
    prefix: String,
    timeout: Duration,
    description: String,
}

impl fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Objects")
            .field("location", &self.description)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl S3Objects {
    /// A store over `location`; every request (each page of a listing) gives up after
    /// `timeout` with [`ObjectError::Timeout`]. Nothing is asked of the server yet.
    pub fn new(location: &S3Location, timeout: Duration) -> Result<Self, String> {
        if location.bucket.is_empty() {
            return Err("an S3 location needs a bucket".to_string());
        }
        if !location.prefix.is_empty() && !location.prefix.ends_with('/') {
            return Err(format!(
                "s3://{}: prefix {:?} must be empty or end in '/'",
                location.bucket, location.prefix
            ));
        }
        if location.prefix.starts_with('/') {
            return Err(format!(
                "s3://{}: prefix {:?} must not start with '/'",
                location.bucket, location.prefix
            ));
        }
        let region_name = if location.region.is_empty() {
            "us-east-1".to_string()
        } else {
            location.region.clone()
        };
        let region = if location.endpoint.is_empty() {
            region_name
                .parse::<Region>()
                .map_err(|e| format!("region {region_name:?}: {e}"))?
        } else {
            Region::Custom {
                region: region_name,
                endpoint: location.endpoint.trim_end_matches('/').to_string(),
            }
        };
        // rust-s3 retries reads itself after a pause of a second, which no timeout here
        // could allow for; `call` retries instead. (The setting is global to the process.)
        ::s3::set_retries(0);
        let creds = credentials(location, |name| std::env::var(name).ok())?;
        let mut bucket = Bucket::new(&location.bucket, region, creds)
            .map_err(|e| format!("s3://{}: {e}", location.bucket))?;
        if location.path_style {
            bucket = bucket.with_path_style();
        }
        let bucket = bucket
            .with_request_timeout(timeout)
            .map_err(|e| format!("s3://{}: {e}", location.bucket))?;
        let mut description = format!("s3://{}/{}", location.bucket, location.prefix);
        if !location.endpoint.is_empty() {
            description.push_str(&format!(" at {}", location.endpoint));
        }
        Ok(S3Objects {
            bucket,
            prefix: location.prefix.clone(),
            timeout,
            description,
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs `request` for `key` under the timeout. A read (`retry`) that failed in
    /// transit or with a 5xx or 429 answer is tried once more if time is left.
    async fn call<T, F, Fut>(&self, key: &str, retry: bool, request: F) -> Result<T, ObjectError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, S3Error>>,
    {
        let attempts = async {
            let mut tries = if retry { 2 } else { 1 };
            loop {
                tries -= 1;
                match request().await {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        let e = map_error(key, e);
                        let transient = match &e {
                            ObjectError::Io { .. } => true,
                            ObjectError::Status { status, .. } => *status >= 500 || *status == 429,
                            _ => false,
                        };
                        if tries == 0 || !transient {
                            return Err(e);
                        }
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Err(_) => Err(ObjectError::Timeout),
            Ok(answer) => answer,
        }
    }

    /// The size of `key` for an [`ObjectError::OutOfRange`] (the answer to a bad range
    /// does not carry it).
    async fn out_of_range(&self, key: &str, range: &Range<u64>) -> ObjectError {
        match self.size(key).await {
            Ok(Some(size)) => match check_range(key, range, size) {
                Err(e) => e,
                Ok(()) => ObjectError::Io {
                    key: key.to_string(),
                    message: format!(
                        "range {}..{} refused though the object has {size} bytes",
                        range.start, range.end
                    ),
                },
            },
            Ok(None) => ObjectError::NotFound(key.to_string()),
            Err(e) => e,
        }
    }
}

/// Maps a failed request for `key` to the store's error.
fn map_error(key: &str, e: S3Error) -> ObjectError {
    match e {
        // A missing bucket is a 404 too, but no missing object; HEAD answers have no body.
        S3Error::HttpFailWithBody(404, body)
            if body.trim().is_empty() || body.contains("<Code>NoSuchKey</Code>") =>
        {
            ObjectError::NotFound(key.to_string())
        }
        S3Error::HttpFailWithBody(status, body) => ObjectError::Status {
            key: key.to_string(),
            status,
            message: error_message(&body),
        },
        S3Error::Reqwest(e) if e.is_timeout() => ObjectError::Timeout,
        other => ObjectError::Io {
            key: key.to_string(),
            message: other.to_string(),
        },
    }
}

/// The `<Code>` and `<Message>` of an S3 error document, else the start of the body.
fn error_message(body: &str) -> String {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let len = body[start..].find(&close)?;
        Some(body[start..start + len].to_string())
    };
    match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        (None, Some(message)) => message,
        (None, None) => body.chars().take(200).collect(),
    }
}

impl ObjectStore for S3Objects {
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        let key = key.to_string();
        Box::pin(async move {
            let full = self.full_key(&key);
            let data = self
                .call(&key, true, || self.bucket.get_object(&full))
                .await?;
            Ok(data.bytes().clone())
        })
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        let key = key.to_string();
        Box::pin(async move {
            if range.start == range.end {
                return Ok(Bytes::new());
            }
            if range.start > range.end {
                return Err(self.out_of_range(&key, &range).await);
            }
            let full = self.full_key(&key);
            let answer = self
                .call(&key, true, || {
                    self.bucket
                        .get_object_range(&full, range.start, Some(range.end - 1))
                })
                .await;
            match answer {
                // A range running past the end is cut short by S3 rather than refused.
                Ok(data) if data.bytes().len() as u64 == range.end - range.start => {
                    Ok(data.bytes().clone())
                }
                // A server that ignores Range sends the whole object.
                Ok(data) if data.status_code() == 200 && data.bytes().len() as u64 >= range.end => {
                    Ok(data.bytes().slice(range.start as usize..range.end as usize))
                }
                Ok(_) | Err(ObjectError::Status { status: 416, .. }) => {
                    Err(self.out_of_range(&key, &range).await)
                }
                Err(e) => Err(e),
            }
        })
    }

    fn size(&self, key: &str) -> BoxFuture<'_, Result<Option<u64>, ObjectError>> {
        let key = key.to_string();
        Box::pin(async move {
            let full = self.full_key(&key);
            match self
                .call(&key, true, || self.bucket.head_object(&full))
                .await
            {
                Ok((head, _)) => match head.content_length {
                    Some(n) if n >= 0 => Ok(Some(n as u64)),
                    _ => Err(ObjectError::Io {
                        key,
                        message: "no Content-Length in the answer to HEAD".to_string(),
                    }),
                },
                Err(ObjectError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>, ObjectError>> {
        let prefix = prefix.to_string();
        Box::pin(async move {
            let full = self.full_key(&prefix);
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let (page, _) = self
                    .call(&prefix, true, || {
                        self.bucket
                            .list_page(full.clone(), None, token.clone(), None, None)
                    })
                    .await?;
                for object in page.contents {
                    if let Some(key) = object.key.strip_prefix(&self.prefix) {
                        out.push(ObjectInfo {
                            key: key.to_string(),
                            size: object.size,
                        });
                    }
                }
                match page.next_continuation_token {
                    Some(next) if page.is_truncated && Some(&next) != token.as_ref() => {
                        token = Some(next)
                    }
                    Some(_) if page.is_truncated => {
                        return Err(ObjectError::Io {
                            key: prefix,
                            message: "the listing repeated its continuation token".to_string(),
                        });
                    }
                    _ => break,
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
    }

    fn put(&self, key: &str, data: Bytes) -> BoxFuture<'_, Result<(), ObjectError>> {
        let key = key.to_string();
        Box::pin(async move {
            let full = self.full_key(&key);
            self.call(&key, false, || self.bucket.put_object(&full, &data))
                .await
                .map(|_| ())
        })
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), ObjectError>> {
        let key = key.to_string();
        Box::pin(async move {
            let full = self.full_key(&key);
            match self
                .call(&key, false, || self.bucket.delete_object(&full))
                .await
            {
                Ok(_) | Err(ObjectError::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location() -> S3Location {
        S3Location {
            bucket: "b".into(),
            region: "us-east-1".into(),
            ..S3Location::default()
        }
    }

    #[test]
    fn credentials_come_from_the_location_then_the_environment_else_none() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("env-access".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-secret".to_string()),
            "AWS_SESSION_TOKEN" => Some("env-token".to_string()),
            _ => None,
        };
        let given = S3Location {
            access_key: Some("a".into()),
            secret_key: Some("s".into()),
            ..location()
        };
        let c = credentials(&given, env).unwrap();
        assert_eq!(
            (
                c.access_key.as_deref(),
                c.secret_key.as_deref(),
                c.session_token
            ),
            (Some("a"), Some("s"), None)
        );
        let c = credentials(&location(), env).unwrap();
        assert_eq!(c.access_key.as_deref(), Some("env-access"));
        assert_eq!(c.secret_key.as_deref(), Some("env-secret"));
        assert_eq!(c.session_token.as_deref(), Some("env-token"));
        let c = credentials(&location(), |_| None).unwrap();
        assert_eq!((c.access_key, c.secret_key), (None, None));
        let half = S3Location {
            access_key: Some("a".into()),
            ..location()
        };
        assert!(credentials(&half, env).is_err());
    }

    #[test]
    fn secrets_stay_out_of_messages() {
        let loc = S3Location {
            endpoint: "http://127.0.0.1:9".into(),
            prefix: "p/".into(),
            access_key: Some("AKEXAMPLE".into()),
            secret_key: Some("very-secret".into()),
            ..location()
        };
        assert!(!format!("{loc:?}").contains("very-secret"));
        let store = S3Objects::new(&loc, Duration::from_secs(1)).unwrap();
        assert_eq!(store.describe(), "s3://b/p/ at http://127.0.0.1:9");
        assert!(!format!("{store:?}").contains("very-secret"));
    }

    #[test]
    fn locations_are_checked() {
        let bad_prefix = S3Location {
            prefix: "p".into(),
            ..location()
        };
        assert!(S3Objects::new(&bad_prefix, Duration::from_secs(1)).is_err());
        let no_bucket = S3Location {
            bucket: String::new(),
            ..location()
        };
        assert!(S3Objects::new(&no_bucket, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn error_documents_give_their_code_and_message() {
        let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>\
                    <Message>Access Denied</Message><RequestId>1</RequestId></Error>";
        assert_eq!(error_message(body), "AccessDenied: Access Denied");
        assert_eq!(error_message("plain"), "plain");
    }
}
