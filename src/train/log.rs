//! What a run writes as it goes: TensorBoard event files (scalars, histograms, the config as
//! text) and the same scalars as one JSON object per line in `metrics.jsonl`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use tensorboard_proto::summary::{
    Summary, SummaryMetadata, SummaryMetadata_PluginData, Summary_Value,
};
use tensorboard_proto::tensor::TensorProto;
use tensorboard_proto::tensor_shape::{TensorShapeProto, TensorShapeProto_Dim};
use tensorboard_proto::types::DataType;
use tensorboard_rs::summary::{histogram_raw, scalar};
use tensorboard_rs::summary_writer::FileWriter;

pub struct RunLog {
    tb: FileWriter,
    jsonl: BufWriter<File>,
    pub dir: PathBuf,
}

impl RunLog {
    /// Opens the run's logs. With `resume_step`, the logs are cut back to that step: lines of
    /// `metrics.jsonl` past it (work the checkpoint does not hold, about to be redone) are
    /// dropped, and the TensorBoard event files are replaced by one that replays the kept
    /// lines, so neither shows a step twice. (Histograms of earlier evaluations are not
    /// replayed: metrics.jsonl holds only scalars.)
    pub fn open(dir: &Path, resume_step: Option<u64>, config_text: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("metrics.jsonl");
        let kept: Vec<serde_json::Value> = match (resume_step, File::open(&path)) {
            (Some(step), Ok(f)) => BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
                .filter(|v| v["step"].as_u64().is_some_and(|s| s <= step))
                .collect(),
            _ => vec![],
        };
        if resume_step.is_some() {
            for e in std::fs::read_dir(dir)?.filter_map(Result::ok) {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with("events.out.tfevents")
                {
                    std::fs::remove_file(e.path())?;
                }
            }
        }
        let jsonl = BufWriter::new(File::create(&path)?);
        let mut log = Self {
            tb: FileWriter::new(dir),
            jsonl,
            dir: dir.into(),
        };
        // Step 0 first: TensorBoard reads a step that goes backwards as a restart.
        log.text("config", &format!("```toml\n{config_text}\n```"), 0);
        for row in kept {
            let (Some(step), Some(split)) = (row["step"].as_u64(), row["split"].as_str()) else {
                continue;
            };
            let values: Vec<(String, f64)> = row
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "step" && *k != "split")
                .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
                .collect();
            log.scalars(step, split, &values)?;
        }
        Ok(log)
    }

    /// Logs `values` as `<split>/<name>` scalars at `step`.
    pub fn scalars(
        &mut self,
        step: u64,
        split: &str,
        values: &[(String, f64)],
    ) -> std::io::Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("step".into(), step.into());
        obj.insert("split".into(), split.into());
        for (name, v) in values {
            self.tb
                .add_summary(scalar(&format!("{split}/{name}"), *v as f32), step as usize);
            obj.insert(
                name.clone(),
                serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into),
            );
        }
        writeln!(self.jsonl, "{}", serde_json::Value::Object(obj))
    }

    /// A histogram of `values` with 30 equal-width buckets.
    pub fn histogram(&mut self, tag: &str, values: &[f32], step: u64) {
        if values.is_empty() {
            return;
        }
        let (min, max) = values.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| {
            (a.min(v as f64), b.max(v as f64))
        });
        let buckets = 30;
        let width = ((max - min) / buckets as f64).max(1e-12);
        let mut counts = vec![0.0; buckets];
        for &v in values {
            let i = (((v as f64 - min) / width) as usize).min(buckets - 1);
            counts[i] += 1.0;
        }
        let limits: Vec<f64> = (1..=buckets).map(|i| min + width * i as f64).collect();
        let sum = values.iter().map(|&v| v as f64).sum();
        let sum_sq = values.iter().map(|&v| (v as f64).powi(2)).sum();
        self.tb.add_summary(
            histogram_raw(
                tag,
                min,
                max,
                values.len() as f64,
                sum,
                sum_sq,
                &limits,
                &counts,
            ),
            step as usize,
        );
    }

    /// Text for TensorBoard's Text tab (rendered as Markdown there).
    pub fn text(&mut self, tag: &str, text: &str, step: u64) {
        let mut plugin = SummaryMetadata_PluginData::new();
        plugin.set_plugin_name("text".into());
        let mut meta = SummaryMetadata::new();
        meta.set_plugin_data(plugin);
        let mut dim = TensorShapeProto_Dim::new();
        dim.set_size(1);
        let mut shape = TensorShapeProto::new();
        shape.set_dim(vec![dim].into());
        let mut tensor = TensorProto::new();
        tensor.set_dtype(DataType::DT_STRING);
        tensor.set_tensor_shape(shape);
        tensor.set_string_val(vec![text.as_bytes().to_vec()].into());
        let mut value = Summary_Value::new();
        value.set_tag(tag.into());
        value.set_metadata(meta);
        value.set_tensor(tensor);
        let mut summary = Summary::new();
        summary.set_value(vec![value].into());
        self.tb.add_summary(summary, step as usize);
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.tb.flush();
        self.jsonl.flush()
    }
}
