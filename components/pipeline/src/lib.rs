//! Component `pipeline`: the orchestration.
//!
//! It walks kinds × months × pages through the steps it imports — fetch a
//! page, land it, and when configured load the month, publish the views and
//! fetch recommendations — resuming each month from its last checkpoint.
//! It holds no credentials and makes no requests itself; it decides only
//! what runs next, and reports each step as one JSON log line.

wit_bindgen::generate!({
    world: "dame:pipeline/pipeline",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
    generate_all,
});

mod cron;
mod log;
mod run;

use epc_bindings::types;
use exports::dame::epc::pipeline::{Guest as PipelineGuest, Options, Report};
use fermyon::spin_cron::cron_types::Error as CronError;

struct Pipeline;

impl PipelineGuest for Pipeline {
    fn run(options: Options) -> Result<Report, types::Error> {
        let today = match &options.today {
            Some(d) => d.parse().map_err(|_| types::Error::InvalidInput(format!("today '{d}' is not a date (YYYY-MM-DD)")))?,
            None => run::london_today(),
        };
        run::run(&options, today)
    }
}

impl Guest for Pipeline {
    fn handle_cron_event(metadata: Metadata) -> Result<(), CronError> {
        cron::handle(metadata.timestamp).map_err(|e| CronError::Other(epc_bindings::Message::message(&e)))
    }
}

export!(Pipeline);
