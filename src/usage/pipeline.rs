//! Reading usage sources into the store on three threads: the reader parses lines
//! ([`reader::read`]); this thread screens the events (clock skew, past the rollup retention)
//! and [`prepare`]s each batch (dedup hashes, routes, networks, the batch's rollups); a writer
//! appends the prepared batches in order, each in its own transaction with its source's cursor,
//! and prunes raw events past the retention as the newest event moves (a day at a time, so a
//! long backfill never holds more than the retention on disk). Batches are appended one after
//! the other in reading order, so a file's cursor never runs ahead of its stored events; a
//! failed write stops the reading and is the error reported.

use super::ingest::{inputs, open_events, Input, MAX_PROBLEMS};
use super::job::{secs, IngestOutcome, SourceSummary, UsageJobError};
use super::reader::{self, Batch, ReadError};
use super::UsageError;
use crate::airwallex::Catalog;
use crate::config::Config;
use crate::store::usage::{prepare, PreparedBatch};
use crate::store::{Pruned, SourceCursor, Store, StoreError, UsageEvent};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::path::PathBuf;

/// What reading into the store left for the rest of the ingest.
pub(super) struct Stored {
    /// The newest stored event (retention counts back from it).
    pub newest: Option<DateTime<Utc>>,
    pub pruned: Pruned,
}

/// The writer's side: the newest event and when raw events were last pruned.
struct Writer<'a> {
    store: &'a dyn Store,
    catalog: &'a Catalog,
    config: &'a Config,
    now: DateTime<Utc>,
    newest: Option<DateTime<Utc>>,
    pruned_at: Option<DateTime<Utc>>,
    pruned: Pruned,
}

/// What the writer stored of one source.
#[derive(Default)]
struct Written {
    new: u64,
    duplicates: u64,
}

impl Writer<'_> {
    /// Appends one batch, then prunes when the newest event moved a day since the last prune.
    fn write(
        &mut self,
        batch: &PreparedBatch<'_>,
        cursor: Option<&SourceCursor>,
        w: &mut Written,
    ) -> Result<(), StoreError> {
        let u = &self.config.usage;
        let a = self.store.append_prepared(batch, self.catalog, cursor)?;
        w.new += a.new;
        w.duplicates += a.duplicates;
        if let Some(l) = a.last {
            let l = Utc.timestamp_opt(l, 0).single().unwrap_or(self.now);
            self.newest = Some(self.newest.map_or(l, |n| n.max(l)));
        }
        if let Some(n) = self.newest {
            if self.pruned_at.is_none_or(|p| n - p >= Duration::days(1)) {
                let p = self.store.usage_prune(
                    n - Duration::seconds(secs(u.raw_retention)),
                    n - Duration::seconds(secs(u.rollup_retention)),
                )?;
                self.pruned.raw_events += p.raw_events;
                self.pruned.hours += p.hours;
                self.pruned.values += p.values;
                self.pruned_at = Some(n);
            }
        }
        Ok(())
    }
}

/// The events of `events` to store: not stamped past `max_ts` (clock skew), not older than the
/// rollup retention back from `newest` (which moves with them); method upper case.
fn screen(
    events: Vec<UsageEvent>,
    config: &Config,
    max_ts: DateTime<Utc>,
    newest: &mut Option<DateTime<Utc>>,
    sum: &mut SourceSummary,
    problems: &mut Vec<String>,
) -> Vec<UsageEvent> {
    let u = &config.usage;
    let shown = sum.source.clone();
    let mut keep: Vec<UsageEvent> = Vec::with_capacity(events.len());
    for mut e in events {
        if e.ts > max_ts {
            sum.future += 1;
            if problems.len() < MAX_PROBLEMS {
                problems.push(format!(
                    "{shown}: an event of {} stamped {} is more than {}s in the future \
                     (clock skew?): rejected",
                    e.key,
                    e.ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    secs(u.max_future)
                ));
            }
            continue;
        }
        if let Some(n) = *newest {
            if e.ts < n - Duration::seconds(secs(u.rollup_retention)) {
                sum.too_old += 1;
                continue;
            }
        }
        e.method.make_ascii_uppercase();
        keep.push(e);
    }
    // the newest kept event: what the store's newest becomes once this batch is written (an
    // event the store already held is no newer than its newest)
    if let Some(l) = keep.iter().map(|e| e.ts).max() {
        *newest = Some(newest.map_or(l, |n| n.max(l)));
    }
    sum.events += keep.len() as u64;
    keep
}

/// Reads every source of `paths` into `store` (see the module's text); per-source summaries
/// and problems go to `out`.
pub(super) fn read_and_store(
    paths: &[PathBuf],
    config: &Config,
    now: DateTime<Utc>,
    store: &dyn Store,
    out: &mut IngestOutcome,
) -> Result<Stored, UsageJobError> {
    let catalog = Catalog::builtin();
    let max_ts = now + Duration::seconds(secs(config.usage.max_future));
    let newest = store.usage_newest()?;
    let mut writer = Writer {
        store,
        catalog: &catalog,
        config,
        now,
        newest,
        // raw events past retention are pruned as the newest event moves
        pruned_at: newest,
        pruned: Pruned::default(),
    };
    // the newest event as the screening sees it (the writer's, one batch ahead)
    let mut screened_newest = newest;
    for input in inputs(paths)? {
        let name = match &input {
            Input::Stdin => "<stdin>".to_string(),
            Input::File(p) => std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
        };
        let shown = input.name();
        let mut sum = SourceSummary {
            source: shown.clone(),
            ..SourceSummary::default()
        };
        let (file, plan) = match &input {
            Input::Stdin => (None, None),
            Input::File(p) => {
                let read_err = |source| UsageError::Read {
                    path: p.clone(),
                    source,
                };
                let mut f = open_events(p).map_err(read_err)?;
                let by_path = store.usage_cursor(&name)?;
                let plan = reader::plan(
                    &mut f,
                    by_path.as_ref(),
                    |dev, ino| store.usage_cursor_by_file(dev, ino).ok().flatten(),
                    |h, n| store.usage_cursor_by_head(h, n).ok().flatten(),
                )
                .map_err(read_err)?;
                (Some(f), Some(plan))
            }
        };
        sum.note = plan.as_ref().and_then(|p| p.note.clone());
        let (read, written) = std::thread::scope(|sc| {
            let (tx, rx) =
                crossbeam_channel::bounded::<(PreparedBatch<'static>, Option<SourceCursor>)>(1);
            let writer = &mut writer;
            let writing = sc.spawn(move || {
                let mut w = Written::default();
                for (batch, cursor) in rx {
                    writer.write(&batch, cursor.as_ref(), &mut w)?;
                }
                Ok::<Written, StoreError>(w)
            });
            let read = reader::read(&input, file, plan.as_ref(), &name, |b: Batch| {
                let Batch {
                    events,
                    rejected,
                    rejected_count,
                    lines,
                    cursor,
                } = b;
                sum.lines += lines;
                sum.rejected += rejected_count;
                for m in rejected {
                    if out.problems.len() < MAX_PROBLEMS {
                        // messages name the source as the user gave it
                        out.problems.push(m.replacen(&name, &shown, 1));
                    }
                }
                let keep = screen(
                    events,
                    config,
                    max_ts,
                    &mut screened_newest,
                    &mut sum,
                    &mut out.problems,
                );
                // a closed channel: the writer failed, and says why below
                tx.send((prepare(keep, &catalog), cursor)).map_err(|_| ())
            });
            drop(tx);
            let written = writing.join().expect("the usage writer panicked");
            (read, written)
        });
        let written = written?;
        match read {
            Ok(()) | Err(ReadError::Sink(())) => {}
            Err(ReadError::Io(source)) => {
                return Err(UsageError::Read {
                    path: shown.into(),
                    source,
                }
                .into())
            }
        }
        sum.new = written.new;
        sum.duplicates = written.duplicates;
        let s = &mut out.summary;
        s.lines += sum.lines;
        s.events += sum.events;
        s.new += sum.new;
        s.duplicates += sum.duplicates;
        s.rejected += sum.rejected;
        s.future += sum.future;
        s.too_old += sum.too_old;
        s.sources.push(sum);
    }
    Ok(Stored {
        newest: writer.newest,
        pruned: writer.pruned,
    })
}
