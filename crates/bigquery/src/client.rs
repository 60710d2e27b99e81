use crate::error::{BqError, is_shape_mismatch, shape_advice};
use crate::rows::row_objects;
use crate::schema::Table;
use epc_model::warehouse::{check_dataset, check_project, check_region, check_table};
use google_auth::{Auth, SendError};
use http_client::{Client, Method, Request, Response, Transport};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// Where BigQuery is when no emulator is configured.
pub const BIGQUERY_BASE_URL: &str = "https://bigquery.googleapis.com";

/// The roles a person must grant when BigQuery says 403.
const ROLES: &str = "roles/bigquery.jobUser on the project and roles/bigquery.dataEditor on the dataset \
    (and, for loads, roles/storage.objectViewer on the landing bucket)";

/// Where the warehouse is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub project: String,
    pub dataset: String,
    /// The dataset's location and the jobs': `europe-west2`, `EU`, `US`.
    pub region: String,
}

/// A finished job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    /// Rows a load wrote, or a DML statement changed; 0 for other queries
    /// and for scripts (BigQuery counts those per child job).
    pub rows: u64,
    /// The job resource as `jobs.get` last returned it, for what callers
    /// want beyond rows (statistics, labels).
    pub resource: Value,
}

/// A BigQuery client bound to one project, dataset and location.
pub struct BigQuery<T> {
    client: Client<T>,
    auth: Auth,
    base: String,
    settings: Settings,
    job_deadline: Duration,
    page_size: Option<u32>,
}

/// BigQuery's error body: `{"error": {"code", "message", "errors": [{"reason"}]}}`.
fn google_error(r: &Response) -> (String, String) {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let e = &v["error"];
    let reason = e["errors"][0]["reason"].as_str().or(e["status"].as_str()).unwrap_or("").to_string();
    let message = e["message"].as_str().map(str::to_string).unwrap_or_else(|| r.snippet());
    (if reason.is_empty() { format!("HTTP {}", r.status) } else { reason }, message)
}

/// Job labels follow Google's label rules: checked here so that a bad one
/// fails before the job, not inside it.
fn check_labels(labels: &[(String, String)]) -> Result<(), BqError> {
    let ok = |s: &str, may_be_empty: bool| {
        (may_be_empty || !s.is_empty())
            && s.len() <= 63
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    for (k, v) in labels {
        if !ok(k, false) || !k.starts_with(|c: char| c.is_ascii_lowercase()) || !ok(v, true) {
            return Err(BqError::InvalidInput(format!(
                "job label {k}={v} is not valid: keys and values are up to 63 lowercase letters, digits, '_' or '-'"
            )));
        }
    }
    Ok(())
}

fn labels_json(labels: &[(String, String)]) -> Value {
    Value::Object(labels.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect())
}

fn count(v: &Value) -> u64 {
    v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()).unwrap_or(0)
}

impl<T: Transport> BigQuery<T> {
    /// Checks the names, then binds the client. With `emulator`
    /// (`BIGQUERY_EMULATOR_HOST`, with or without `http://`) requests go
    /// there and carry no credentials.
    pub fn new(client: Client<T>, auth: Auth, settings: Settings, emulator: Option<&str>) -> Result<Self, BqError> {
        check_project(&settings.project)?;
        check_dataset(&settings.dataset)?;
        check_region(&settings.region)?;
        let (base, auth) = match emulator.filter(|e| !e.trim().is_empty()) {
            Some(e) => (google_auth::emulator_url(e), Auth::none()),
            None => (BIGQUERY_BASE_URL.to_string(), auth),
        };
        Ok(Self { client, auth, base, settings, job_deadline: Duration::from_secs(30 * 60), page_size: None })
    }

    /// How long to wait for a job before giving up on it (it keeps
    /// running): 30 minutes unless set.
    pub fn with_job_deadline(mut self, d: Duration) -> Self {
        self.job_deadline = d;
        self
    }

    /// Rows per `getQueryResults` page; BigQuery's default when unset.
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn client(&self) -> &Client<T> {
        &self.client
    }

    /// `project.dataset.table`, the name SQL and messages use.
    pub fn qualified(&self, table: &str) -> String {
        format!("{}.{}.{table}", self.settings.project, self.settings.dataset)
    }

    fn project_url(&self) -> String {
        format!("{}/bigquery/v2/projects/{}", self.base, self.settings.project)
    }

    fn dataset_url(&self) -> String {
        format!("{}/datasets/{}", self.project_url(), self.settings.dataset)
    }

    async fn send(&self, request: Request, what: &str) -> Result<Response, BqError> {
        self.auth.send(&self.client, &request).await.map_err(|e| match e {
            SendError::Auth(a) => BqError::Unauthorized(format!("{what}: {a}")),
            SendError::Http(h) => BqError::Unavailable(format!("{what}: {h}")),
        })
    }

    async fn send_json(&self, method: Method, url: String, body: &Value, what: &str) -> Result<Response, BqError> {
        let request = Request::new(method, url).header("Content-Type", "application/json").body(body.to_string().into_bytes());
        self.send(request, what).await
    }

    /// The error for an unexpected response.
    fn failure(&self, r: &Response, what: &str) -> BqError {
        let (reason, message) = google_error(r);
        match r.status {
            401 => BqError::Unauthorized(format!(
                "{what}: BigQuery refused the credentials ({}) even after a fresh token: {message}",
                self.auth.describe()
            )),
            403 if reason == "accessDenied" || reason == "HTTP 403" || reason == "PERMISSION_DENIED" => {
                BqError::Unauthorized(format!(
                    "{what}: permission denied for {} ({message}); grant {ROLES}",
                    self.auth.describe()
                ))
            }
            _ => {
                let advice = if is_shape_mismatch(&message) { shape_advice(&self.qualified("TABLE")) } else { String::new() };
                BqError::Refused { what: what.to_string(), reason, message, advice }
            }
        }
    }

    fn parse(&self, r: &Response, what: &str) -> Result<Value, BqError> {
        serde_json::from_slice(&r.body)
            .map_err(|e| BqError::Protocol(format!("{what}: BigQuery's answer is not JSON ({e}): {}", r.snippet())))
    }

    /// Creates the dataset in the configured location when missing. An
    /// existing dataset elsewhere is a mismatch: its tables cannot move.
    pub async fn ensure_dataset(&self) -> Result<(), BqError> {
        let s = &self.settings;
        let what = format!("dataset {}:{}", s.project, s.dataset);
        let r = self.send(Request::get(self.dataset_url()), &format!("reading {what}")).await?;
        let existing = match r.status {
            200 => self.parse(&r, &what)?,
            404 => {
                let body = json!({
                    "datasetReference": {"projectId": s.project, "datasetId": s.dataset},
                    "location": s.region,
                    "description": "EPC open data as loaded by dame-epc",
                });
                let url = format!("{}/datasets", self.project_url());
                let r = self.send_json(Method::Post, url, &body, &format!("creating {what}")).await?;
                return match r.status {
                    // 409: created meanwhile by another run; fine.
                    200 | 409 => Ok(()),
                    _ => Err(self.failure(&r, &format!("creating {what} in {}", s.region))),
                };
            }
            _ => return Err(self.failure(&r, &format!("reading {what}"))),
        };
        let location = existing["location"].as_str().unwrap_or("");
        if !location.is_empty() && !location.eq_ignore_ascii_case(&s.region) {
            return Err(BqError::Mismatch(format!(
                "{what} is in {location}, not {}: set `region` to {location}, or choose another dataset",
                s.region
            )));
        }
        Ok(())
    }

    /// The table resource, or `None` when it does not exist.
    pub async fn get_table(&self, table: &str) -> Result<Option<Value>, BqError> {
        check_table(table)?;
        let what = format!("reading table {}", self.qualified(table));
        let r = self.send(Request::get(format!("{}/tables/{table}", self.dataset_url())), &what).await?;
        match r.status {
            200 => self.parse(&r, &what).map(Some),
            404 => Ok(None),
            _ => Err(self.failure(&r, &what)),
        }
    }

    /// Creates `table` through the tables API (clustering declared in DDL
    /// is not reported back by every BigQuery, so dame never uses DDL for
    /// this). `Ok(false)` if it already existed.
    pub async fn create_table(&self, table: &Table) -> Result<bool, BqError> {
        table.check()?;
        let s = &self.settings;
        let mut body = json!({
            "tableReference": {"projectId": s.project, "datasetId": s.dataset, "tableId": table.name},
            "description": table.description,
            "schema": table.schema_json(),
        });
        if let Some(field) = &table.partition_by_month {
            body["timePartitioning"] = json!({"type": "MONTH", "field": field});
        }
        if !table.cluster_by.is_empty() {
            body["clustering"] = json!({"fields": table.cluster_by});
        }
        let what = format!("creating table {}", self.qualified(&table.name));
        let r = self.send_json(Method::Post, format!("{}/tables", self.dataset_url()), &body, &what).await?;
        match r.status {
            200 => Ok(true),
            409 => Ok(false),
            _ => Err(self.failure(&r, &what)),
        }
    }

    /// The dataset and the table, created when missing. A table that
    /// exists partitioned or clustered otherwise is a [`BqError::Mismatch`]
    /// with the runbook's advice: loads into it would fail with
    /// "Incompatible table partitioning specification".
    pub async fn ensure_table(&self, table: &Table) -> Result<(), BqError> {
        table.check()?;
        self.ensure_dataset().await?;
        let existing = match self.get_table(&table.name).await? {
            None => {
                if self.create_table(table).await? {
                    return Ok(());
                }
                // Created meanwhile: compare with what the other run made.
                self.get_table(&table.name).await?.unwrap_or(Value::Null)
            }
            Some(t) => t,
        };
        let partition = existing["timePartitioning"]["field"].as_str().map(|f| {
            (existing["timePartitioning"]["type"].as_str().unwrap_or("DAY").to_string(), f.to_string())
        });
        let wanted = table.partition_by_month.as_ref().map(|f| ("MONTH".to_string(), f.clone()));
        let clustering: Vec<String> = existing["clustering"]["fields"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let show = |p: &Option<(String, String)>| match p {
            Some((ty, f)) => format!("{ty} on {f}"),
            None => "none".to_string(),
        };
        let mut differences = Vec::new();
        if partition != wanted {
            differences.push(format!("partitioning is {}, dame wants {}", show(&partition), show(&wanted)));
        }
        if clustering != table.cluster_by {
            differences.push(format!("clustering is [{}], dame wants [{}]", clustering.join(", "), table.cluster_by.join(", ")));
        }
        if differences.is_empty() {
            return Ok(());
        }
        let name = self.qualified(&table.name);
        Err(BqError::Mismatch(format!("table {name}: {}{}", differences.join("; "), shape_advice(&name))))
    }

    /// Drops `table`; `Ok(false)` if it did not exist.
    pub async fn drop_table(&self, table: &str) -> Result<bool, BqError> {
        check_table(table)?;
        let what = format!("dropping table {}", self.qualified(table));
        let r = self.send(Request::new(Method::Delete, format!("{}/tables/{table}", self.dataset_url())), &what).await?;
        match r.status {
            200 | 204 => Ok(true),
            404 => Ok(false),
            _ => Err(self.failure(&r, &what)),
        }
    }

    /// Replaces the rows of `table` (which must exist) with the NDJSON
    /// objects at `uris` (`gs://…`, gzipped or not). The job states the
    /// table's own schema, partitioning and clustering, so BigQuery never
    /// has to infer or compare them.
    pub async fn load(&self, table: &str, uris: &[String], labels: &[(String, String)]) -> Result<Job, BqError> {
        check_table(table)?;
        check_labels(labels)?;
        if uris.is_empty() {
            return Err(BqError::InvalidInput(format!("loading {}: no objects to load", self.qualified(table))));
        }
        if let Some(bad) = uris.iter().find(|u| !u.starts_with("gs://")) {
            return Err(BqError::InvalidInput(format!("loading {}: {bad} is not a gs:// URI", self.qualified(table))));
        }
        let name = self.qualified(table);
        let existing = self.get_table(table).await?.ok_or_else(|| {
            BqError::InvalidInput(format!("loading {name}: the table does not exist; ensure it first"))
        })?;
        let s = &self.settings;
        let mut load = json!({
            "sourceUris": uris,
            "sourceFormat": "NEWLINE_DELIMITED_JSON",
            "schema": {"fields": existing["schema"]["fields"].clone()},
            "destinationTable": {"projectId": s.project, "datasetId": s.dataset, "tableId": table},
            "writeDisposition": "WRITE_TRUNCATE",
            "createDisposition": "CREATE_NEVER",
        });
        for key in ["timePartitioning", "clustering"] {
            if !existing[key].is_null() {
                load[key] = existing[key].clone();
            }
        }
        let job = self.run_job(json!({"load": load, "labels": labels_json(labels)}), "load", &format!("loading {name}")).await?;
        let rows = count(&job["statistics"]["load"]["outputRows"]);
        Ok(Job { id: job["jobReference"]["jobId"].as_str().unwrap_or("").to_string(), rows, resource: job })
    }

    /// Runs a statement or script in standard SQL and waits for it.
    pub async fn execute(&self, sql: &str, labels: &[(String, String)]) -> Result<Job, BqError> {
        check_labels(labels)?;
        let config = json!({"query": {"query": sql, "useLegacySql": false}, "labels": labels_json(labels)});
        let job = self.run_job(config, "query", "running a query").await?;
        let rows = count(&job["statistics"]["query"]["numDmlAffectedRows"]);
        Ok(Job { id: job["jobReference"]["jobId"].as_str().unwrap_or("").to_string(), rows, resource: job })
    }

    /// Runs a query and returns every row as a JSON object, paging through
    /// the results.
    pub async fn query(&self, sql: &str, labels: &[(String, String)]) -> Result<Vec<Map<String, Value>>, BqError> {
        let job = self.execute(sql, labels).await?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let what = format!("reading the results of job {}", job.id);
        loop {
            let mut url = format!(
                "{}/queries/{}?location={}&formatOptions.useInt64Timestamp=true",
                self.project_url(),
                job.id,
                self.settings.region
            );
            if let Some(n) = self.page_size {
                url.push_str(&format!("&maxResults={n}"));
            }
            if let Some(t) = &token {
                url.push_str(&format!("&pageToken={}", encode_query(t)));
            }
            let r = self.send(Request::get(url), &what).await?;
            if r.status != 200 {
                return Err(self.failure(&r, &what));
            }
            let page = self.parse(&r, &what)?;
            let fields = page["schema"]["fields"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let rows = page["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            out.extend(row_objects(fields, rows));
            match page["pageToken"].as_str().filter(|t| !t.is_empty() && !rows.is_empty()) {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        Ok(out)
    }

    /// The job resource from `jobs.get`.
    pub async fn get_job(&self, id: &str) -> Result<Value, BqError> {
        check_job_id(id)?;
        let what = format!("reading job {id}");
        let url = format!("{}/jobs/{id}?location={}", self.project_url(), self.settings.region);
        let r = self.send(Request::get(url), &what).await?;
        if r.status != 200 {
            return Err(self.failure(&r, &what));
        }
        self.parse(&r, &what)
    }

    /// Inserts a job with an id of ours and polls it to `DONE`. Our own id
    /// makes the insert safe to retry: if a first attempt reached BigQuery,
    /// the retry's 409 says so and the job is polled all the same.
    async fn run_job(&self, configuration: Value, kind: &str, what: &str) -> Result<Value, BqError> {
        let id = self.new_job_id(kind);
        let s = &self.settings;
        let body = json!({
            "jobReference": {"projectId": s.project, "jobId": id, "location": s.region},
            "configuration": configuration,
        });
        let what = format!("{what} (job {id})");
        let r = self.send_json(Method::Post, format!("{}/jobs", self.project_url()), &body, &what).await?;
        let mut job = match r.status {
            200 => self.parse(&r, &what)?,
            409 => json!({"jobReference": {"jobId": id}, "status": {"state": "PENDING"}}),
            _ => return Err(self.failure(&r, &what)),
        };
        let started = Instant::now();
        let mut wait = Duration::from_millis(250);
        while job["status"]["state"].as_str() != Some("DONE") {
            if started.elapsed() > self.job_deadline {
                return Err(BqError::Timeout(format!(
                    "{what}: still {} after {} s; it may yet finish: check it with `bq show -j --location={} {id}`",
                    job["status"]["state"].as_str().unwrap_or("running"),
                    self.job_deadline.as_secs(),
                    s.region
                )));
            }
            self.client.transport().sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
            job = self.get_job(&id).await?;
        }
        if let Some(e) = job["status"].get("errorResult").filter(|e| !e.is_null()) {
            let reason = e["reason"].as_str().unwrap_or("error").to_string();
            let message = e["message"].as_str().unwrap_or("").to_string();
            let table = job["configuration"]["load"]["destinationTable"]["tableId"].as_str();
            let advice = match table {
                Some(t) if is_shape_mismatch(&message) => shape_advice(&self.qualified(t)),
                _ if is_shape_mismatch(&message) => shape_advice(&self.qualified("TABLE")),
                _ => String::new(),
            };
            return Err(BqError::Refused { what, reason, message, advice });
        }
        Ok(job)
    }

    fn new_job_id(&self, kind: &str) -> String {
        let t = self.client.transport();
        format!("dame_{kind}_{:016x}{:08x}", t.random(), t.random() as u32)
    }
}

/// Job ids: letters, digits, `_` and `-`, up to 1,024 characters.
fn check_job_id(id: &str) -> Result<(), BqError> {
    if !id.is_empty() && id.len() <= 1024 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Ok(())
    } else {
        Err(BqError::InvalidInput(format!("job id '{id}' is not valid: letters, digits, '_' and '-' only")))
    }
}

/// Percent-encodes a page token (base64 text with `+`, `/`, `=`).
fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_client::TransportError;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// Replays scripted answers.
    struct Script(RefCell<VecDeque<(u16, Value)>>);

    impl Transport for Script {
        async fn send(&self, _: &Request, _: usize) -> Result<Response, TransportError> {
            let (status, body) = self.0.borrow_mut().pop_front().expect("script ran out");
            Ok(Response { status, headers: vec![], body: body.to_string().into_bytes() })
        }
        async fn sleep(&self, _: Duration) {}
        fn random(&self) -> u64 {
            7
        }
        fn now(&self) -> std::time::Duration {
            std::time::Duration::ZERO
        }
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn bq(answers: Vec<(u16, Value)>) -> BigQuery<Script> {
        let settings = Settings { project: "my-project".into(), dataset: "epc".into(), region: "europe-west2".into() };
        BigQuery::new(Client::new(Script(RefCell::new(answers.into()))), Auth::none(), settings, None).unwrap()
    }

    #[test]
    fn access_denied_names_the_roles() {
        let denied = json!({"error": {"code": 403, "message": "Access Denied: Dataset my-project:epc", "errors": [{"reason": "accessDenied"}]}});
        let err = run(bq(vec![(403, denied)]).drop_table("t")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, BqError::Unauthorized(_)), "{msg}");
        assert!(msg.contains("roles/bigquery.jobUser") && msg.contains("my-project.epc.t"), "{msg}");
    }

    #[test]
    fn a_partitioning_mismatch_in_a_job_gets_the_runbooks_advice() {
        let table = json!({"schema": {"fields": [{"name": "d", "type": "DATE"}]}});
        let failed = json!({
            "jobReference": {"jobId": "dame_load_x"},
            "configuration": {"load": {"destinationTable": {"tableId": "domestic_raw_json"}}},
            "status": {"state": "DONE", "errorResult": {"reason": "invalid", "message":
                "Incompatible table partitioning specification. Expects partitioning specification interval(type:month,field:lodgement_date), but input partitioning specification is none"}}
        });
        let err = run(bq(vec![(200, table), (200, failed)]).load("domestic_raw_json", &["gs://b/x.gz".into()], &[]))
            .unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.reason(), Some("invalid"));
        assert!(msg.contains("Incompatible table partitioning") && msg.contains("drop it once"), "{msg}");
        assert!(msg.contains("bq rm -t my-project:epc.domestic_raw_json"), "{msg}");
    }

    #[test]
    fn a_job_still_running_at_the_deadline_times_out_with_a_hint() {
        let running = json!({"jobReference": {"jobId": "j"}, "status": {"state": "RUNNING"}});
        let b = bq(vec![(200, running.clone()), (200, running)]).with_job_deadline(Duration::ZERO);
        let err = run(b.execute("SELECT 1", &[])).unwrap_err();
        assert!(matches!(&err, BqError::Timeout(m) if m.contains("bq show -j")), "{err}");
    }
}
