//! What a run writes as it goes: TensorBoard event files (scalars, histograms, the config as
//! text) and the same scalars as one JSON object per line in `metrics.jsonl`.

use protobuf::Message;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, LineWriter, Write};
use std::path::{Path, PathBuf};
use tensorboard_proto::event::Event;
use tensorboard_proto::summary::{
    Summary, SummaryMetadata, SummaryMetadata_PluginData, Summary_Value,
};
use tensorboard_proto::tensor::TensorProto;
use tensorboard_proto::tensor_shape::{TensorShapeProto, TensorShapeProto_Dim};
use tensorboard_proto::types::DataType;
use tensorboard_rs::record_writer::RecordWriter;
use tensorboard_rs::summary::{histogram_raw, scalar};

/// A TensorBoard event file written on the caller's thread. tensorboard-rs's own `FileWriter`
/// writes on a background thread that panics when a write fails (a full disk would abort the
/// run with a panic and no message naming the file); its record framing and summary builders
/// are used as they are, and write errors come back as `io::Error`s.
struct Events {
    records: RecordWriter<BufWriter<File>>,
}

impl Events {
    fn create(dir: &Path) -> std::io::Result<Self> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "events.out.tfevents.{:010}.pretext.{}.0",
            now.as_secs(),
            std::process::id()
        );
        let mut events = Self {
            records: RecordWriter::new(BufWriter::new(File::create(dir.join(name))?)),
        };
        let mut first = Event::new();
        first.set_wall_time(now.as_secs_f64());
        first.set_file_version("brain.Event:2".into());
        events.write(&first)?;
        Ok(events)
    }

    fn write(&mut self, event: &Event) -> std::io::Result<()> {
        let data = event.write_to_bytes().map_err(std::io::Error::other)?;
        self.records.write(&data)
    }

    fn add_summary(&mut self, summary: Summary, step: u64) -> std::io::Result<()> {
        let mut e = Event::new();
        e.set_wall_time(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        );
        e.set_step(step as i64);
        e.set_summary(summary);
        self.write(&e)
    }
}

pub struct RunLog {
    tb: Events,
    /// Whole rows, each written by one call as its newline arrives: a block-sized buffer
    /// would write a row cut in the middle when it fills, and a kill could leave it so.
    jsonl: LineWriter<File>,
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
        let jsonl = LineWriter::new(File::create(&path)?);
        let mut log = Self {
            tb: Events::create(dir)?,
            jsonl,
            dir: dir.into(),
        };
        // Step 0 first: TensorBoard reads a step that goes backwards as a restart.
        log.text("config", &format!("```toml\n{config_text}\n```"), 0)?;
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
                .add_summary(scalar(&format!("{split}/{name}"), *v as f32), step)?;
            obj.insert(
                name.clone(),
                serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into),
            );
        }
        writeln!(self.jsonl, "{}", serde_json::Value::Object(obj))
    }

    /// A histogram of `values` with 30 equal-width buckets.
    pub fn histogram(&mut self, tag: &str, values: &[f32], step: u64) -> std::io::Result<()> {
        if values.is_empty() {
            return Ok(());
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
            step,
        )
    }

    /// Text for TensorBoard's Text tab (rendered as Markdown there).
    pub fn text(&mut self, tag: &str, text: &str, step: u64) -> std::io::Result<()> {
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
        self.tb.add_summary(summary, step)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.tb.records.flush()?;
        self.jsonl.flush()
    }
}
