//! What the page shows of a lab: its view (state tables, checkpoints, outputs, log) and
//! one stored checkpoint, drawn by the desk from what the generic half read.

use serde_json::{json, Value};
use simplestream::coordinator::id_from_name;
use simplestream::envelope;
use simplestream::plan::Stage;
use simplestream::{Clock, Codec};

use super::desk::{Desk, LogLine, LOG_LINES, SHOWN_OUTPUTS};
use super::{PlayStore, SinkLine, KEEP};
use crate::diagram::diagram;
use crate::gallery::dsl_region;
use crate::tables::table;
use crate::text::{hms, size_label, when};

/// What the live pipeline and the reference run show, read by the generic half.
pub(crate) struct Snapshot {
    /// The live pipeline's clock, offset and would-be checkpoint; `None` after a crash.
    pub live: Option<(Clock, u64, Option<Vec<u8>>)>,
    /// Whether state and output match the reference run, its offset and output length.
    pub reference: Option<(bool, bool, u64, u64)>,
    /// Each stateful stage's state.
    pub stages: Vec<(&'static Stage, Value)>,
    /// The main stage's state as compact JSON.
    pub state_json: String,
}

/// Re-encodes a binary checkpoint as a JSON one (the pipeline's type decodes it).
pub(crate) type ToJson<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + 'a;

fn pretty(json: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
}

impl<S: PlayStore> Desk<S> {
    /// Each stateful stage's state as a table laid out by the plan, and as JSON.
    fn stage_views(stages: &[(&'static Stage, Value)]) -> Vec<Value> {
        stages
            .iter()
            .map(|(stage, json)| {
                let t = table(stage, json);
                json!({
                    "name": stage.name,
                    "what": t.what,
                    "stage_watermark": t.watermark.map(when),
                    "header": t.header,
                    "rows": t.rows,
                    "label_cols": t.label_cols,
                    "json": serde_json::to_string_pretty(json).unwrap_or_default(),
                })
            })
            .collect()
    }

    fn checkpoint_list(&self) -> Vec<Value> {
        let listed = match self.coord.inspect() {
            Ok(l) => l,
            Err(e) => {
                return vec![
                    json!({"name": format!("cannot list checkpoints: {e}"), "valid": false}),
                ]
            }
        };
        listed
            .into_iter()
            .rev()
            .map(|l| {
                let codec = l.codec.unwrap_or(if l.name.ends_with(".bin") {
                    Codec::Binary
                } else {
                    Codec::Json
                });
                let (time, offset, error) = match &l.header {
                    Ok(h) => (
                        hms(h.timestamp),
                        h.positions.get("source.offset").copied(),
                        None,
                    ),
                    Err(e) => {
                        // The name holds the time: checkpoint_20241201_140000_123-000042.json
                        let t = l
                            .name
                            .get(20..26)
                            .map(|s| format!("{}:{}:{}", &s[0..2], &s[2..4], &s[4..6]))
                            .unwrap_or_default();
                        (t, None, Some(e.clone()))
                    }
                };
                json!({
                    "name": l.name,
                    "id": id_from_name(&l.name),
                    "time": time,
                    "size": l.size,
                    "size_label": size_label(l.size),
                    "codec": codec.to_string(),
                    "stored_as": self.coord.store().stored_as(codec),
                    "valid": error.is_none(),
                    "error": error,
                    "is_latest": l.is_latest,
                    "offset": offset,
                })
            })
            .collect()
    }

    fn outputs_view(&self, late: bool) -> Value {
        let all: Vec<&SinkLine> = self
            .sink
            .rows
            .iter()
            .filter(|l| (l.sink == "late") == late)
            .collect();
        let shown: Vec<String> = all
            .iter()
            .rev()
            .take(SHOWN_OUTPUTS)
            .map(|l| l.record.to_string())
            .collect();
        json!({"total": all.len(), "last": shown, "compacted": self.sink.first})
    }

    /// Everything the page shows.
    pub fn view(&self, snap: Snapshot) -> Value {
        let reference = match snap.reference {
            Some((state, output, offset, outputs)) => json!({
                "state": if state { "match" } else { "mismatch" },
                "output": if output { "match" } else { "mismatch" },
                "offset": offset,
                "outputs": outputs,
            }),
            None => json!({"state": "n/a", "output": "n/a", "offset": null}),
        };
        let (clock, offset, preview) = match snap.live {
            Some((c, offset, preview)) => (
                json!({
                    "max_event_time": when(c.max_event_time),
                    "watermark": when(c.watermark),
                    "watermark_ms": (c.watermark != i64::MIN).then_some(c.watermark),
                }),
                Some(offset),
                preview.as_deref().and_then(pretty),
            ),
            None => (Value::Null, None, None),
        };
        let log: Vec<&LogLine> = self.log.iter().rev().take(LOG_LINES).collect();
        let a = &self.about;
        json!({
            "instance": a.instance,
            "name": a.name,
            "title": a.title,
            "blurb": a.blurb,
            "source_path": a.source_path,
            "dsl": dsl_region(a.source_file),
            "diagram": diagram(a.plan),
            "stages_list": a.stages,
            "sinks": a.sinks,
            "crashed": offset.is_none(),
            "offset": offset,
            "read_upto": self.read_upto,
            "clock": clock,
            "state_json": snap.state_json,
            "stages": Self::stage_views(&snap.stages),
            "checkpoint_preview": preview,
            "outputs": self.outputs_view(false),
            "late": self.outputs_view(true),
            "dead_letters": self.dead_letters.iter().rev().take(SHOWN_OUTPUTS).collect::<Vec<_>>(),
            "checkpoints": self.checkpoint_list(),
            "storage": {
                "location": self.coord.store().location(),
                "usage": self.coord.store().usage(),
                "keep": KEEP,
            },
            "auto": {"on": self.auto_every.is_some(), "every": self.auto_every, "since": self.coord.events_since()},
            "codec": self.codec.to_string(),
            "next_id": self.coord.next_id(),
            "reference": reference,
            "status": self.status,
            "form_error": self.form_error,
            "log": log,
            "seed": self.topic.seed,
            "written_events": self.topic.written.len(),
        })
    }

    /// One stored checkpoint, as JSON; `to_json` re-encodes a binary one as JSON.
    pub fn checkpoint_view(&self, name: &str, to_json: &ToJson<'_>) -> Value {
        let store = self.coord.store();
        let bytes = match store.get(name) {
            Ok(b) => b,
            Err(e) => return json!({"name": name, "error": e.to_string()}),
        };
        let raw = |b: &[u8]| -> String {
            let shown = &b[..b.len().min(4000)];
            if b.first() == Some(&b'{') {
                String::from_utf8_lossy(shown).into_owned()
            } else {
                format!("(binary) {}", crate::b64::encode(shown))
            }
        };
        match envelope::verify(&bytes) {
            Err(e) => json!({"name": name, "error": e.to_string(), "raw": raw(&bytes)}),
            Ok(v) if v.codec == Codec::Json => {
                json!({"name": name, "json": pretty(&bytes), "note": format!("JSON checkpoint, {} bytes, stored as text.", bytes.len())})
            }
            Ok(_) => match to_json(&bytes) {
                Ok(json) => json!({"name": name, "json": pretty(&json), "note": format!(
                    "Binary checkpoint (postcard), {} bytes, stored as {}; shown decoded, as the JSON checkpoint of the same state.",
                    bytes.len(), store.stored_as(Codec::Binary))}),
                Err(e) => json!({"name": name, "error": e, "raw": raw(&bytes)}),
            },
        }
    }
}
