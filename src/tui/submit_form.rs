//! The submit form: the fields of `neuronmap submit` (model, dataset path, output, hooks,
//! analysis, batch, dtype, priority, device), edited in place, with the estimator's verdict on
//! every device recomputed as the fields change. Opened from the job queue (`n`) or, with the
//! model filled in, from anywhere that knows a model.

use std::path::PathBuf;

use crate::engine::request::{Analysis, ExtractRequest};
use crate::estimate::device::devices_from_frame;
use crate::estimate::verdict::Verdict;
use crate::jobs::job::{DeviceRequest, Submission};
use crate::telemetry::model::Frame;
use crate::tui::format::bytes_short;

/// The fields, in order: label and default value.
pub const FIELDS: [(&str, &str); 9] = [
    ("model", ""),
    ("dataset", ""),
    ("output", ""),
    ("hooks", "blocks.*.hook_resid_post"),
    ("analysis", "activations"),
    ("batch", "8"),
    ("dtype", ""),
    ("priority", "0"),
    ("device", "any"),
];

/// What a key did to the form.
#[derive(Debug, Clone, PartialEq)]
pub enum FormAction {
    /// Nothing to do outside the form.
    None,
    /// Submit this job.
    Submit(Box<Submission>),
    /// Close the form without submitting.
    Close,
}

/// The form's state.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitForm {
    /// Field values, in the order of [`FIELDS`].
    pub values: Vec<String>,
    /// The field being edited.
    pub focus: usize,
    /// One line per device: the verdict for the job as it stands.
    pub verdict: Vec<String>,
    /// Why the fields do not make a job yet.
    pub problem: Option<String>,
}

impl SubmitForm {
    /// A form with the defaults and `model` filled in.
    pub fn new(model: &str) -> Self {
        let mut values: Vec<String> = FIELDS.iter().map(|(_, v)| v.to_string()).collect();
        values[0] = model.to_string();
        Self {
            values,
            focus: if model.is_empty() { 0 } else { 1 },
            verdict: Vec::new(),
            problem: None,
        }
    }

    /// A form for one cell of the compatibility matrix: model, analysis and hooks filled in.
    pub fn for_cell(model: &str, analysis: &str, hooks: &str) -> Self {
        let mut form = Self::new(model);
        for (i, (name, _)) in FIELDS.iter().enumerate() {
            match *name {
                "analysis" => form.values[i] = analysis.to_string(),
                "hooks" => form.values[i] = hooks.to_string(),
                _ => {}
            }
        }
        form
    }

    /// Edits the form with one key; `frame` gives the devices the verdict is computed on.
    pub fn on_key(&mut self, code: crossterm::event::KeyCode, frame: Option<&Frame>) -> FormAction {
        use crossterm::event::KeyCode;
        match code {
            KeyCode::Esc => return FormAction::Close,
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1) % FIELDS.len(),
            KeyCode::BackTab | KeyCode::Up => {
                self.focus = (self.focus + FIELDS.len() - 1) % FIELDS.len()
            }
            KeyCode::Enter => match self.submission() {
                Ok(s) => return FormAction::Submit(Box::new(s)),
                Err(problem) => self.problem = Some(problem),
            },
            KeyCode::Backspace => {
                self.values[self.focus].pop();
                self.refresh(frame);
            }
            KeyCode::Char(c) => {
                self.values[self.focus].push(c);
                self.refresh(frame);
            }
            _ => {}
        }
        FormAction::None
    }

    /// The request the fields describe, or what is missing or wrong.
    pub fn request(&self) -> Result<ExtractRequest, String> {
        let v = &self.values;
        let model = v[0].trim();
        if model.is_empty() {
            return Err("give a model".into());
        }
        let input = PathBuf::from(v[1].trim());
        if !input.is_file() {
            return Err(format!("dataset {} is not a file", input.display()));
        }
        if v[2].trim().is_empty() {
            return Err("give an output folder".into());
        }
        let analysis: Analysis =
            serde_json::from_value(serde_json::Value::String(v[4].trim().into()))
                .map_err(|_| "analysis must be activations, stats or attention".to_string())?;
        let batch: usize = v[5]
            .trim()
            .parse()
            .ok()
            .filter(|b| *b > 0)
            .ok_or("batch must be a positive number")?;
        let dtype = Some(v[6].trim().to_string()).filter(|d| !d.is_empty());
        if let Some(d) = &dtype {
            if !["f32", "f16", "bf16"].contains(&d.as_str()) {
                return Err("dtype must be f32, f16, bf16 or empty".into());
            }
        }
        let device: DeviceRequest = v[8].trim().parse()?;
        let absolute = |p: &str| std::path::absolute(p).map_err(|e| e.to_string());
        let model = if model.starts_with(['/', '.']) || std::path::Path::new(model).exists() {
            absolute(model)?.display().to_string()
        } else {
            model.to_string()
        };
        Ok(ExtractRequest {
            model,
            input: absolute(v[1].trim())?,
            hooks: v[3]
                .split(',')
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
            out: absolute(v[2].trim())?,
            analysis,
            batch,
            max_len: None,
            dtype,
            device: device.to_string(),
            resume: false,
        })
    }

    /// The whole submission, checked.
    pub fn submission(&self) -> Result<Submission, String> {
        let request = self.request()?;
        let priority: i64 = self.values[7]
            .trim()
            .parse()
            .map_err(|_| "priority must be a whole number".to_string())?;
        let device = self.values[8].trim().parse()?;
        Ok(Submission {
            request,
            priority,
            after: None,
            device,
            held: false,
        })
    }

    /// Recomputes the verdict for every device in `frame` (or notes what is missing).
    pub fn refresh(&mut self, frame: Option<&Frame>) {
        self.problem = None;
        self.verdict.clear();
        let request = match self.request() {
            Ok(r) => r,
            Err(problem) => {
                self.problem = Some(problem);
                return;
            }
        };
        let Some(frame) = frame else {
            self.problem = Some("waiting for the first telemetry frame".into());
            return;
        };
        match crate::estimate::judge_request(
            &request,
            &devices_from_frame(frame, crate::estimate::device::Speed::NOT_MEASURED),
        ) {
            Ok(verdicts) => {
                for v in verdicts {
                    let mut line = format!(
                        "{}: {} (needs {}, {} free)",
                        v.device.label(),
                        v.verdict.name().replace('_', " "),
                        bytes_short(v.estimate.peak_bytes),
                        bytes_short(v.free_bytes)
                    );
                    if v.verdict == Verdict::FitsWithFallback {
                        if let Some(f) = &v.fallback {
                            line.push_str(&format!("; {}", f.description));
                        }
                    }
                    if let Some(reason) = &v.reason {
                        line.push_str(&format!("; {reason}"));
                    }
                    self.verdict.push(line);
                }
            }
            Err(e) => self.problem = Some(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyCode;

    fn type_into(form: &mut SubmitForm, text: &str, frame: Option<&Frame>) {
        for c in text.chars() {
            form.on_key(KeyCode::Char(c), frame);
        }
    }

    #[test]
    fn the_verdict_follows_the_fields_and_enter_submits_a_checked_job() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("p.txt");
        std::fs::write(&input, "hello world\n").unwrap();
        let frame = crate::telemetry::synthetic::frames(1, 1, 1000, 0).remove(0);
        let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2");
        let mut form = SubmitForm::new(model.to_str().unwrap());
        assert_eq!(form.focus, 1, "the model is filled in, the dataset is next");
        type_into(&mut form, input.to_str().unwrap(), Some(&frame));
        assert_eq!(form.problem.as_deref(), Some("give an output folder"));
        form.on_key(KeyCode::Tab, Some(&frame));
        type_into(
            &mut form,
            dir.path().join("out").to_str().unwrap(),
            Some(&frame),
        );
        assert_eq!(form.problem, None, "{:?}", form.problem);
        assert!(
            form.verdict.iter().any(|l| l.starts_with("cpu: fits")),
            "{:?}",
            form.verdict
        );
        assert!(
            form.verdict.iter().any(|l| l.starts_with("cuda:0: ")),
            "{:?}",
            form.verdict
        );
        let before = form.verdict.clone();
        // A bigger batch changes the estimate shown.
        form.focus = 5;
        type_into(&mut form, "00", Some(&frame));
        assert_ne!(form.verdict, before);
        form.focus = 5;
        form.on_key(KeyCode::Backspace, Some(&frame));
        form.on_key(KeyCode::Backspace, Some(&frame));
        form.focus = 8;
        form.values[8].clear();
        type_into(&mut form, "gpu", Some(&frame));
        assert!(matches!(
            form.on_key(KeyCode::Enter, Some(&frame)),
            FormAction::None
        ));
        assert!(form
            .problem
            .as_deref()
            .unwrap()
            .contains("cpu, cuda:N or any"));
        form.values[8] = "cpu".into();
        match form.on_key(KeyCode::Enter, Some(&frame)) {
            FormAction::Submit(s) => {
                assert_eq!(s.device, DeviceRequest::Cpu);
                assert_eq!(s.request.batch, 8);
                assert_eq!(s.request.input, input);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(form.on_key(KeyCode::Esc, None), FormAction::Close);
    }
}
