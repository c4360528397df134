//! Issue 14, item 2: one evaluation set for every variant of an experiment, and every
//! pretrained model scored on both pair tasks (its own head, or a probe).

mod common;

use pretext::train::probe;
use std::path::Path;

const EXPERIMENT: &str = r#"
name = "cross"
[data]
corpus = ["embedded"]
heldout_fraction = 0.2
[tokenizer]
vocab_size = 600
[model]
layers = 2
hidden = 32
heads = 2
ffn = 64
max_positions = 64
[optimizer]
warmup_steps = 5
[training]
steps = 30
batch_size = 8
seq_len = 64
eval_every = 15
log_every = 10
[ablation]
objectives = [[{name = "mlm"}], [{name = "mlm"}, {name = "sop"}]]
"training.seed" = [1, 2]
[[finetune]]
task = "sts-embed"
data = "sts"
max_seq_len = 64
"#;

/// A small STS-B-layout dev file: pairs from the embedded corpus's vocabulary, gold 0–5.
const STS_DEV: &str = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore
0\tmain\tx\t2012\t0\tnone\tnone\tThe cat sat on the mat.\tA cat sat on the mat.\t4.8
1\tmain\tx\t2012\t1\tnone\tnone\tThe king ruled the land.\tThe king ruled his land.\t4.5
2\tmain\tx\t2012\t2\tnone\tnone\tThe river ran to the sea.\tThe cat slept all day.\t0.2
3\tmain\tx\t2012\t3\tnone\tnone\tShe read the old book.\tShe read a book.\t3.6
4\tmain\tx\t2012\t4\tnone\tnone\tThe man walked home.\tThe sea was very cold.\t0.0
5\tmain\tx\t2012\t5\tnone\tnone\tThe children played outside.\tThe children were playing outside.\t4.9
6\tmain\tx\t2012\t6\tnone\tnone\tIt rained in the town.\tThe town saw rain.\t3.9
7\tmain\tx\t2012\t7\tnone\tnone\tHe lost his way.\tThe queen sang a song.\t0.4
";

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn variants_share_one_evaluation_set_and_the_report_crosses_pair_tasks() {
    let dir = common::scratch("fair");
    std::fs::write(dir.join("cross.toml"), EXPERIMENT).unwrap();
    std::fs::create_dir_all(dir.join("sts")).unwrap();
    std::fs::write(dir.join("sts/dev.tsv"), STS_DEV).unwrap();
    let o = common::run_in(&dir, "cross.toml").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs = dir.join("runs/cross");
    let variants = [
        "objectives=mlm,seed=1",
        "objectives=mlm,seed=2",
        "objectives=mlm+sop,seed=1",
        "objectives=mlm+sop,seed=2",
    ];
    let prints: Vec<String> = variants
        .iter()
        .map(|v| {
            summary(&runs.join(v))["eval_fingerprint"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(prints.iter().all(|p| *p == prints[0]), "{prints:?}");

    // The MLM-only run has probe figures for both pair tasks; the SOP run a probe for NSP
    // only (SOP goes through its head).
    let keys = |v: &str| -> Vec<String> {
        summary(&runs.join(v))["last_eval"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| kv[0].as_str().unwrap().to_string())
            .collect()
    };
    let mlm = keys(variants[0]);
    assert!(
        mlm.contains(&"probe/nsp/accuracy".into()) && mlm.contains(&"probe/sop/accuracy".into()),
        "{mlm:?}"
    );
    let sop = keys(variants[2]);
    assert!(
        sop.contains(&"probe/nsp/accuracy".into()) && !sop.contains(&"probe/sop/accuracy".into()),
        "{sop:?}"
    );
    assert!(sop.contains(&"sop/accuracy".into()));
    // ALBERT's reading of its Table 5: the SOP head asked NSP's pairs. Only a run with a pair
    // head has it, and only for the task it did not train.
    assert!(sop.contains(&"transfer/nsp/accuracy".into()), "{sop:?}");
    assert!(!sop.contains(&"transfer/sop/accuracy".into()), "{sop:?}");
    assert!(!mlm.iter().any(|k| k.starts_with("transfer/")), "{mlm:?}");

    // A finished run scored again on its experiment's held-out set gives what it recorded,
    // every figure to the bit: the same set (fingerprint), the same weights, the same code.
    let rescore = |v: &str, json: bool| {
        common::pretext()
            .arg("eval")
            .args(json.then_some("--json"))
            .arg("--heldout")
            .arg(dir.join("cross.toml"))
            .arg(runs.join(v))
            .output()
            .unwrap()
    };
    let o = rescore(variants[2], true);
    assert!(o.status.success(), "{}", common::output_text(&o));
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["eval_fingerprint"], prints[0].as_str());
    assert_eq!(again["recorded_fingerprint"], prints[0].as_str());
    assert_eq!(
        again["scalars"],
        summary(&runs.join(variants[2]))["last_eval"],
        "{again}"
    );
    // Not a variant of the file, or not finished: refused by name.
    let stray = runs.join("stray");
    std::fs::create_dir_all(&stray).unwrap();
    let o = rescore("stray", false);
    let text = common::output_text(&o);
    assert!(
        !o.status.success() && text.contains("`stray` is no variant of"),
        "{text}"
    );
    let o = rescore(
        &format!("{}/checkpoints/latest.safetensors", variants[2]),
        false,
    );
    let text = common::output_text(&o);
    assert!(!o.status.success() && text.contains("not a file"), "{text}");
    let o = common::pretext()
        .args(["eval", "--seq-len", "32", "--heldout"])
        .arg(dir.join("cross.toml"))
        .arg(runs.join(variants[2]))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", common::output_text(&o));
    let unfinished = runs.join(variants[3]).join("summary.json");
    std::fs::rename(&unfinished, dir.join("kept.json")).unwrap();
    let o = rescore(variants[3], false);
    let text = common::output_text(&o);
    assert!(
        !o.status.success() && text.contains("has not finished"),
        "{text}"
    );
    std::fs::rename(dir.join("kept.json"), &unfinished).unwrap();

    let report = std::fs::read_to_string(dir.join("reports/cross/README.md")).unwrap();
    assert!(report.contains(&format!(
        "one held-out evaluation set (fingerprint `{}`)",
        prints[0]
    )));
    let row = report
        .lines()
        .find(|l| l.starts_with("| objectives=mlm | 2 | ") && l.contains("(probe)"))
        .unwrap_or_else(|| panic!("no cross-table row for the MLM-only variant:\n{report}"));
    assert_eq!(row.matches("(probe)").count(), 2, "{row}");
    assert!(row.contains("(head)"), "{row}");
    let row = report
        .lines()
        .find(|l| l.starts_with("| objectives=mlm+sop | 2 | ") && l.contains("(head)"))
        .unwrap_or_else(|| panic!("no cross-table row for the SOP variant:\n{report}"));
    assert!(
        row.contains("(probe); ") && row.contains("(other head)"),
        "{row}"
    );

    // Sentence embeddings join the cross table: Spearman, alignment and uniformity of the
    // pretrained encoder (SimCSE's Figure 2 axes), from each run's sts-embed downstream run.
    assert!(
        report.contains("| STS-B Spearman | STS-B alignment ↓ | STS-B uniformity ↓ |"),
        "{report}"
    );
    assert_eq!(
        row.matches(" | ").count(),
        7,
        "variant, n, 3 pair columns, 3 STS: {row}"
    );
    let sts = runs.join(variants[0]).join("finetune");
    let job = std::fs::read_dir(&sts)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let job = std::fs::read_dir(&job)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let dev = &summary(&job)["dev"];
    let (al, un) = (
        dev["alignment"].as_f64().unwrap(),
        dev["uniformity"].as_f64().unwrap(),
    );
    // Unit vectors: squared distances in [0, 4], so uniformity in [-8, 0].
    assert!(
        (0.0..=4.0).contains(&al) && (-8.0..=0.0).contains(&un),
        "{dev}"
    );

    // A changed evaluation set is reported, not silently mixed into one table.
    let s = runs.join(variants[1]).join("summary.json");
    let text = std::fs::read_to_string(&s)
        .unwrap()
        .replace(&prints[0], "00000000");
    std::fs::write(&s, text).unwrap();
    pretext::report::folder::write(&runs, &dir.join("reports/again")).unwrap();
    let report = std::fs::read_to_string(dir.join("reports/again/README.md")).unwrap();
    assert!(
        report.contains("scored on different held-out sets"),
        "{report}"
    );
    assert!(
        report.contains("- `00000000`: objectives=mlm,seed=2"),
        "{report}"
    );
    let o = rescore(variants[1], false);
    let text = common::output_text(&o);
    assert!(
        o.status.success() && text.contains("NOT the set the run recorded (00000000)"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The probe is a working classifier: it separates separable pooled features and stays near
/// chance on labels that have nothing to do with them.
#[test]
fn the_probe_learns_separable_features_and_not_noise() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let xs: Vec<Vec<f64>> = (0..800)
        .map(|_| (0..16).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    let by_feature: Vec<u32> = xs
        .iter()
        .map(|x| u32::from(x[3] + 0.5 * x[9] > 0.1))
        .collect();
    let noise: Vec<u32> = (0..800).map(|_| rng.gen_range(0..2)).collect();
    let accuracy = |w: &[f64], ys: &[u32], range: std::ops::Range<usize>| {
        let hits = range
            .clone()
            .filter(|&i| {
                let s = w[0] + w[1..].iter().zip(&xs[i]).map(|(a, b)| a * b).sum::<f64>();
                (s > 0.0) == (ys[i] == 1)
            })
            .count();
        hits as f64 / range.len() as f64
    };
    let w = probe::fit(&xs[..600], &by_feature[..600]);
    assert!(accuracy(&w, &by_feature, 600..800) > 0.9);
    let w = probe::fit(&xs[..600], &noise[..600]);
    let a = accuracy(&w, &noise, 600..800);
    assert!((0.35..0.65).contains(&a), "{a}");
}
