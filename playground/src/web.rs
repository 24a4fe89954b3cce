//! The API the page (`www/app.js`) calls: one [`Playground`] holding every gallery
//! pipeline, each over its own [`LocalStorageStore`]. Actions change state and return
//! nothing; the page then calls [`Playground::view`] and draws the JSON it returns.
//! Wall-clock time comes from `Date.now()` (`SystemTime::now()` panics on wasm32).

use wasm_bindgen::prelude::*;

use crate::lab::{gallery_labs, LabApi};
use crate::local_storage::LocalStorageStore;
use simplestream::Codec;

fn now() -> i64 {
    js_sys::Date::now() as i64
}

/// Sends Rust panics to the browser console (they would otherwise show as `unreachable`).
fn panic_hook(info: &std::panic::PanicHookInfo<'_>) {
    web_sys::console::error_1(&JsValue::from_str(&format!(
        "simplestream playground: {info}"
    )));
}

/// Every gallery pipeline, one selected.
#[wasm_bindgen]
pub struct Playground {
    labs: Vec<Box<dyn LabApi>>,
    current: usize,
}

#[wasm_bindgen]
impl Playground {
    /// Opens localStorage and starts every pipeline: each restores its latest checkpoint
    /// if there is one (a reload is a real crash), else starts empty at offset 0.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<Playground, JsError> {
        std::panic::set_hook(Box::new(panic_hook));
        // Fail early, with the reason, if localStorage is unusable.
        LocalStorageStore::new("orders").map_err(|e| JsError::new(&e.to_string()))?;
        let mut labs = gallery_labs(|instance| {
            LocalStorageStore::new(instance).expect("localStorage was available a moment ago")
        });
        let t = now();
        for lab in &mut labs {
            lab.start(t);
        }
        Ok(Playground { labs, current: 0 })
    }

    /// The menu: `{"pipelines":[{"instance","title"}]}`.
    pub fn menu(&self) -> String {
        let pipelines: Vec<_> = self
            .labs
            .iter()
            .map(|l| serde_json::json!({"instance": l.instance(), "title": l.title()}))
            .collect();
        serde_json::json!({ "pipelines": pipelines }).to_string()
    }

    /// Selects a pipeline by instance name; false if there is none.
    pub fn select(&mut self, instance: &str) -> bool {
        match self.labs.iter().position(|l| l.instance() == instance) {
            Some(i) => {
                self.current = i;
                true
            }
            None => false,
        }
    }

    /// The selected pipeline's instance name.
    pub fn selected(&self) -> String {
        self.lab().instance().to_string()
    }

    fn lab(&self) -> &dyn LabApi {
        self.labs[self.current].as_ref()
    }

    fn lab_mut(&mut self) -> &mut dyn LabApi {
        self.labs[self.current].as_mut()
    }

    /// Reads the next `n` events.
    pub fn generate(&mut self, n: f64) {
        let n = if n.is_finite() && n > 0.0 {
            n as u64
        } else {
            0
        };
        self.lab_mut().generate(n, now());
    }

    /// Takes a checkpoint now.
    pub fn checkpoint(&mut self) {
        self.lab_mut().checkpoint(now());
    }

    /// Drops the in-memory pipeline.
    pub fn crash(&mut self) {
        self.lab_mut().crash(now());
    }

    /// Restores the latest valid checkpoint.
    pub fn restore(&mut self) {
        self.lab_mut().restore(now());
    }

    /// Garbles the latest checkpoint.
    pub fn corrupt_latest(&mut self) {
        self.lab_mut().corrupt_latest(now());
    }

    /// Deletes the selected pipeline's checkpoints.
    pub fn clear_storage(&mut self) {
        self.lab_mut().clear_storage(now());
    }

    /// Sends an event from the form's fields, as typed.
    pub fn send_manual(&mut self, customer: &str, amount: &str, ts: &str) {
        self.lab_mut().send_manual(customer, amount, ts, now());
    }

    /// Sends an event whose window has closed.
    pub fn send_late(&mut self) {
        self.lab_mut().send_late(now());
    }

    /// Sends a malformed JSON line.
    pub fn send_malformed(&mut self) {
        self.lab_mut().send_malformed(now());
    }

    /// Automatic checkpoints every `every` events (`on`), or off.
    pub fn set_auto(&mut self, on: bool, every: f64) {
        let every = (on && every.is_finite() && every >= 1.0).then_some(every as u64);
        self.lab_mut().set_auto(every, now());
    }

    /// `json` or `binary` for new checkpoints.
    pub fn set_codec(&mut self, codec: &str) {
        let codec = if codec == "binary" {
            Codec::Binary
        } else {
            Codec::Json
        };
        self.lab_mut().set_codec(codec, now());
    }

    /// Runs `text` as the SQL editor's query (from offset 0); false if the selected
    /// pipeline is compiled. A query with an error changes nothing: `view().sql.error`
    /// says where it is.
    pub fn set_query(&mut self, text: &str) -> bool {
        self.lab_mut().set_query(text, now())
    }

    /// Deploys version `version` of the upgrade lab's pipeline (it restores the latest
    /// checkpoint, migrating or refusing it); false if the selected pipeline has no
    /// versions.
    pub fn deploy(&mut self, version: u8) -> bool {
        self.lab_mut().deploy(version, now())
    }

    /// Everything the page shows, as JSON.
    pub fn view(&mut self) -> String {
        self.lab_mut().view(now()).to_string()
    }

    /// One stored checkpoint as JSON.
    pub fn checkpoint_json(&self, name: &str) -> String {
        self.lab().checkpoint_view(name).to_string()
    }
}
