//! The pipeline's JSON log lines, turned into what a person watches: a
//! progress bar while it works, a line per month, warnings and errors as
//! they come, and a summary table at the end.
//!
//! The component writes one JSON object per step to stderr (Spin keeps the
//! same lines in its logs); the host captures that stream, so progress and
//! summary come from exactly what production logs say.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use wasmtime_wasi::cli::{IsTerminal as WasiIsTerminal, StdoutStream};

/// A stderr for a component that hands each complete line to a channel.
#[derive(Clone)]
pub struct LineSink {
    tx: UnboundedSender<String>,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl LineSink {
    pub fn new() -> (Self, UnboundedReceiver<String>) {
        let (tx, rx) = unbounded_channel();
        (Self { tx, partial: Arc::default() }, rx)
    }
}

impl WasiIsTerminal for LineSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LineSink {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for LineSink {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let mut partial = self.partial.lock().expect("not poisoned");
        partial.extend_from_slice(buf);
        while let Some(i) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=i).collect();
            let _ = self.tx.send(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// One row of the summary: a step of one dataset and month.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub dataset: String,
    pub month: String,
    pub step: String,
    pub outcome: String,
    pub rows: u64,
    pub pages: u64,
    pub bytes: u64,
    pub requests: u64,
    pub retries: u64,
    pub seconds: f64,
    pub reason: Option<String>,
}

/// What the run said, gathered for the summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub rows: Vec<Row>,
    pub warnings: usize,
    pub errors: Vec<String>,
}

impl Summary {
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| r.outcome == "failed").count()
    }
}

/// How log lines are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Progress bar and readable lines.
    Human,
    /// The component's JSON lines as they are (for log collectors).
    Json,
}

/// Reads log lines until the channel closes, showing progress, and returns
/// what they said.
pub async fn follow(mut rx: UnboundedReceiver<String>, display: Display) -> Summary {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = if display == Display::Human && tty { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} months  {msg}")
            .expect("valid template"),
    );
    let mut summary = Summary::default();
    let mut rows_in_month = 0u64;
    let mut download_total = 0u64;
    while let Some(line) = rx.recv().await {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            bar.suspend(|| eprintln!("{line}"));
            continue;
        };
        if display == Display::Json {
            bar.suspend(|| eprintln!("{line}"));
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        let level = s("level");
        let where_ = format!("{} {}", s("dataset"), s("month"));
        match s("event").as_str() {
            "plan" => {
                let kinds = v.get("kinds").and_then(Value::as_array).map(Vec::len).unwrap_or(1) as u64;
                bar.set_length(kinds * n("months"));
                bar.set_message(format!("{} {} to {}", s("source"), s("start"), s("end")));
            }
            "month-start" => {
                rows_in_month = n("rows_so_far");
                let resume = n("resume_part");
                let note = if resume > 0 { format!(" (resuming after part {resume})") } else { String::new() };
                bar.set_message(format!("{where_}{note}"));
            }
            // A backfill (`dame backfill`): the bar follows the archive's
            // bytes as they stream, the message its rows.
            "download" => {
                download_total += n("total_bytes");
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})  {msg}",
                    )
                    .expect("valid template"),
                );
                bar.set_length(download_total);
                bar.set_position(n("bytes_before"));
                bar.set_message(format!("{} {}", s("dataset"), s("file")));
            }
            "progress" => {
                bar.set_position(n("bytes"));
                bar.set_message(format!("{} {}: {} rows", s("dataset"), s("entry"), n("rows")));
            }
            // A backfill's pages (they name their source; the pipeline's do not).
            "page" if v.get("source").is_some() => {
                bar.set_message(format!("{where_}: part {} landed", n("part")));
            }
            "page" => {
                rows_in_month += n("rows");
                bar.set_message(format!("{where_}: {rows_in_month} rows, part {}", n("part")));
            }
            "month" => {
                let row = Row {
                    dataset: s("dataset"),
                    month: s("month"),
                    step: s("step"),
                    outcome: s("outcome"),
                    rows: n("rows"),
                    pages: n("pages"),
                    bytes: n("bytes"),
                    requests: n("requests"),
                    retries: n("retries"),
                    seconds: v.get("seconds").and_then(Value::as_f64).unwrap_or(0.0),
                    reason: v.get("reason").and_then(Value::as_str).map(str::to_string),
                };
                if row.step == "fetch" {
                    bar.inc(1);
                }
                if display == Display::Human {
                    let text = match &row.reason {
                        Some(r) => format!("✗ {:<24} {:<7} {} failed: {r}", where_, row.month, row.step),
                        None => format!(
                            "✓ {:<24} {:<8} {:>8} rows {:>4} parts {:>6} requests {:>7.1}s",
                            where_, row.outcome, row.rows, row.pages, row.requests, row.seconds
                        ),
                    };
                    bar.suspend(|| eprintln!("{text}"));
                }
                summary.rows.push(row);
            }
            "view" => {
                let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
                if !ok {
                    summary.errors.push(format!("{}: {}", s("file"), s("message")));
                }
                if display == Display::Human {
                    let mark = if ok { '✓' } else { '✗' };
                    bar.suspend(|| eprintln!("{mark} views {:<48} {}", s("file"), s("message")));
                }
            }
            _ if level == "WARN" => {
                summary.warnings += 1;
                if display == Display::Human {
                    bar.suspend(|| eprintln!("warning: {where_}: {}", s("message")));
                }
            }
            _ if level == "ERROR" => {
                let reason = s("reason");
                summary.errors.push(reason.clone());
                if display == Display::Human {
                    bar.suspend(|| eprintln!("error: {} {}: {reason}", s("step"), where_.trim()));
                }
            }
            _ => {}
        }
    }
    bar.finish_and_clear();
    summary
}

/// Bytes as people read them (KiB, MiB, GiB), for tables and progress.
pub fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The table printed at the end of a run.
pub fn table(summary: &Summary) -> String {
    let mut out = String::new();
    let header = ["dataset", "month", "step", "outcome", "rows", "pages", "bytes", "requests", "retries", "seconds"];
    let mut lines: Vec<[String; 10]> = vec![header.map(str::to_string)];
    let mut total = Row::default();
    for r in &summary.rows {
        lines.push([
            r.dataset.clone(),
            r.month.clone(),
            r.step.clone(),
            r.outcome.clone(),
            r.rows.to_string(),
            r.pages.to_string(),
            human_bytes(r.bytes),
            r.requests.to_string(),
            r.retries.to_string(),
            format!("{:.1}", r.seconds),
        ]);
        total.rows += r.rows;
        total.pages += r.pages;
        total.bytes += r.bytes;
        total.requests += r.requests;
        total.retries += r.retries;
        total.seconds += r.seconds;
    }
    lines.push([
        "total".into(),
        String::new(),
        String::new(),
        format!("{} failed", summary.failed()),
        total.rows.to_string(),
        total.pages.to_string(),
        human_bytes(total.bytes),
        total.requests.to_string(),
        total.retries.to_string(),
        format!("{:.1}", total.seconds),
    ]);
    let widths: Vec<usize> = (0..10).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    for (li, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, c)| if i >= 4 { format!("{c:>w$}", w = widths[i]) } else { format!("{c:<w$}", w = widths[i]) })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if li == 0 || li == lines.len() - 2 {
            out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
            out.push('\n');
        }
    }
    if summary.warnings > 0 {
        out.push_str(&format!("{} warning(s) above\n", summary.warnings));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_become_a_summary() {
        let (sink, rx) = LineSink::new();
        let task = tokio::spawn(follow(rx, Display::Json));
        let mut w = sink.clone();
        use tokio::io::AsyncWriteExt;
        w.write_all(b"{\"level\":\"INFO\",\"event\":\"month\",\"step\":\"fetch\",\"dataset\":\"domestic\",\"month\":\"2021-01\",")
            .await
            .unwrap();
        w.write_all(b"\"outcome\":\"landed\",\"rows\":152,\"pages\":1,\"seconds\":0.5}\nnot json\n").await.unwrap();
        w.write_all(b"{\"level\":\"ERROR\",\"event\":\"month\",\"step\":\"fetch\",\"outcome\":\"failed\",\"reason\":\"x\"}\n")
            .await
            .unwrap();
        drop((w, sink));
        let s = task.await.unwrap();
        assert_eq!(s.rows.len(), 2);
        assert_eq!(s.rows[0].rows, 152);
        assert_eq!(s.failed(), 1);
        let t = table(&s);
        assert!(t.contains("2021-01") && t.contains("1 failed"), "{t}");
    }
}
